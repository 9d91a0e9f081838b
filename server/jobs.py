"""The job queue: transcription runs in worker processes, never in the server.

The queue is huey's: with ``job_queue = sqlite`` (the embedded default) a SQLite file in
the data directory, needing no server; with ``job_queue = redis`` huey's Redis storage
(``redis_url``), so workers on other machines take jobs with the same code. (huey, not
Celery or Dramatiq: it has an embedded SQLite storage, so one command runs everything on
a laptop, and the same task code scales out on Redis.)

* The server enqueues ``transcribe_session(session_id, attempt)``; the job's state is
  the ``transcripts`` row (pending, running with the worker's name and a heartbeat every
  :data:`HEARTBEAT_S`, done, failed) — the queue holds nothing else.
* ``hoidong worker`` (:func:`run_worker`) runs a consumer; the server starts one of its
  own (:class:`WorkerProcess`, when the first job is queued) unless ``run_worker`` is
  off. If its worker dies the server starts another and gives the dead worker's jobs
  back to the queue; a job whose heartbeat stopped (a worker elsewhere died) is given
  back as well (:data:`STALE_S`).
* A job that fails for a passing reason (the store or database unreachable) is tried
  again with backoff (5 s doubling, ``job_retries`` times); results are written
  idempotently (under the attempt's own keys, the transcript's lines replaced).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import huey

from server.settings import ENV_PREFIX, Settings

log = logging.getLogger(__name__)

TASK = "transcribe_session"
SEGMENT_TASK = "transcribe_segment"
HEARTBEAT_S = 10.0
STALE_S = 60.0


def make_huey(settings: Settings) -> huey.Huey:
    """The queue the settings name (the same for the server and its workers)."""
    name = settings.job_queue_name
    if settings.job_queue == "redis":
        return huey.RedisHuey(name, url=settings.redis_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return huey.SqliteHuey(name, filename=str(Path(settings.data_dir) / "jobs.sqlite3"))


def backoff_s(attempt: int) -> float:
    return float(min(300, 5 * 2 ** max(0, attempt - 1)))


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Queue:
    """The server's side of the queue: put jobs in."""

    def __init__(self, settings: Settings) -> None:
        self.huey = make_huey(settings)
        self._task = self.huey.task(name=TASK)(_transcribe_session)
        self._segment_task = self.huey.task(name=SEGMENT_TASK)(_transcribe_segment)

    def segment(self, segment_id: str) -> None:
        """Queue the transcription of one recording segment (incremental mode)."""
        self._segment_task(segment_id)

    def transcribe(self, session_id: str, attempt: int = 1, delay_s: float = 0.0) -> None:
        """Queue a transcription of ``session_id`` (blocking: a short local write)."""
        if delay_s > 0:
            self._task.schedule(args=(session_id, attempt), delay=delay_s)
        else:
            self._task(session_id, attempt)


# -- the worker side ------------------------------------------------------------------

_worker: dict[str, Any] = {}  # per worker process: settings, queue, loaded model


def _transcribe_session(session_id: str, attempt: int) -> None:
    """The task: run one transcription job in this worker process."""
    from server.transcription_job import run_job  # the worker imports what it runs

    settings: Settings = _worker["settings"]
    retry = asyncio.run(run_job(settings, _worker, session_id, attempt))
    if retry:
        delay = backoff_s(attempt)
        log.warning("transcription of %s will be tried again in %.0f s (attempt %d)",
                    session_id, delay, attempt + 1)
        _worker["queue"].transcribe(session_id, attempt + 1, delay)


def _transcribe_segment(segment_id: str) -> None:
    """The task: transcribe one closed segment during the meeting (incremental mode)."""
    from server.transcription_job import run_segment_job

    asyncio.run(run_segment_job(_worker["settings"], _worker, segment_id))


def run_worker(settings: Settings) -> int:
    """``hoidong worker``: take jobs until SIGINT/SIGTERM (blocking)."""
    queue = Queue(settings)
    _worker.update(settings=settings, queue=queue)
    consumer = queue.huey.create_consumer(workers=1, worker_type="thread", periodic=False,
                                          check_worker_health=True)
    log.info("worker %s taking jobs from %s", worker_name(), settings.job_queue)
    consumer.run()
    return 0


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a worker process exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        env[ENV_PREFIX + f.name.upper()] = (("true" if value else "false")
                                            if isinstance(value, bool) else str(value))
    return env


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, a SIGTERM when the server dies (even by
    SIGKILL), so a crashed server leaves no worker of its own behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class WorkerProcess:
    """The server's own worker (``hoidong worker`` as a child process), started when the
    first job is queued and again if it dies; ``on_died`` gets the dead worker's name."""

    def __init__(self, settings: Settings, on_died: Any) -> None:
        self._settings = settings
        self._on_died = on_died
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._closing = False
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def ensure(self) -> None:
        async with self._lock:
            if self._closing or (self._proc is not None and self._proc.returncode is None):
                return
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.cli", "worker",
                env=settings_env(self._settings), cwd=os.getcwd(),
                preexec_fn=_die_with_parent)
            log.info("transcription worker started (pid %d)", self._proc.pid)
            self._watch = asyncio.get_running_loop().create_task(self._watched(self._proc))

    async def _watched(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._closing:
            return
        log.error("transcription worker %d died (exit %s); starting another", proc.pid, code)
        await self._on_died(f"{socket.gethostname()}:{proc.pid}")
        await asyncio.sleep(1.0)
        await self.ensure()

    async def close(self) -> None:
        self._closing = True
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGINT)  # huey finishes the job at hand, then stops
        try:
            await asyncio.wait_for(proc.wait(), timeout=20)
        except TimeoutError:
            proc.kill()
            await proc.wait()

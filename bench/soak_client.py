"""The soak's client process: bench/media_client.py's peers, counting in slices, joining
again when cut off.

A soak keeps its peers connected for half an hour; counting every frame of it the way
the media benchmark's short window does would keep ~2.7 million (arrival time, RTP
time) pairs per peer in memory. Here the peers are ``bench.media_client.run_peer``
unchanged, with the soak's whole window, but the window's start is a :class:`Slices`
value: a number that compares as "started" only during the first ``count_s`` seconds of
every ``every_s`` (on the wall clock, the same for every client), so frames are counted
— sent and received alike — in those slices only.

A page whose connection is cut comes back by itself; so does a peer here. When the
server closes a peer's signalling socket before the window's end (it does when it drops
the peer's media), or the peer fails (say, a message it does not expect before its
welcome), the peer's connection is closed and it joins again after
:data:`REJOIN_AFTER_S`, without taking its process's other peers down. Every cut and
failure is in the report's ``_failures``. A peer's counts are those of its last
connection (the one that lasted to the end).

    python -m bench.soak_client SPEC.json OUT.json

SPEC is bench/media_client.py's, with ``count_s`` and ``every_s`` added.
``BENCH_CLIENT_LOG_LEVEL`` (e.g. INFO) logs aiortc's and aioice's messages to stderr.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection

from bench import media_client, media_fixture
from bench.proc import cpu_seconds

ATTEMPTS = 200  # per peer: a cut every 30 s for half an hour is 60
REJOIN_AFTER_S = 2.0
NO_REJOIN_BEFORE_END_S = 30.0


class Slices(float):
    """The window's start: ``start <= now`` holds only for ``now`` after the start and in
    the counting part of its slice (``now >= start`` asks the same, reflected)."""

    every_s: float
    count_s: float

    def __new__(cls, start: float, every_s: float, count_s: float) -> Slices:
        self = super().__new__(cls, start)
        self.every_s, self.count_s = every_s, count_s
        return self

    def counting(self, now: float) -> bool:
        return now >= float(self) and now % self.every_s < self.count_s

    def __le__(self, other: object) -> bool:
        return self.counting(float(other)) if isinstance(other, float | int) else NotImplemented

    def __gt__(self, other: object) -> bool:
        return not self.counting(float(other)) if isinstance(other, float | int) \
            else NotImplemented

    def __hash__(self) -> int:
        return float.__hash__(self)


def sliced(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with its window start counting in slices (when it names ``every_s``)."""
    if spec.get("every_s"):
        spec = {**spec, "window_start": Slices(spec["window_start"], float(spec["every_s"]),
                                               float(spec["count_s"]))}
    return spec


# -- knowing when a peer is cut off --------------------------------------------------------


@dataclass(eq=False)
class Attempt:
    """One connection of one peer: its task, its peer connections, whether it was cut."""

    until: float  # the window's end: a close after it is the peer's own
    task: asyncio.Task[None] | None = None
    pcs: list[RTCPeerConnection] = field(default_factory=list)
    cut: str | None = None

    def cut_off(self, why: str) -> None:
        if self.cut is None and time.time() < self.until - 1.0 and self.task is not None:
            self.cut = why
            self.task.cancel()


_attempt: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("attempt",
                                                                          default=None)


class _WatchedSocket(aiohttp.ClientWebSocketResponse):
    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:
        msg = await super().receive(timeout)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            attempt = _attempt.get()
            if attempt is not None:
                attempt.cut_off(f"socket closed by the server ({self.close_code})")
        return msg


class _Session(aiohttp.ClientSession):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("ws_response_class", _WatchedSocket)
        super().__init__(*args, **kwargs)


class _PeerConnection(RTCPeerConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        attempt = _attempt.get()
        if attempt is not None:
            attempt.pcs.append(self)


def _watch_peers() -> None:
    """Make bench.media_client's peers use the watched socket and peer connection."""
    shim = types.ModuleType("aiohttp")
    shim.__dict__.update(vars(aiohttp))
    shim.__dict__["ClientSession"] = _Session
    setattr(media_client, "aiohttp", shim)  # noqa: B010 - a module's global, replaced
    setattr(media_client, "RTCPeerConnection", _PeerConnection)  # noqa: B010


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """``media_client.run``, but each peer joins again when cut off or failed."""
    _watch_peers()
    if spec.get("nice"):
        os.nice(int(spec["nice"]))
    fixture = media_fixture.load()
    report: dict[str, Any] = {}
    failures: list[dict[str, Any]] = []
    cpu0 = cpu_seconds()
    end = float(spec["window_end"])

    async def peer(me: dict[str, str]) -> None:
        for n in range(1, ATTEMPTS + 1):
            attempt = Attempt(until=end)
            token = _attempt.set(attempt)
            try:
                attempt.task = asyncio.create_task(
                    media_client.run_peer(spec, me, fixture, report))
            finally:
                _attempt.reset(token)
            try:
                await attempt.task
                return
            except asyncio.CancelledError:
                if attempt.cut is None:
                    raise  # this process is being stopped
                why = attempt.cut
            except Exception as exc:  # a join refused or failed: noted, then again
                why = f"{type(exc).__name__}: {exc}"[:300]
            failures.append({"peer": me["id"], "attempt": n, "at": round(time.time(), 2),
                             "error": why})
            for pc in attempt.pcs:
                await pc.close()
            if time.time() > end - NO_REJOIN_BEFORE_END_S:
                return
            await asyncio.sleep(REJOIN_AFTER_S)

    await asyncio.gather(*(peer(me) for me in spec["peers"]))
    report["_cpu_s"] = cpu_seconds() - cpu0
    report["_failures"] = failures
    return report


def main() -> None:
    if os.environ.get("BENCH_CLIENT_LOG_LEVEL"):  # aiortc's and aioice's, to stderr
        logging.basicConfig(level=os.environ["BENCH_CLIENT_LOG_LEVEL"],
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = json.loads(Path(sys.argv[1]).read_text())
    report = asyncio.run(run(sliced(spec)))
    Path(sys.argv[2]).write_text(json.dumps(report))


if __name__ == "__main__":
    main()

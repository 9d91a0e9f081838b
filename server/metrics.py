"""Operations: ``/metrics`` (Prometheus text format), ``/healthz`` and ``/readyz``.

``/metrics`` is read at scrape time from what the process already keeps — the live
registry (sessions, participants), the forwarders' totals (frames, RTP packets and
bytes handed to subscribers), the camera rule's event counts — and from the database
(segments not yet in the store, transcription jobs waiting or running, how long the
last finished jobs took). Nothing on the media path is timed or locked for it.
``/healthz`` says the process answers; ``/readyz`` that it can serve: the database
answers a query and the object store a listing (503 naming what failed).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import func, select, text

from media.consent import COUNTS as CONSENT
from media.forwarder import FORWARDED
from server.allocator import Trimmer
from server.errors import ApiError
from server.looplag import BUCKETS_S, LoopLag
from server.models import RecordingSegment, Transcript
from server.state import DB, LIVE, LOOP_LAG, SETTINGS, STORE, TRIMMER

__all__ = ["healthz", "metrics", "readyz"]

JOB_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
RECENT_JOBS = 500


class _Snapshot:
    """One scrape's values, collected by :func:`metrics` and emitted as metric families."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.v = values

    def collect(self) -> Iterator[Metric]:
        v = self.v
        yield GaugeMetricFamily("hoidong_live_sessions", "Sessions with someone connected.",
                                value=v["sessions"])
        yield GaugeMetricFamily("hoidong_participants_connected",
                                "Participants connected to a live session.",
                                value=v["participants"])
        for name, what, value in (
                ("frames", "Audio and video frames", FORWARDED.frames),
                ("packets", "RTP packets", FORWARDED.packets),
                ("bytes", "Payload bytes", FORWARDED.bytes)):
            yield CounterMetricFamily(f"hoidong_forwarded_{name}",
                                      f"{what} forwarded to subscribers since start.",
                                      value=value)
        yield GaugeMetricFamily("hoidong_segments_waiting_upload",
                                "Recording segments closed but not yet in the object store.",
                                value=v["segments_waiting"])
        queue = GaugeMetricFamily("hoidong_transcription_jobs",
                                  "Transcription jobs by status (waiting or running).",
                                  labels=["status"])
        for status, count in sorted(v["jobs"].items()):
            queue.add_metric([status], count)
        yield queue
        hist = HistogramMetricFamily(
            "hoidong_transcription_job_seconds",
            f"Queued-to-done time of the last {RECENT_JOBS} finished transcription jobs.")
        durations = v["durations"]
        buckets = [(f"{b:g}", sum(1 for d in durations if d <= b)) for b in JOB_BUCKETS]
        buckets.append(("+Inf", len(durations)))
        hist.add_metric([], buckets, sum_value=sum(durations))
        yield hist
        camera = CounterMetricFamily("hoidong_camera_events",
                                     "Camera-rule decisions since start (warning, "
                                     "non_compliant, compliant…).", labels=["kind"])
        for kind, count in sorted(v["camera"].items()):
            camera.add_metric([kind.removeprefix("camera.")], count)
        yield camera
        lag: LoopLag = v["loop_lag"]
        hist = HistogramMetricFamily(
            "hoidong_event_loop_lag_seconds",
            "How late the event loop woke, sampled every tenth of a second since start "
            "(media, signalling and ICE consent answers wait as long).")
        hist.add_metric([], [*((f"{b:g}", c) for b, c in zip(BUCKETS_S, lag.counts, strict=True)),
                             ("+Inf", lag.total)], sum_value=lag.sum_s)
        yield hist
        yield GaugeMetricFamily("hoidong_event_loop_lag_max_seconds",
                                "The longest event loop lag since start.", value=lag.max_s)
        for name, what, value in (
                ("checks", "ICE consent checks sent", CONSENT.checks),
                ("unanswered", "ICE consent checks not answered in time", CONSENT.unanswered),
                ("expired", "Connections closed because ICE consent expired (30 s "
                            "without an answer)", CONSENT.expired)):
            yield CounterMetricFamily(f"hoidong_ice_consent_{name}", f"{what} since start.",
                                      value=value)
        trimmer: Trimmer = v["trimmer"]
        yield CounterMetricFamily("hoidong_malloc_trims", "Times freed memory was given back "
                                  "to the operating system (malloc_trim) since start.",
                                  value=trimmer.trims)
        yield CounterMetricFamily("hoidong_malloc_trim_returned_bytes",
                                  "Resident memory the trims gave back since start.",
                                  value=trimmer.returned_bytes)
        yield GaugeMetricFamily("hoidong_malloc_trim_longest_seconds",
                                "The longest trim since start (the event loop may wait as "
                                "long for the allocator).", value=trimmer.longest_s)


async def metrics(request: web.Request) -> web.Response:
    """The scrape. With ``metrics_token`` set, only ``Authorization: Bearer <token>``
    gets it (401 ``auth.required`` otherwise: the counts tell who meets when)."""
    token = request.app[SETTINGS].metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise ApiError(401, "auth.required")
    live = request.app[LIVE]
    sessions, participants = live.counts()
    async with request.app[DB].session() as s:
        waiting = (await s.execute(select(func.count()).select_from(RecordingSegment).where(
            RecordingSegment.status != "stored"))).scalar_one()
        jobs = dict((await s.execute(select(Transcript.status, func.count()).where(
            Transcript.status.in_(("pending", "running"))).group_by(Transcript.status))).all())
        done = (await s.execute(select(Transcript.created_at, Transcript.completed_at).where(
            Transcript.status == "done", Transcript.completed_at.is_not(None))
            .order_by(Transcript.completed_at.desc()).limit(RECENT_JOBS))).all()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot({
        "sessions": sessions, "participants": participants, "segments_waiting": waiting,
        "jobs": {"pending": jobs.get("pending", 0), "running": jobs.get("running", 0)},
        "durations": [max(0.0, (b - a).total_seconds()) for a, b in done if a and b],
        "camera": {k: n for k, n in live.camera_rule.events.items() if k.startswith("camera.")},
        "loop_lag": request.app[LOOP_LAG], "trimmer": request.app[TRIMMER],
    }))
    return web.Response(body=generate_latest(registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    failed = []
    try:
        async with request.app[DB].session() as s:
            await s.execute(text("SELECT 1"))
    except Exception:  # any failure means: not ready; the body says which part
        failed.append("database")
    try:
        await request.app[STORE].exists("healthz/probe")
    except Exception:
        failed.append("object_store")
    status = 503 if failed else 200
    return web.json_response({"status": "unavailable" if failed else "ready",
                              "failed": failed}, status=status)

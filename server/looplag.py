"""How far the event loop falls behind: the first sign that the server is overloaded.

Everything on the server that must be on time — forwarding media, answering ICE consent
checks, signalling, the recorders' timestamps — runs on one asyncio loop. When the loop
is busy for longer than a turn should take, all of it waits. :class:`LoopLag` wakes every
:data:`PERIOD_S` and records how late it woke (a wake-up is never early), as a
histogram for ``/metrics`` (``hoidong_event_loop_lag_seconds``) plus the worst lag seen.
It costs one timer a tenth of a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from media.tasks import cancel_and_wait

log = logging.getLogger(__name__)

PERIOD_S = 0.1
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WARN_S = 2.0  # a lag this long is logged: consent checks and media already suffer


class LoopLag:
    """The running loop's lag, sampled every :data:`PERIOD_S` seconds (module doc).

    ``counts[i]`` is how many samples were at most ``BUCKETS_S[i]`` late (cumulative, as
    Prometheus wants); ``total`` and ``sum_s`` count every sample and add their lags.
    """

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS_S)
        self.total = 0
        self.sum_s = 0.0
        self.max_s = 0.0

    def record(self, lag_s: float) -> None:
        """Count one sample of ``lag_s`` seconds (negative values count as 0)."""
        lag_s = max(0.0, lag_s)
        self.total += 1
        self.sum_s += lag_s
        self.max_s = max(self.max_s, lag_s)
        for i, bound in enumerate(BUCKETS_S):
            if lag_s <= bound:
                self.counts[i] += 1

    async def run(self) -> None:
        """Sample until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + PERIOD_S
            await asyncio.sleep(PERIOD_S)
            lag = loop.time() - due
            self.record(lag)
            if lag >= WARN_S:
                log.warning("the event loop ran %.1f s late: the server is overloaded", lag)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LoopLag]:
        """Sample while the block runs (for ``cleanup_ctx``)."""
        task = asyncio.create_task(self.run(), name="loop-lag")
        try:
            yield self
        finally:
            await cancel_and_wait(task, name="loop lag")

"""The event loop's lag (server.looplag): a blocked loop shows up in the histogram."""

from __future__ import annotations

import asyncio
import time

from server.looplag import BUCKETS_S, LoopLag


async def test_a_blocked_loop_is_measured() -> None:
    async with LoopLag().running() as lag:
        await asyncio.sleep(0.35)
        quiet = lag.total
        time.sleep(0.6)  # noqa: ASYNC251 (blocks the loop on purpose)
        await asyncio.sleep(0.25)
    assert quiet >= 2
    assert 0.5 <= lag.max_s < 5, lag.max_s
    over_half = lag.total - lag.counts[BUCKETS_S.index(0.5)]
    assert over_half == 1  # one sample woke more than half a second late
    assert lag.counts[-1] == lag.total  # every sample under 5 s


def test_buckets_are_cumulative() -> None:
    lag = LoopLag()
    for value in (0.0, 0.007, 0.3, -1.0):
        lag.record(value)
    assert lag.total == 4 and lag.max_s == 0.3
    assert lag.counts[BUCKETS_S.index(0.005)] == 2  # 0 and the negative one
    assert lag.counts[BUCKETS_S.index(0.01)] == 3
    assert lag.counts[BUCKETS_S.index(0.5)] == 4

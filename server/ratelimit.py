"""Rate limits for signalling: token buckets per client address and per join token.

A socket's ``hello`` takes one token from its address's bucket (so one machine cannot
open sockets without end, nor try tokens by the thousand); every later message takes one
from the bucket of the participant's link (a page sends a few a minute — switches,
pings, chair controls; a flood is a bug or an attack). An empty bucket refuses with
``signal.rate_limited`` (close 4429); the others in the meeting are not affected.
Buckets are in memory, per app process; idle ones are forgotten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["Limiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass
class Limiter:
    """``rate`` tokens a second up to ``burst``, per key."""

    rate: float
    burst: float
    max_keys: int = 100_000
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _forget(self, now: float) -> None:
        """Drop buckets that have refilled (idle keys): they hold nothing worth keeping."""
        full_after = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.at >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # a flood of distinct keys: start over
            self._buckets.clear()

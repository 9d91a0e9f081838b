"""ICE consent freshness as RFC 7675 says it, for aioice's connections.

Every few seconds each side of a WebRTC connection asks the other, with a STUN binding
request, whether it still wants the media; consent expires when no answer has come for
30 s (RFC 7675, section 5.1), and the connection is then closed. aioice (0.13) instead
sends each check once and counts it failed when its answer is not back within 0.5 s,
and closes after six such checks in a row: a process whose event loop falls half a
second behind for half a minute — a 2-core server at full load, as the 20-participant
soak showed — has every connection of the room cut at once although every answer
arrived, and the whole room then joins again, which loads it more.

:func:`install` replaces aioice's check loop with one that sends each check with STUN
retransmissions (see :data:`CHECK_RETRANSMISSIONS`), and closes the
connection only when :data:`CONSENT_TIMEOUT_S` have passed since the last answer. A
peer that is really gone is still let go within about 30–40 s. Browsers do the same on
their side (Chromium: checks every ~5 s, 30 s without an answer).

This reaches into aioice internals (pinned version); ``tests/test_consent.py`` covers it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from aioice import stun
from aioice.ice import Connection

log = logging.getLogger(__name__)

CONSENT_INTERVAL_S = 5.0  # between checks, randomised 0.8–1.2 times (RFC 7675 5.1)
CONSENT_TIMEOUT_S = 30.0  # no answer for this long: consent has expired (RFC 7675 5.1)
CHECK_RETRANSMISSIONS = 3  # sent at 0, 0.5, 1.5 and 3.5 s; an answer counts until 7.5 s


@dataclass
class ConsentCounts:
    """Totals since the process started (read by ``/metrics``)."""

    checks: int = 0
    unanswered: int = 0
    expired: int = 0


COUNTS = ConsentCounts()
# aioice's own check loop, as imported (the one :func:`install` replaces).
AIOICE_QUERY_CONSENT = Connection.query_consent


async def _query_consent(self: Connection) -> None:
    """aioice's ``Connection.query_consent``, with RFC 7675's 30-s rule (module doc)."""
    assert self.remote_password is not None
    integrity_key = self.remote_password.encode("utf8")
    last_answer = time.monotonic()
    while True:
        await asyncio.sleep(CONSENT_INTERVAL_S * (0.8 + 0.4 * random.random()))
        for pair in list(self._nominated.values()):
            request = self.build_request(pair, nominate=False)
            COUNTS.checks += 1
            try:
                await pair.protocol.request(request, pair.remote_addr,
                                            integrity_key=integrity_key,
                                            retransmissions=CHECK_RETRANSMISSIONS)
                last_answer = time.monotonic()
            except stun.TransactionError:
                COUNTS.unanswered += 1
        silent = time.monotonic() - last_answer
        if silent >= CONSENT_TIMEOUT_S:
            COUNTS.expired += 1
            log.warning("ICE consent expired: no answer to consent checks for %.0f s; "
                        "closing the connection", silent)
            self._query_consent_task = None
            await self.close()
            return


def install() -> None:
    """Make every aioice connection of this process check consent as RFC 7675 says (the
    module doc). Idempotent; call before connections are made (importing
    :mod:`media.peer` does)."""
    setattr(Connection, "query_consent", _query_consent)  # noqa: B010 (a class we patch)


def installed() -> bool:
    """Whether :func:`install` has replaced aioice's check loop in this process."""
    method: Any = getattr(Connection, "query_consent", None)
    return method is _query_consent

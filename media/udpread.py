"""Read every datagram waiting on a connection's UDP socket in one loop callback.

asyncio's datagram transport reads one datagram each time the event loop finds the
socket readable, that is one per loop iteration. A participant's socket receives
~110 datagrams a second (camera and microphone); when the server's loop turns fewer
times than that — 20 participants, recording, uploads and database work on two cores —
the socket's queue grows without bound although the loop is never more than a fraction
of a second late: in the 20-participant soak, megabytes (tens of seconds of media)
waited in single sockets. Everything behind them waited too, including the STUN
consent checks and answers, so both sides declared consent lost and the connections
were cut, most of the room at once.

:func:`read_in_batches` replaces the transport's reader with one that reads up to
:data:`BATCH` datagrams per callback (as asyncio does, with the same error handling),
so a socket is emptied at the rate the loop turns times the batch. The transport keeps
everything else (sending, closing: closing removes this reader as it would its own).

This reaches into asyncio's selector event loop internals (``_add_reader``,
``_remove_reader``, the transport's ``_sock``, ``_protocol``, ``_conn_lost``); where they
are not as expected the transport is left as it is and False returned.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

BATCH = 64  # datagrams per callback; then other sockets and tasks get their turn


def read_in_batches(transport: asyncio.DatagramTransport) -> bool:
    """Make ``transport`` (a selector loop's UDP transport, open) read in batches.

    Returns False, changing nothing, when the loop or transport is not the kind this
    knows (another event loop implementation, a closed transport)."""
    loop: Any = asyncio.get_running_loop()
    t: Any = transport
    sock = getattr(t, "_sock", None)
    protocol = getattr(t, "_protocol", None)
    if (sock is None or protocol is None or getattr(t, "_conn_lost", True)
            or t.is_closing() or not hasattr(loop, "_add_reader")
            or not hasattr(loop, "_remove_reader")):
        return False
    max_size = int(getattr(t, "max_size", 256 * 1024))
    fd = sock.fileno()

    def read_ready() -> None:
        for _ in range(BATCH):
            if t._conn_lost:
                return
            try:
                data, addr = sock.recvfrom(max_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                t._fatal_error(exc, "Fatal read error on datagram transport")
                return
            protocol.datagram_received(data, addr)

    loop._remove_reader(fd)
    loop._add_reader(fd, read_ready)
    return True

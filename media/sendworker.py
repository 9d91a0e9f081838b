"""Worker processes that encrypt and send forwarded packets, so forwarding uses more
than the one core the event loop runs on.

Encrypting (SRTP) and the ``sendto`` system call are most of a forwarded packet's cost.
A :class:`SendWorkers` pool starts processes (``python -m media.sendworker FD``), each
connected by a ``SOCK_SEQPACKET`` pair. A fast path (:mod:`media.fastpath`) registers
its slot with one worker: a duplicate of the peer's UDP socket (``SCM_RIGHTS``), the
remote address and the SRTP key of the connection's sending direction. From then on it
only builds each RTP packet and queues it; :meth:`SendWorkers.flush` sends each
worker one message per published frame, and the worker protects and sends the lot.

Nothing here is retried or buffered beyond one frame: a worker that is behind (its
socket full) loses that frame for its slots, as a congested network would, and the
drop is counted. A worker that dies is logged and its slots go quiet; the participant
connections and recordings are not affected (they live in the server process).

Messages (big-endian): ``A`` slot u32, profile u32, key length u16, key, port u16,
host (ASCII), with the UDP socket as ancillary data; ``R`` slot u32; ``D`` then
repeated slot u32, length u16, packet.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import sys
from typing import Any

from media import nativesend

log = logging.getLogger(__name__)

MAX_MESSAGE = 256 * 1024  # bytes; one frame to every subscriber of a worker fits
# Room for bursts (a key frame to 19 subscribers is ~350 KB) so that a worker a few
# milliseconds behind does not cost everyone a key frame. Capped by net.core.wmem_max.
LINK_BUFFER = 4 * 1024 * 1024
_ITEM = struct.Struct("!IH")


class SendWorkers:
    """A pool of send workers (``count`` processes; 0: none, send in-process).

    With ``native``, where :mod:`media.nativesend` builds, :attr:`local` is the
    in-process native sender and no worker is started: one C call per frame in the
    server costs less than handing the packets to another process."""

    def __init__(self, count: int, native: bool = False) -> None:
        lib = nativesend.load() if native else None
        self.local = nativesend.NativeSender(lib) if lib is not None else None
        if self.local is not None:
            count = 0
        self._links: list[socket.socket] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._batches: list[list[bytes]] = []
        self._sizes: list[int] = []
        self._next_slot = 0
        self._next_worker = 0
        self.dropped_batches = 0
        for _ in range(count):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            for end, option in ((ours, socket.SO_SNDBUF), (theirs, socket.SO_RCVBUF)):
                end.setsockopt(socket.SOL_SOCKET, option, LINK_BUFFER)
            proc = subprocess.Popen(
                [sys.executable, "-m", "media.sendworker", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], close_fds=True,
            )
            theirs.close()
            ours.setblocking(False)
            self._links.append(ours)
            self._procs.append(proc)
            self._batches.append([])
            self._sizes.append(0)

    def __bool__(self) -> bool:
        return bool(self._links)

    def add(self, sock: socket.socket, addr: tuple[str, int], profile: int, key: bytes
            ) -> tuple[int, int] | None:
        """Register a slot; returns (worker, slot id), or None if no worker took it."""
        if not self._links:
            return None
        worker = self._next_worker % len(self._links)
        self._next_worker += 1
        self._next_slot += 1
        slot = self._next_slot
        host = addr[0].encode("ascii")
        message = (b"A" + struct.pack("!IIH", slot, profile, len(key)) + key
                   + struct.pack("!H", addr[1]) + host)
        try:
            socket.send_fds(self._links[worker], [message], [sock.fileno()])
        except OSError:
            log.exception("a send worker refused a slot; it is sent in-process")
            return None
        return worker, slot

    def remove(self, worker: int, slot: int) -> None:
        try:
            self._links[worker].send(b"R" + struct.pack("!I", slot))
        except OSError:
            pass  # the worker is gone or full: it drops the slot's socket when it exits

    def queue(self, worker: int, slot: int, packet: bytes) -> None:
        """Queue one RTP packet (unencrypted) for ``slot``; sent at the next flush."""
        batch = self._batches[worker]
        if self._sizes[worker] + len(packet) + 6 > MAX_MESSAGE:
            self._flush_one(worker)
        batch.append(_ITEM.pack(slot, len(packet)))
        batch.append(packet)
        self._sizes[worker] += len(packet) + 6

    def flush(self) -> None:
        """Hand every worker what was queued (called once per forwarded frame)."""
        for worker, batch in enumerate(self._batches):
            if batch:
                self._flush_one(worker)

    def _flush_one(self, worker: int) -> None:
        batch = self._batches[worker]
        try:
            self._links[worker].send(b"D" + b"".join(batch))
        except OSError:  # BlockingIOError: the worker is behind; or it is gone
            self.dropped_batches += 1
        batch.clear()
        self._sizes[worker] = 0

    def close(self) -> None:
        for link in self._links:
            link.close()  # the worker sees EOF and exits
        for proc in self._procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._links.clear()
        self._procs.clear()


def _serve(link: socket.socket) -> None:
    """The worker's loop: until the server closes the link."""
    from pylibsrtp import Policy, Session

    slots: dict[int, tuple[Any, socket.socket, tuple[str, int]]] = {}
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(link, MAX_MESSAGE + 16, 4)
        except OSError:
            break
        if not message:
            break
        kind = message[:1]
        if kind == b"D":
            view = memoryview(message)
            pos = 1
            end = len(message)
            while pos + 6 <= end:
                slot_id, size = _ITEM.unpack_from(message, pos)
                pos += 6
                entry = slots.get(slot_id)
                if entry is not None:
                    try:
                        entry[1].sendto(entry[0].protect(bytes(view[pos:pos + size])), entry[2])
                    except (OSError, ValueError):
                        pass  # a full or closed socket, a refused packet: lost like UDP
                pos += size
        elif kind == b"A":
            slot_id, profile, key_len = struct.unpack_from("!IIH", message, 1)
            key = message[11:11 + key_len]
            (port,) = struct.unpack_from("!H", message, 11 + key_len)
            host = message[13 + key_len:].decode("ascii")
            policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
            udp = socket.socket(fileno=fds[0]) if fds else None
            if udp is not None:
                slots[slot_id] = (Session(policy), udp, (host, port))
        elif kind == b"R":
            (slot_id,) = struct.unpack_from("!I", message, 1)
            entry = slots.pop(slot_id, None)
            if entry is not None:
                entry[1].close()
        for fd in fds[1:]:
            os.close(fd)


if __name__ == "__main__":
    _serve(socket.socket(fileno=int(sys.argv[1])))

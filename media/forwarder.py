"""Passthrough forwarding: publishers' encoded frames to subscribers, never decoded.

A :class:`SlotTrack` is one outgoing track of a subscriber's connection. aiortc's
``RTCRtpSender`` accepts pre-encoded frames from ``recv()`` and only packetises
them, so a slot costs no encoding. The :class:`Forwarder` routes each publisher's frames
(from :mod:`media.tap`) to the slots subscribed to it.

Each slot keeps its own timeline: when it is switched to another publisher its
timestamps continue from where they were, so the browser's jitter buffer sees one
steady stream. A video slot starts (and restarts after loss) at a key frame and asks
the publisher for one. A subscriber that does not keep up loses frames, never memory:
the queue is bounded and overflow drops what is queued.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack

from media.fastpath import FastPath, ntp_now, vp8_chunks
from media.frames import EncodedFrame
from media.sendworker import SendWorkers
from media.vp8 import is_keyframe

# A frame's nominal length in RTP units, used to continue a slot's timeline across a switch.
_STEP = {"audio": 960, "video": 3000}
_TIME_BASES = {48000: fractions.Fraction(1, 48000), 90000: fractions.Fraction(1, 90000)}
KEYFRAME_REQUEST_INTERVAL_S = 0.5
# Seconds between checks of the armed native slots (closed connections, sender reports).
SYNC_INTERVAL_S = 0.25

KeyframeRequest = Callable[[], None]


class OutgoingFrame:
    """What a slot hands aiortc's sender: the publisher's bytes, shared, not copied.

    aiortc packs anything that is not a decoded ``av.Frame`` through the codec's
    ``pack()``, which needs only ``bytes(x)``, ``x.pts`` and ``x.time_base``; an
    ``av.Packet`` would copy the frame once per subscriber.
    """

    __slots__ = ("data", "pts", "time_base")

    def __init__(self, data: bytes, pts: int, time_base: fractions.Fraction) -> None:
        self.data = data
        self.pts = pts
        self.time_base = time_base

    def __bytes__(self) -> bytes:
        return self.data


class SlotTrack(MediaStreamTrack):
    """An outgoing track fed with encoded frames.

    Without ``fast``, ``recv`` yields them to aiortc's sender. With a
    :class:`~media.fastpath.FastPath`, :meth:`push` sends them itself, at once, and
    ``recv`` never yields (until the path is ready, frames are dropped; if it turns out
    unusable, the slot falls back to aiortc's sender)."""

    def __init__(self, kind: str, *, max_queue: int = 64, fast: FastPath | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.fast = fast
        self.source: str | None = None
        self.delivered = 0
        self.dropped = 0
        self._queue: asyncio.Queue[Any] = asyncio.Queue(max_queue)
        self._need_keyframe = kind == "video"
        self._rebase = True
        self._offset = 0
        self._last_pts: int | None = None
        self._request_keyframe: KeyframeRequest | None = None

    async def recv(self) -> Any:  # an OutgoingFrame, which aiortc packs without encoding
        packet = await self._queue.get()
        self.delivered += 1
        return packet

    def assign(self, source: str | None, request_keyframe: KeyframeRequest | None) -> None:
        """Switch the slot to ``source`` (None: idle). Queued frames of the old source go."""
        self.source = source
        self._request_keyframe = request_keyframe
        self._need_keyframe = self.kind == "video"
        self._rebase = True
        while not self._queue.empty():
            self._queue.get_nowait()
        if request_keyframe is not None and self.kind == "video":
            request_keyframe()

    def request_keyframe(self) -> None:
        """The subscriber lost picture (PLI/FIR): pass the request to the publisher."""
        if self._request_keyframe is not None:
            self._request_keyframe()

    def push(self, frame: EncodedFrame, chunks: list[bytes] | None = None,
             via_workers: bool = False) -> int | None:
        """Forward ``frame`` (``chunks``: its VP8 cut for the fast path, if made;
        ``via_workers``: the fast path hands it to its send worker, if it has one).

        Returns the slot's native number when its fast path is native and now armed:
        from this frame on, the forwarder's one call per published frame sends on it
        (see :class:`Forwarder`), and ``push`` is not called for it again until it is
        disarmed. Otherwise None: the frame was sent, queued or dropped here."""
        fast = self.fast
        if fast is not None and not fast.ready():
            if fast.broken:
                # Not usable on this connection: aiortc's sender takes the slot's frames.
                self.fast = fast = None
            else:
                self.dropped += 1
                self._need_keyframe = self.kind == "video"
                return None
        if self._need_keyframe:
            if not is_keyframe(frame.data):
                self.dropped += 1
                # Rate-limited by the forwarder; needed when the connection became ready
                # long after the slot was assigned.
                self.request_keyframe()
                return None
            self._need_keyframe = False
        if fast is not None and fast.native is not None:
            # The stream (timeline, sequence numbers) continues in C.
            self._rebase = True
            return fast.arm(frame.rtp_timestamp, _STEP[self.kind])
        if self._rebase:
            last = self._last_pts
            start = 0 if last is None else (last + _STEP[self.kind]) & 0xFFFFFFFF
            self._offset = start - frame.rtp_timestamp
            self._rebase = False
        # Timestamps are 32-bit and wrap (the publisher's start at random): compare the
        # way RTP does, modulo 2^32, so a wrap is not taken for a step backwards.
        pts = (frame.rtp_timestamp + self._offset) & 0xFFFFFFFF
        last = self._last_pts
        if last is not None and (pts - last - 1) & 0xFFFFFFFF >= 0x7FFFFFFF:
            pts = (last + 1) & 0xFFFFFFFF
        if fast is not None:
            fast.send(frame.data, pts, chunks, via_workers)
            self.delivered += 1
            self._last_pts = pts
            return None
        packet = OutgoingFrame(
            frame.data, pts,
            _TIME_BASES.get(frame.clock_rate) or fractions.Fraction(1, frame.clock_rate),
        )
        if self._queue.full():
            while not self._queue.empty():
                self._queue.get_nowait()
                self.dropped += 1
            if self.kind == "video":
                # The frames lost were references for what follows: restart at a key frame.
                self._need_keyframe = True
                self.request_keyframe()
                return None
        self._queue.put_nowait(packet)
        self._last_pts = pts
        return None


@dataclass
class ForwardedTotals:
    """What every forwarder of this process handed to subscribers since start
    (monotonic: for the operator's metrics). ``packets`` counts RTP packets (a video
    frame's chunks), ``bytes`` their payload."""

    frames: int = 0
    packets: int = 0
    bytes: int = 0


FORWARDED = ForwardedTotals()


class Forwarder:
    """Routes publishers' frames to subscribed slots (one forwarder per room).

    With ``workers``, fast slots queue their packets to send worker processes, and each
    published frame is handed over in one message per worker. Where the native send
    path is loaded (``workers.local``), a slot whose fast path is ready and has passed
    its key frame is *armed*: its stream lives in C, and a published frame goes to all
    armed slots in one call, with no Python per subscriber. Every
    :data:`SYNC_INTERVAL_S` the forwarder checks the armed slots' connections (one that
    closed is disarmed and goes back to :meth:`SlotTrack.push`) and copies their
    counters to aiortc's senders for the RTCP sender reports."""

    def __init__(self, workers: SendWorkers | None = None, worker_fanout: int = 16) -> None:
        self._workers = workers
        # Below this many subscribers a frame is sent in-process: handing it to a worker
        # costs more than it saves in small meetings.
        self._worker_fanout = worker_fanout
        self._slots: dict[str, set[SlotTrack]] = {}
        # Per publisher: the slots sent from Python (waiting for a key frame, not
        # native), and the armed native ones (slot number array for C, and by track).
        self._pending: dict[str, set[SlotTrack]] = {}
        self._armed: dict[str, array[int]] = {}
        self._armed_by: dict[SlotTrack, tuple[str, int]] = {}
        self._keyframe: dict[str, KeyframeRequest] = {}
        self._last_request: dict[str, float] = {}
        self._muted: set[str] = set()
        self._next_sync = 0.0

    def set_muted(self, key: str, muted: bool) -> None:
        """Stop (or resume) forwarding publisher ``key``; its recording is not affected."""
        if muted:
            self._muted.add(key)
        else:
            self._muted.discard(key)

    def add_publisher(self, key: str, request_keyframe: Callable[[], None]) -> None:
        self._slots.setdefault(key, set())
        self._pending.setdefault(key, set())
        self._keyframe[key] = request_keyframe

    def remove_publisher(self, key: str) -> None:
        for slot in self._slots.pop(key, set()):
            self._unarm(slot)
            slot.assign(None, None)
        self._pending.pop(key, None)
        self._armed.pop(key, None)
        self._keyframe.pop(key, None)
        self._last_request.pop(key, None)
        self._muted.discard(key)

    def subscribe(self, key: str, slot: SlotTrack) -> None:
        if slot.source is not None:
            self.unsubscribe(slot)
        self._slots.setdefault(key, set()).add(slot)
        self._pending.setdefault(key, set()).add(slot)
        slot.assign(key, lambda: self.request_keyframe(key))

    def unsubscribe(self, slot: SlotTrack) -> None:
        self._unarm(slot)
        if slot.source is not None:
            self._slots.get(slot.source, set()).discard(slot)
            self._pending.get(slot.source, set()).discard(slot)
        slot.assign(None, None)

    def _arm(self, key: str, slot: SlotTrack, number: int) -> None:
        self._pending.get(key, set()).discard(slot)
        self._armed.setdefault(key, array("I")).append(number)
        self._armed_by[slot] = (key, number)
        assert slot.fast is not None
        slot.fast.release = lambda: self._unarm(slot)

    def _unarm(self, slot: SlotTrack) -> None:
        """Take ``slot`` out of the native fan-out (back to :meth:`SlotTrack.push` if it
        is still subscribed). Must happen before its native number is given back."""
        armed = self._armed_by.pop(slot, None)
        if armed is None:
            return
        key, number = armed
        numbers = self._armed.get(key)
        if numbers is not None and number in numbers:
            numbers.remove(number)
        fast = slot.fast
        if fast is not None:
            fast.release = None
            fast.disarm()
            slot.delivered += fast.sync()
        if slot in self._slots.get(key, ()):
            self._pending.setdefault(key, set()).add(slot)

    def sync(self) -> None:
        """Check the armed slots (see the class doc); also called on a timer by
        :meth:`publish`."""
        for slot in list(self._armed_by):
            fast = slot.fast
            if fast is None or not fast.ready():
                self._unarm(slot)
                continue
            slot.delivered += fast.sync()

    def publish(self, key: str, frame: EncodedFrame) -> None:
        if key in self._muted:
            return
        slots = self._slots.get(key)
        if not slots:
            return
        # Cut once per published frame, not once per subscriber.
        chunks = vp8_chunks(frame.data) if frame.kind == "video" else None
        via_workers = bool(self._workers) and len(slots) >= self._worker_fanout
        local = self._workers.local if self._workers is not None else None
        fanout = len(slots)
        FORWARDED.frames += fanout
        FORWARDED.packets += fanout * (len(chunks) if chunks else 1)
        FORWARDED.bytes += fanout * len(frame.data)
        pending = self._pending.get(key)
        if pending:
            for slot in list(pending):
                number = slot.push(frame, chunks, via_workers)
                if number is not None:
                    self._arm(key, slot, number)
        armed = self._armed.get(key)
        if armed and local is not None:
            # Kept for retransmission only when some slot sends it natively.
            local.begin(chunks if chunks is not None else [frame.data],
                        frame.kind == "video", ntp_now())
            local.forward(armed, frame.rtp_timestamp)
        if self._workers is not None:
            self._workers.flush()
        if self._armed_by:
            now = time.monotonic()
            if now >= self._next_sync:
                self._next_sync = now + SYNC_INTERVAL_S
                self.sync()

    def request_keyframe(self, key: str) -> None:
        """Ask publisher ``key`` for a key frame, at most every 0.5 s."""
        now = time.monotonic()
        if now - self._last_request.get(key, 0.0) < KEYFRAME_REQUEST_INTERVAL_S:
            return
        request = self._keyframe.get(key)
        if request is not None:
            self._last_request[key] = now
            request()

    def subscribers(self, key: str) -> int:
        return len(self._slots.get(key, ()))

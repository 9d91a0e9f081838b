"""Write one track's encoded frames to a WebM file without re-encoding.

A :class:`TrackRecorder` is fed on the event loop (``write`` never blocks: it only
enqueues) and muxes in its own thread with PyAV. The queue is bounded: if the disk
cannot keep up, frames are dropped and counted, never buffered without limit. Video
starts at the first key frame (earlier frames cannot be decoded on their own).

The recorder owns its file until :meth:`close` returns; after that the caller owns it
(hashes it, uploads it). Errors never escape into the media path: they end up in the
:class:`RecordingResult`.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from media.frames import EncodedFrame
from media.vp8 import is_keyframe, keyframe_size

log = logging.getLogger(__name__)

CONTAINER = "webm"
_ENCODERS = {"vp8": "libvpx", "opus": "libopus"}
SUPPORTED_CODECS = frozenset(_ENCODERS)
# A frame's duration for the file's last frame, which has no successor to measure by.
_LAST_FRAME_S = {"audio": 0.020, "video": 1 / 30}
_WRAP = 1 << 32
_POLL_S = 0.02


# What a track carries unless told otherwise (a second video track may be a screen).
DEFAULT_SOURCE = {"audio": "microphone", "video": "camera"}


@dataclass(frozen=True)
class RecordingResult:
    """What a recorder wrote. ``started_at``/``ended_at`` are server wall-clock
    seconds (``time.time()``) of the first and last frame written; None if nothing
    was written, in which case ``path`` may not exist."""

    kind: str
    codec: str
    container: str
    path: Path
    source: str  # what was captured: microphone, camera or screen
    started_at: float | None
    ended_at: float | None
    duration_s: float
    frames: int
    dropped: int
    error: str | None


class TrackRecorder:
    def __init__(self, kind: str, codec: str, path: Path, *, max_queue: int = 1000,
                 source: str | None = None) -> None:
        if codec not in SUPPORTED_CODECS:
            raise ValueError(f"cannot record codec {codec!r}")
        self.kind = kind
        self.source = source or DEFAULT_SOURCE[kind]
        self.codec = codec
        self.path = path
        # Frames wait in a deque drained by the writer every _POLL_S: waking the thread
        # once per frame (queue.Queue's Condition) cost more than the muxing itself.
        self._pending: collections.deque[EncodedFrame] = collections.deque()
        self._max_queue = max_queue
        self._stop = threading.Event()
        self._failed = False
        self._thread = threading.Thread(
            target=self._run, name=f"recorder-{kind}-{path.name}", daemon=True
        )
        self._started = False
        self._closed = False
        self._waiting_for_keyframe = kind == "video"
        self._dropped = 0
        # Written by the thread, read after it has ended.
        self._frames = 0
        self._first: EncodedFrame | None = None
        self._last: EncodedFrame | None = None
        self._first_pts = 0
        self._last_pts = -1
        self._error: str | None = None
        self._write_failures = 0  # counted by the thread; _dropped by the loop
        # Writer state, touched only by the writer thread.
        self._container: Any = None
        self._stream: Any = None
        self._unwrap = 0
        self._prev_ts: int | None = None
        self._rtp_time_base = fractions.Fraction(1, 1)

    def write(self, frame: EncodedFrame) -> None:
        """Enqueue ``frame``; drop (and count) it when closed, full or undecodable."""
        if self._closed:
            return
        if self._waiting_for_keyframe:
            if keyframe_size(frame.data) is None:
                self._dropped += 1
                return
            self._waiting_for_keyframe = False
        if not self._started:
            self._started = True
            self._thread.start()
        if self._failed or len(self._pending) >= self._max_queue:
            self._dropped += 1
            return
        self._pending.append(frame)

    async def close(self) -> RecordingResult:
        """Stop accepting frames, finish the file and describe it."""
        if not self._closed:
            self._closed = True
            if self._started:
                self._stop.set()
                await asyncio.to_thread(self._thread.join)
        return self.result()

    def result(self) -> RecordingResult:
        duration = 0.0
        if self._first is not None and self._last is not None and self._frames:
            rate = self._first.clock_rate
            duration = (self._last_pts - self._first_pts) / rate + _LAST_FRAME_S[self.kind]
        return RecordingResult(
            kind=self.kind,
            codec=self.codec,
            container=CONTAINER,
            path=self.path,
            source=self.source,
            started_at=self._first.received_at if self._first else None,
            ended_at=self._last.received_at if self._last else None,
            duration_s=round(duration, 3),
            frames=self._frames,
            dropped=self._dropped + self._write_failures,
            error=self._error,
        )

    # -- writer thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.wait(_POLL_S)
                while self._pending:
                    self._write(self._pending.popleft())
                if stopping:
                    break
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("recorder for %s failed", self.path)
            # write() drops (and counts) from now on; what is pending is lost.
            self._failed = True
            self._write_failures += len(self._pending)
            self._pending.clear()
        finally:
            if self._container is not None:
                try:
                    self._container.close()
                except Exception as exc:
                    self._error = self._error or f"close failed: {exc}"

    def _write(self, frame: EncodedFrame) -> None:
        """Mux one frame, opening the file on the first (writer thread only)."""
        if self._container is None:
            self._container, self._stream = self._open(frame)
            self._first = frame
            # Packets are stamped in the RTP clock; PyAV rescales them to the stream's
            # time base, which the WebM muxer changes (to 1/1000) when it writes the header.
            self._rtp_time_base = fractions.Fraction(1, frame.clock_rate)
        ts = frame.rtp_timestamp
        if self._prev_ts is not None and ts < self._prev_ts and self._prev_ts - ts > _WRAP // 2:
            self._unwrap += _WRAP
        self._prev_ts = ts
        pts = ts + self._unwrap
        if self._frames == 0:
            self._first_pts = pts
        # The container needs strictly increasing timestamps; a reordered or duplicated
        # RTP timestamp is nudged, not dropped.
        pts = max(pts, self._last_pts + 1)
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = pts - self._first_pts
        packet.time_base = self._rtp_time_base
        packet.stream = self._stream
        if self.kind == "video" and is_keyframe(frame.data):
            packet.is_keyframe = True
        try:
            self._container.mux(packet)
        except av.FFmpegError as exc:
            self._write_failures += 1
            log.warning("%s: could not write a frame: %s", self.path.name, exc)
            return
        self._frames += 1
        self._last_pts = pts
        self._last = frame

    def _open(self, first: EncodedFrame) -> tuple[Any, Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.path), "w", format=CONTAINER)
        time_base = fractions.Fraction(1, first.clock_rate)
        if self.kind == "video":
            size = keyframe_size(first.data)
            assert size is not None  # write() only lets a key frame start the file
            stream: Any = container.add_stream(_ENCODERS[self.codec], rate=30)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
        else:
            # WebRTC Opus is always signalled as 48 kHz stereo (RFC 7587).
            stream = container.add_stream(_ENCODERS[self.codec], rate=48000, layout="stereo")
        stream.time_base = time_base
        return container, stream

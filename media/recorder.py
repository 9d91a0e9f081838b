"""Write one track's encoded frames to WebM segments without re-encoding.

A :class:`TrackRecorder` is fed on the event loop (``write`` never blocks: it only
enqueues) and muxes in its own thread with PyAV. The queue is bounded: if the disk
cannot keep up, frames are dropped and counted, never buffered without limit. Video
starts at the first key frame (earlier frames cannot be decoded on their own).

The track is written as a series of segments of about ``segment_s`` seconds (server
receive time), each a complete WebM file playable on its own: a video segment starts at
a key frame (the recorder asks the publisher for one when a segment is due, through
``request_keyframe``), and each segment's timestamps start at 0. Where a segment lies on
the track's timeline is in its :class:`Segment` (``offset``, RTP clock units from the
track's first frame; ``first_received_at``, server wall clock), so segments can be put
back together without papering over gaps (:mod:`media.assemble`). As each segment closes,
``on_segment`` is called with it on the event loop; from then on the caller owns that
file (hashes it, uploads it). A crash loses at most the segment being written.

Errors never escape into the media path: they end up in the :class:`RecordingResult`.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import threading
from collections.abc import Callable
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
# How often a recorder's thread drains its frames. Each wake-up takes the GIL from the
# event loop (40 recorders at N = 20): at 0.02 s that cost ~8 % more server CPU per
# forwarded frame than 0.25 s (bench-media, same run). A crash loses the segment being
# written either way, so waiting longer loses nothing more.
_POLL_S = 0.25
_LIVE_MUXING = {"cluster_time_limit": "1000", "flush_packets": "1"}


# What a track carries unless told otherwise (a second video track may be a screen).
DEFAULT_SOURCE = {"audio": "microphone", "video": "camera"}


DEFAULT_SEGMENT_S = 10.0
_KEYFRAME_RETRY_S = 2.0  # ask again this often while a video segment waits for one


@dataclass(frozen=True)
class Segment:
    """One closed segment file of a track. ``seq`` counts from 0; ``offset`` is the
    segment's first frame on the track's timeline in RTP clock units (``clock_rate`` per
    second) from the track's first frame; times are server wall-clock seconds."""

    seq: int
    path: Path
    kind: str
    codec: str
    clock_rate: int
    offset: int
    first_received_at: float
    last_received_at: float
    frames: int
    duration_s: float

    @property
    def offset_s(self) -> float:
        return self.offset / self.clock_rate


@dataclass(frozen=True)
class RecordingResult:
    """What a recorder wrote. ``started_at``/``ended_at`` are server wall-clock
    seconds (``time.time()``) of the first and last frame written; None if nothing
    was written. ``segments`` are the files written, in order; ``path`` is the base name
    they were made from (and where :mod:`media.assemble` may put the continuous file)."""

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
    segments: tuple[Segment, ...] = ()


def segment_path(base: Path, seq: int) -> Path:
    """Where segment ``seq`` of the track recorded under ``base`` is written."""
    return base.with_name(f"{base.stem}-{seq:05d}{base.suffix}")


class TrackRecorder:
    def __init__(self, kind: str, codec: str, path: Path, *, max_queue: int = 1000,
                 source: str | None = None, segment_s: float = DEFAULT_SEGMENT_S,
                 on_segment: Callable[[Segment], None] | None = None,
                 request_keyframe: Callable[[], None] | None = None) -> None:
        if codec not in SUPPORTED_CODECS:
            raise ValueError(f"cannot record codec {codec!r}")
        self.kind = kind
        self.source = source or DEFAULT_SOURCE[kind]
        self.codec = codec
        self.path = path
        self.segment_s = segment_s
        self._on_segment = on_segment
        self._request_keyframe = request_keyframe
        self._loop: asyncio.AbstractEventLoop | None = None
        # Segment boundaries are decided on the loop (where key frames can be asked for).
        self._segment_started: float | None = None
        self._keyframe_asked: float | None = None
        # Frames wait in a deque drained by the writer every _POLL_S: waking the thread
        # once per frame (queue.Queue's Condition) cost more than the muxing itself. The
        # flag marks a frame that starts a new segment.
        self._pending: collections.deque[tuple[EncodedFrame, bool]] = collections.deque()
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
        self._segments: list[Segment] = []
        self._seg_path: Path | None = None
        self._seg_first: EncodedFrame | None = None
        self._seg_first_pts = 0
        self._seg_frames = 0

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
            self._loop = asyncio.get_running_loop()
            self._thread.start()
        if self._failed or len(self._pending) >= self._max_queue:
            self._dropped += 1
            return
        self._pending.append((frame, self._starts_segment(frame)))

    def _starts_segment(self, frame: EncodedFrame) -> bool:
        """Whether ``frame`` begins a new segment (on the loop). A video segment may only
        begin at a key frame: when one is due the publisher is asked for it."""
        now = frame.received_at
        if self._segment_started is None:
            self._segment_started = now
            return False
        if now - self._segment_started < self.segment_s:
            return False
        if self.kind == "video" and keyframe_size(frame.data) is None:
            if self._request_keyframe is not None and (
                    self._keyframe_asked is None or now - self._keyframe_asked
                    >= _KEYFRAME_RETRY_S):
                self._keyframe_asked = now
                self._request_keyframe()
            return False
        self._segment_started, self._keyframe_asked = now, None
        return True

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
            segments=tuple(self._segments),
        )

    # -- writer thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.wait(_POLL_S)
                while self._pending:
                    self._write(*self._pending.popleft())
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
            self._close_segment()

    def _close_segment(self) -> None:
        """Finish the segment being written and hand it over (writer thread only)."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            container.close()
        except Exception as exc:
            self._error = self._error or f"close failed: {exc}"
            return
        first, last = self._seg_first, self._last
        if first is None or last is None or self._seg_path is None or not self._seg_frames:
            return
        rate = first.clock_rate
        segment = Segment(
            seq=len(self._segments), path=self._seg_path, kind=self.kind, codec=self.codec,
            clock_rate=rate, offset=self._seg_first_pts - self._first_pts,
            first_received_at=first.received_at, last_received_at=last.received_at,
            frames=self._seg_frames,
            duration_s=round((self._last_pts - self._seg_first_pts) / rate
                             + _LAST_FRAME_S[self.kind], 3),
        )
        self._segments.append(segment)
        if self._on_segment is not None and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._on_segment, segment)
            except RuntimeError:  # the loop is gone (shutdown): the result still lists it
                pass

    def _write(self, frame: EncodedFrame, new_segment: bool) -> None:
        """Mux one frame, opening a segment file on the first and when ``new_segment``
        (writer thread only)."""
        if new_segment and self._container is not None:
            self._close_segment()
        ts = frame.rtp_timestamp
        if self._prev_ts is not None and ts < self._prev_ts and self._prev_ts - ts > _WRAP // 2:
            self._unwrap += _WRAP
        self._prev_ts = ts
        pts = ts + self._unwrap
        if self._frames == 0:
            self._first_pts = pts
            self._first = frame
            # Packets are stamped in the RTP clock; PyAV rescales them to the stream's
            # time base, which the WebM muxer changes (to 1/1000) when it writes the header.
            self._rtp_time_base = fractions.Fraction(1, frame.clock_rate)
        # The container needs strictly increasing timestamps; a reordered or duplicated
        # RTP timestamp is nudged, not dropped.
        pts = max(pts, self._last_pts + 1)
        if self._container is None:
            self._seg_path = segment_path(self.path, len(self._segments))
            self._container, self._stream = self._open(frame, self._seg_path)
            self._seg_first, self._seg_first_pts, self._seg_frames = frame, pts, 0
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = pts - self._seg_first_pts
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
        self._seg_frames += 1
        self._last_pts = pts
        self._last = frame

    def _open(self, first: EncodedFrame, path: Path) -> tuple[Any, Any]:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Clusters of at most a second, written out as they close: a process killed
        # mid-segment leaves a readable file up to its last second.
        container = av.open(str(path), "w", format=CONTAINER, options=_LIVE_MUXING)
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

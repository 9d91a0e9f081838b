"""Is a participant's camera on? Decided by the server from the video it receives.

Two parts:

* :func:`analyse_keyframe` decodes one VP8 key frame (self-contained, so no decoder
  state is kept between samples), downscales it to a small grey image and says whether
  it is black; :func:`frozen` compares two such images.
* :class:`CameraState` is the state machine: it is fed every received frame (cheap: a
  timestamp and a size) and the analysed samples, and says ``on`` or ``off`` with a
  reason — ``no_video`` (no video track), ``no_frames`` (none for ``stale_s``),
  ``black``, ``frozen`` (no change between samples for ``frozen_s``), ``undecodable``
  (samples that cannot be decoded, e.g. another codec or garbage), ``too_large``
  (absurd frame size), and — with the optional face check (:mod:`media.face`) — ``no_face``
  (nobody in front of the camera in NO_FACE_SAMPLES samples in a row).

The :class:`~media.camera_monitor.CameraMonitor` (server side) asks the publisher for a
key frame every ``sample_every_s`` and analyses it in a thread: at 640×480 that is one
decode every few seconds instead of thirty a second. Times are seconds of any clock
chosen by the caller (tests pass them in).
"""

from __future__ import annotations

import enum
import fractions
from dataclasses import dataclass
from typing import TYPE_CHECKING

import av
import numpy as np

if TYPE_CHECKING:
    from media.face import FaceDetector

SAMPLE_SIZE = (64, 48)  # width, height of the grey image a sample is reduced to
MAX_PIXELS = 4096 * 2304  # larger "frames" are refused before decoding


class Reason(enum.StrEnum):
    CHECKING = "checking"  # frames arrive, none analysed yet: not yet known to be on
    NO_VIDEO = "no_video"
    NO_FRAMES = "no_frames"
    BLACK = "black"
    FROZEN = "frozen"
    UNDECODABLE = "undecodable"
    TOO_LARGE = "too_large"
    NO_FACE = "no_face"  # the optional face check found nobody in front of the camera


NO_FACE_SAMPLES = 2  # consecutive samples without a face before ``no_face`` (it errs)
STILL_SIZE = (320, 240)  # a proof-of-presence still, JPEG


@dataclass(frozen=True)
class Sample:
    """One analysed key frame: ``grey`` is SAMPLE_SIZE, uint8; ``black`` says it all;
    ``face`` is None unless the face check ran; ``still`` a JPEG when one was asked for."""

    grey: np.ndarray
    black: bool
    mean: float
    face: bool | None = None
    still: bytes | None = None


class SampleError(Exception):
    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.value)
        self.reason = reason


def analyse_keyframe(data: bytes, *, black_level: float = 16.0,
                     black_spread: float = 4.0, faces: FaceDetector | None = None,
                     still: bool = False) -> Sample:
    """Decode a VP8 key frame and reduce it to a :class:`Sample` (blocking: run it in a
    thread). With ``faces``, also look for a face (not in a black picture); with
    ``still``, keep a small JPEG of it. Raises :class:`SampleError` (``too_large``,
    ``undecodable``)."""
    from media.vp8 import keyframe_size

    size = keyframe_size(data)
    if size is None:
        raise SampleError(Reason.UNDECODABLE)
    if size[0] * size[1] > MAX_PIXELS:
        raise SampleError(Reason.TOO_LARGE)
    try:
        codec = av.CodecContext.create("vp8", "r")
        frames = codec.decode(av.Packet(data))
    except (av.FFmpegError, ValueError):
        raise SampleError(Reason.UNDECODABLE) from None
    if not frames:
        raise SampleError(Reason.UNDECODABLE)
    small = frames[0].reformat(width=SAMPLE_SIZE[0], height=SAMPLE_SIZE[1], format="gray")
    grey = small.to_ndarray().astype(np.uint8)
    mean = float(grey.mean())
    # Black: dark everywhere (a covered lens or a disabled track, which browsers send as
    # black frames), not merely a dark room: the spread of a real scene is larger.
    black = mean < black_level and float(grey.std()) < black_spread
    face = None
    if faces is not None and not black:
        from media.face import face_input

        face = faces.has_face(face_input(frames[0]))
    return Sample(grey, black, mean, face, _jpeg(frames[0]) if still else None)


def _jpeg(frame: av.VideoFrame) -> bytes:
    """``frame`` as a small JPEG (STILL_SIZE, quality ~ 5 of 31)."""
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height = STILL_SIZE
    enc.pix_fmt = "yuvj420p"
    enc.time_base = fractions.Fraction(1, 1)
    enc.options = {"qmin": "2", "qmax": "5"}
    small = frame.reformat(width=STILL_SIZE[0], height=STILL_SIZE[1], format="yuvj420p")
    return b"".join(bytes(p) for p in [*enc.encode(small), *enc.encode(None)])


def frozen(a: Sample, b: Sample, *, threshold: float = 0.6) -> bool:
    """Whether two samples are the same picture (mean absolute difference, grey levels).

    A live camera always differs a little (sensor noise, light, breathing); a frozen or
    replayed still does not."""
    diff = np.abs(a.grey.astype(np.int16) - b.grey.astype(np.int16))
    return float(diff.mean()) < threshold


class CameraState:
    """The camera state of one participant (see the module doc for the reasons).

    ``changes`` lists (time, on, reason) transitions, the first one included. A
    transition's time is when the evidence for it was taken, not when it was decided:
    ``no_frames`` counts from the last frame received, a sampled state from the arrival
    of the key frame that showed it, ``frozen`` from the first sample of the unchanged
    picture (never earlier than the previous transition)."""

    def __init__(self, now: float, *, stale_s: float = 2.0, frozen_s: float = 20.0,
                 has_video: bool = True) -> None:
        self.stale_s = stale_s
        self.frozen_s = frozen_s
        self.on = False
        self.reason: Reason | None = Reason.NO_FRAMES if has_video else Reason.NO_VIDEO
        self.changes: list[tuple[float, bool, Reason | None]] = [(now, False, self.reason)]
        self._has_video = has_video
        self._last_frame: float | None = None
        self._last_sample: Sample | None = None
        self._same_since: float | None = None
        self._last_sample_at = now
        self._sample_problem: Reason | None = None
        self._sample_taken_at = now
        self._no_face_run = 0  # consecutive samples in which the face check found nobody

    def frame(self, now: float) -> None:
        """A video frame arrived (any frame, key or not)."""
        self._has_video = True
        self._last_frame = now

    def sample(self, now: float, sample: Sample | None, problem: Reason | None = None,
               taken_at: float | None = None) -> None:
        """An analysed key frame (or the reason it could not be analysed); ``taken_at``
        is when that frame arrived (default ``now``)."""
        taken = now if taken_at is None else taken_at
        self._sample_problem = problem
        self._sample_taken_at = taken
        if sample is None:
            return
        previous = self._last_sample
        if previous is not None and frozen(previous, sample):
            if self._same_since is None:
                self._same_since = self._last_sample_at  # unchanged since that sample
        else:
            self._same_since = None
        self._last_sample = sample
        self._last_sample_at = taken
        self._no_face_run = self._no_face_run + 1 if sample.face is False else 0

    def update(self, now: float) -> bool:
        """Re-decide at ``now``; True if the state changed (see :attr:`changes`)."""
        reason = self._reason(now)
        on = reason is None
        if on == self.on and reason == self.reason:
            return False
        self.on, self.reason = on, reason
        self.changes.append((max(self.changes[-1][0], self._evidence_time(now, reason)),
                             on, reason))
        return True

    def _evidence_time(self, now: float, reason: Reason | None) -> float:
        if reason == Reason.NO_FRAMES and self._last_frame is not None:
            return self._last_frame
        if reason == Reason.FROZEN and self._same_since is not None:
            return self._same_since
        if reason in (None, Reason.BLACK, Reason.UNDECODABLE, Reason.TOO_LARGE,
                      Reason.NO_FACE):
            return min(now, self._sample_taken_at)
        return now

    def _reason(self, now: float) -> Reason | None:
        if not self._has_video:
            return Reason.NO_VIDEO
        if self._last_frame is None or now - self._last_frame > self.stale_s:
            return Reason.NO_FRAMES
        if self._sample_problem is not None:
            return self._sample_problem
        sample = self._last_sample
        if sample is None:
            return Reason.CHECKING
        if sample.black:
            return Reason.BLACK
        if self._same_since is not None and now - self._same_since >= self.frozen_s:
            return Reason.FROZEN
        if self._no_face_run >= NO_FACE_SAMPLES:
            return Reason.NO_FACE
        return None

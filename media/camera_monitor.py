"""Watches one participant's camera on the server: :mod:`media.camera` applied live.

Every received video frame is noted (a timestamp: no decoding). Every ``sample_every_s``
the monitor asks the publisher for a key frame and analyses the next one that arrives
in a worker thread; a key frame that arrives anyway (a subscriber asked) is used when a
sample is due. The state is re-decided twice a second; each change is reported with the
server's wall-clock time. If key frames stop coming although frames do (a publisher
that ignores requests), the camera is not taken to be on: after ``4 × sample_every_s``
without a sample the state goes back to ``checking``.

While the camera is off for what the picture shows (black, frozen, no face, not yet
checked) samples come every ``OFF_SAMPLE_S`` instead: a camera that comes back is dated
within about a second, not up to a whole sampling interval later (the record's "on" time
is the first key frame that shows it). An off camera's key frames are small, and only
off cameras pay for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from media.camera import CameraState, Reason, Sample, SampleError, analyse_keyframe
from media.face import FaceDetector
from media.frames import EncodedFrame
from media.tasks import cancel_and_wait
from media.vp8 import is_keyframe

log = logging.getLogger(__name__)

ChangeListener = Callable[[float, bool, Reason | None], None]  # wall time, on, reason
StillListener = Callable[[float, bytes], None]  # wall time the frame arrived, JPEG
TICK_S = 0.5
OFF_SAMPLE_S = 1.0  # seconds between samples while the picture says the camera is off


@dataclass(frozen=True)
class CameraConfig:
    """Seconds: between samples, without frames before ``no_frames``, unchanged before
    ``frozen``; ``faces``: a detector for the optional ``no_face`` check (shared, thread
    safe); ``still_every_s``: keep a proof-of-presence still this often (0: never)."""

    sample_every_s: float = 3.0
    stale_s: float = 2.0
    frozen_s: float = 20.0
    faces: FaceDetector | None = None
    still_every_s: float = 0.0


class CameraMonitor:
    def __init__(self, *, request_keyframe: Callable[[], None], on_change: ChangeListener,
                 has_video: bool = True, config: CameraConfig | None = None,
                 on_still: StillListener | None = None) -> None:
        config = config or CameraConfig()
        self._request_keyframe = request_keyframe
        self._on_change = on_change
        self._on_still = on_still
        self._faces = config.faces
        self._still_every_s = config.still_every_s if on_still is not None else 0.0
        self._last_still: float | None = None
        self.sample_every_s = config.sample_every_s
        self.state = CameraState(time.monotonic(), stale_s=config.stale_s,
                                 frozen_s=config.frozen_s, has_video=has_video)
        self._sample_due = True
        self._decoding = False
        self._last_sample_at = time.monotonic()
        self._last_request = 0.0
        self._task: asyncio.Task[None] | None = None
        self.samples = 0
        self._closed = False

    def start(self) -> None:
        """Report the initial state and start the periodic checks (on the event loop)."""
        _, on, reason = self.state.changes[0]
        self._on_change(time.time(), on, reason)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def frame(self, frame: EncodedFrame) -> None:
        """A video frame of the camera track arrived (called on the event loop)."""
        if self._closed:
            return
        self.state.frame(time.monotonic())
        if self._sample_due and not self._decoding and is_keyframe(frame.data):
            self._sample_due = False
            self._decoding = True
            taken_at = time.monotonic()
            still = self._still_every_s > 0 and (
                self._last_still is None or taken_at - self._last_still >= self._still_every_s)
            if still:
                self._last_still = taken_at
            task = asyncio.get_running_loop().run_in_executor(
                None, _analyse, frame.data, self._faces, still)
            task.add_done_callback(lambda done: self._analysed(done, taken_at))

    def sample_soon(self) -> None:
        """Look at the next key frame, asking for one now (e.g. the page says the camera
        was switched: the server checks for itself rather than believing it)."""
        if not self._closed:
            self._last_request = time.monotonic()
            self._sample_due = True
            self._request_keyframe()

    def _analysed(self, done: asyncio.Future[tuple[Sample | None, Reason | None]],
                  taken_at: float) -> None:
        self._decoding = False
        if self._closed or done.cancelled():
            return
        sample, problem = done.result()
        now = time.monotonic()
        self._last_sample_at = now
        self.samples += 1
        self.state.sample(now, sample, problem, taken_at=taken_at)
        self._update(now)
        if sample is not None and sample.still is not None and self._on_still is not None:
            self._on_still(time.time() - (now - taken_at), sample.still)

    async def _run(self) -> None:
        while not self._closed:
            now = time.monotonic()
            if now - self._last_request >= self._interval():
                self._last_request = now
                self._sample_due = True
                self._request_keyframe()
            if now - self._last_sample_at > 4 * self.sample_every_s:
                self.state.sample(now, None, Reason.CHECKING)
            self._update(now)
            await asyncio.sleep(TICK_S)

    def _interval(self) -> float:
        """Seconds until the next sample is asked for."""
        if self.state.on or self.state.reason in (Reason.NO_VIDEO, Reason.NO_FRAMES):
            return self.sample_every_s
        return min(self.sample_every_s, OFF_SAMPLE_S)

    def _update(self, now: float) -> None:
        if self.state.update(now):
            at = self.state.changes[-1][0]
            # The transition's monotonic time on the wall clock.
            self._on_change(time.time() - (time.monotonic() - at), self.state.on,
                            self.state.reason)

    async def close(self) -> None:
        self._closed = True
        await cancel_and_wait(self._task, name="camera monitor")


def _analyse(data: bytes, faces: FaceDetector | None, still: bool
             ) -> tuple[Sample | None, Reason | None]:
    try:
        return analyse_keyframe(data, faces=faces, still=still), None
    except SampleError as exc:
        return None, exc.reason
    except Exception:  # the monitor must never fail on what a client sends
        log.exception("camera sample failed")
        return None, Reason.UNDECODABLE

"""The live camera monitor fed bad video (issue 4, bad input): a track that never
carries a frame, key frames of absurd size, undecodable key frames, and an analysis
that blows up. Each is ``off`` with its reason, never ``on``, and the monitor goes on
working (a good key frame afterwards turns the camera on)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import media.camera_monitor as camera_monitor
from media.camera import Reason
from media.camera_monitor import CameraConfig, CameraMonitor
from media.frames import EncodedFrame
from tests.test_camera import keyframe, scene

HUGE = b"\x10\x02\x00\x9d\x01\x2a\xff\x3f\xff\x3f" + b"\x00" * 50  # 16383×16383
GARBAGE = b"\x10\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01" + b"\xff" * 50  # 640×480, junk


def frame(data: bytes) -> EncodedFrame:
    return EncodedFrame(kind="video", codec="vp8", data=data, rtp_timestamp=0,
                        clock_rate=90000, received_at=time.time())


class Watched:
    def __init__(self, **config: Any) -> None:
        self.changes: list[tuple[bool, Reason | None]] = []
        self.requests = 0
        self.monitor = CameraMonitor(
            request_keyframe=self._requested,
            on_change=lambda at, on, reason: self.changes.append((on, reason)),
            config=CameraConfig(sample_every_s=0.5, stale_s=2.0, **config))

    def _requested(self) -> None:
        self.requests += 1

    async def feed(self, data: bytes, seconds: float, fps: float = 20.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.monitor.frame(frame(data))
            await asyncio.sleep(1 / fps)


async def test_a_track_that_never_carries_a_frame_is_never_on() -> None:
    w = Watched()
    w.monitor.start()
    await asyncio.sleep(3.0)
    await w.monitor.close()
    assert w.changes == [(False, Reason.NO_FRAMES)]
    assert w.requests >= 2  # it kept asking


@pytest.mark.parametrize(("data", "reason"), [(HUGE, Reason.TOO_LARGE),
                                              (GARBAGE, Reason.UNDECODABLE)])
async def test_bad_key_frames_are_off_with_the_reason_then_a_good_one_is_on(
        data: bytes, reason: Reason) -> None:
    w = Watched()
    w.monitor.start()
    await w.feed(data, 2.0)
    assert (False, reason) in w.changes and not any(on for on, _ in w.changes), w.changes
    assert w.monitor.samples >= 2
    await w.feed(keyframe(scene()), 2.0)
    await w.monitor.close()
    assert w.changes[-1] == (True, None), w.changes


async def test_an_analysis_that_fails_is_undecodable_and_the_monitor_goes_on(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("a decoder bug")

    monkeypatch.setattr(camera_monitor, "analyse_keyframe", broken)
    w = Watched()
    w.monitor.start()
    await w.feed(keyframe(scene()), 2.0)
    assert w.changes[-1] == (False, Reason.UNDECODABLE), w.changes
    assert any("camera sample failed" in m for m in caplog.messages)
    monkeypatch.undo()
    await w.feed(keyframe(scene()), 2.0)
    await w.monitor.close()
    assert w.changes[-1] == (True, None), w.changes

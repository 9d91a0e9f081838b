"""A real aiortc client for tests: sends synthetic video and a tone to the server.

It encodes (aiortc's own VP8/Opus encoders), so it is for a handful of seconds of
media in tests, not for benchmarks.
"""

from __future__ import annotations

import fractions
import math
import time

import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from media.frames import EncodedFrame
from media.tap import install_tap

SAMPLE_RATE = 48000
SAMPLES = 960  # 20 ms


class ToneTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, freq: float = 440.0, volume: float = 0.25) -> None:
        super().__init__()
        self._pts = 0
        self._freq = freq
        self._amplitude = 32000 * volume
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        import asyncio

        if self._start is None:
            self._start = time.time()
        wait = self._start + self._pts / SAMPLE_RATE - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(SAMPLES) + self._pts) / SAMPLE_RATE
        samples = (np.sin(2 * math.pi * self._freq * t) * self._amplitude).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._pts += SAMPLES
        return frame


class PatternTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.black = False  # send black frames (like a browser's disabled track)
        self._n = 0
        self._size = (width, height)
        self._fps = fps
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        import asyncio

        if self.readyState != "live":
            raise MediaStreamError  # stopped: the sender stops sending, as a browser does
        if self._start is None:
            self._start = time.time()
        wait = self._start + self._n / self._fps - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        w, h = self._size
        img = np.zeros((h, w, 3), dtype=np.uint8)
        if not self.black:
            img[:, (self._n * 4) % w :, 1] = 200
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self._n * (90000 // self._fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self._n += 1
        return frame


async def make_offer(
    audio: bool = True, video: bool = True, receive_slots: int = 0,
    received: dict[str, list[EncodedFrame]] | None = None,
    screen: dict[str, object] | None = None,
    volume: float = 0.25,
    speech: str | None = None,
) -> RTCPeerConnection:
    """A client peer connection with its offer set as local description.

    With ``receive_slots``, it also offers that many receive-only audio and video
    m-lines (as the browser does); the encoded frames arriving on each are appended to
    ``received[mid]`` (tapped before decoding, so the client costs no decoding). Like a
    browser, it bundles every m-line on one transport (max-bundle). ``volume`` is the
    tone's amplitude (1.0: full scale; 0: silence), which aiortc's sender also puts in
    each packet's audio level.

    With ``screen`` (a dict filled in here), it also offers a "shared screen" video
    track (sending from the start) and one receive slot for others' screens; their mids
    go into ``screen["send"]`` and ``screen["receive"]``, as the offer message wants.

    With ``speech`` (an audio file), the microphone plays that file (looped) instead of
    the tone.
    """
    pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    if audio and speech is not None:
        from aiortc.contrib.media import MediaPlayer

        pc.addTransceiver(MediaPlayer(speech, loop=True).audio, direction="sendonly")
    elif audio:
        pc.addTransceiver(ToneTrack(volume=volume), direction="sendonly")
    if video:
        pc.addTransceiver(PatternTrack(), direction="sendonly")
    shared = None if screen is None else pc.addTransceiver(PatternTrack(), direction="sendonly")
    slots = [pc.addTransceiver(kind, direction="recvonly")
             for _ in range(receive_slots) for kind in ("audio", "video")]
    screen_slot = None if screen is None else pc.addTransceiver("video", direction="recvonly")
    if screen_slot is not None:
        slots.append(screen_slot)
    await pc.setLocalDescription(await pc.createOffer())
    if screen is not None and shared is not None and screen_slot is not None:
        screen["send"], screen["receive"] = shared.mid, [screen_slot.mid]
    for transceiver in slots:
        mid = str(transceiver.mid)
        frames = (received if received is not None else {}).setdefault(mid, [])
        install_tap(transceiver.receiver, transceiver.kind, frames.append)
    return pc


async def accept_answer(pc: RTCPeerConnection, sdp: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

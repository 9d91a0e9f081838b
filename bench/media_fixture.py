"""Pre-encoded media for the media benchmark: VP8 640x480 ~500 kbps 30 fps and Opus.

Made once with PyAV (a moving pattern and a tone) and cached in ``bench/.cache``; the
benchmark clients send these packets as they are, so they never encode or decode.
"""

from __future__ import annotations

import fractions
import pickle
from pathlib import Path

import av
import numpy as np

CACHE = Path(__file__).parent / ".cache" / "media-v1.pkl"
SECONDS = 10
FPS = 30


def _video() -> list[bytes]:
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = 640, 480, "yuv420p"
    enc.time_base = fractions.Fraction(1, FPS)
    enc.bit_rate = 500_000
    enc.gop_size = FPS  # a key frame every second: late subscribers wait at most that
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    out: list[bytes] = []
    yy, xx = np.mgrid[0:480, 0:640]
    for i in range(SECONDS * FPS):
        img = np.stack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, (xx + yy) % 256], -1)
        frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def _audio() -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    enc.time_base = fractions.Fraction(1, 48000)
    enc.bit_rate = 32_000
    out: list[bytes] = []
    for i in range(SECONDS * 50):
        t = (np.arange(960) + i * 960) / 48000
        mono = (np.sin(2 * np.pi * 330 * t) * 6000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16",
                                           layout="stereo")
        frame.sample_rate, frame.pts = 48000, i * 960
        out += [bytes(p) for p in enc.encode(frame)]
    return out


def load() -> dict[str, list[bytes]]:
    """{"video": [...], "audio": [...]} encoded frames, 30 fps and 50 fps."""
    if CACHE.exists():
        data: dict[str, list[bytes]] = pickle.loads(CACHE.read_bytes())
        return data
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    data = {"video": _video(), "audio": _audio()}
    CACHE.write_bytes(pickle.dumps(data))
    return data

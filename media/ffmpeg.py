"""Locate the ffmpeg binary: the system's on PATH, else the imageio-ffmpeg wheel's."""

from __future__ import annotations

import shutil
from functools import lru_cache


@lru_cache(maxsize=1)
def ffmpeg_path() -> str:
    """Path of an ffmpeg executable; raises FileNotFoundError if there is none."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - it is a hard dependency
        raise FileNotFoundError("ffmpeg: not on PATH and imageio-ffmpeg is not installed") from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())

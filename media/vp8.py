"""Just enough of the VP8 bitstream (RFC 6386 §9.1) to find keyframes and their size."""

from __future__ import annotations

_START_CODE = b"\x9d\x01\x2a"


def is_keyframe(frame: bytes) -> bool:
    """True when ``frame`` is a VP8 key frame (frame tag bit 0 clear, start code present)."""
    return len(frame) >= 10 and not (frame[0] & 0x01) and frame[3:6] == _START_CODE


def keyframe_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels of a key frame, or None for anything else."""
    if not is_keyframe(frame):
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    if width == 0 or height == 0:
        return None
    return width, height

"""Encoded media frames as they leave aiortc's jitter buffer, before any decoding."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One complete encoded frame of one track.

    ``rtp_timestamp`` is in units of ``clock_rate`` (90 kHz video, 48 kHz Opus) and
    starts near zero for each receiver (aiortc's timestamp mapper). ``received_at``
    is the server's wall clock (``time.time()``, seconds) when the frame completed:
    the server is the witness, so this, not anything the client says, anchors the
    frame on the session timeline.
    """

    kind: str  # "audio" | "video"
    codec: str  # lower-case codec name: "opus", "vp8"
    data: bytes
    rtp_timestamp: int
    clock_rate: int
    received_at: float

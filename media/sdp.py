"""Check an SDP offer before aiortc sees it.

aiortc's parser raises assorted exceptions on bad input and accepts offers hoidong
cannot record; :func:`check_offer` turns both into an :class:`SdpError` whose
``code`` is a catalogue key, so the participant gets a clear message.
"""

from __future__ import annotations

from aiortc.sdp import SessionDescription

from media.recorder import SUPPORTED_CODECS

MAX_SDP_BYTES = 64 * 1024


class SdpError(ValueError):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def check_offer(sdp: object) -> SessionDescription:
    """Parse ``sdp`` and make sure it offers media hoidong can take.

    Raises SdpError: ``sdp.too_large`` (over 64 KiB), ``sdp.unparsable``,
    ``sdp.no_media`` (no audio or video section), ``sdp.no_supported_codec`` (no
    section offers Opus or VP8).
    """
    if not isinstance(sdp, str) or not sdp.strip():
        raise SdpError("sdp.unparsable")
    if len(sdp.encode("utf-8", "surrogatepass")) > MAX_SDP_BYTES:
        raise SdpError("sdp.too_large")
    if not sdp.lstrip().startswith("v=0"):
        raise SdpError("sdp.unparsable")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception:
        # aiortc raises ValueError, KeyError, IndexError... on malformed lines.
        raise SdpError("sdp.unparsable") from None
    media = [m for m in parsed.media if m.kind in ("audio", "video")]
    if not media:
        raise SdpError("sdp.no_media")
    if not any(
        codec.mimeType.split("/")[-1].lower() in SUPPORTED_CODECS
        for m in media for codec in m.rtp.codecs
    ):
        raise SdpError("sdp.no_supported_codec")
    return parsed

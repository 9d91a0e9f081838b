"""The hooks into aiortc's receiver (pinned version): refuse what they cannot do."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection

from media.tap import TapUnavailable, install_level_tap, install_tap


async def test_taps_install_once_and_refuse_changed_internals() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        install_tap(receiver, "audio", lambda frame: None)
        with pytest.raises(TapUnavailable):
            install_tap(receiver, "audio", lambda frame: None)
        install_level_tap(receiver, lambda level: None)
        with pytest.raises(TapUnavailable):
            install_level_tap(receiver, lambda level: None)

        other = pc.addTransceiver("video").receiver
        # aiortc's private decoder queue gone (renamed in a new version): refused.
        other._RTCRtpReceiver__decoder_queue = None
        with pytest.raises(TapUnavailable):
            install_tap(other, "video", lambda frame: None)
    finally:
        await pc.close()


async def test_the_level_tap_reports_levels_and_passes_packets_on() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        seen: list[int] = []
        passed: list[object] = []

        async def original(packet: object, arrival_time_ms: int) -> None:
            passed.append(packet)

        receiver._handle_rtp_packet = original  # type: ignore[method-assign]
        install_level_tap(receiver, seen.append)

        class Ext:
            def __init__(self, level: tuple[bool, int] | None) -> None:
                self.audio_level = level

        class Packet:
            def __init__(self, level: tuple[bool, int] | None) -> None:
                self.extensions = Ext(level)

        for level in [(True, 30), None, (False, 127)]:
            await receiver._handle_rtp_packet(Packet(level), arrival_time_ms=0)  # type: ignore[arg-type]
        assert seen == [30, 127]
        assert len(passed) == 3  # every packet still reaches aiortc
    finally:
        await pc.close()

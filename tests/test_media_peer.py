"""The participant peer records real WebRTC media without decoding it."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import av
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from media.assemble import Piece, assemble
from media.peer import ParticipantPeer
from media.sdp import SdpError
from tests.mediaclient import accept_answer, make_offer


async def test_peer_records_audio_and_video(tmp_path: Path) -> None:
    peer = ParticipantPeer(tmp_path, segment_s=1.5)
    client = await make_offer()
    answer = await peer.answer(client.localDescription.sdp)
    assert "VP8" in answer and "opus" in answer
    assert "H264" not in answer  # codecs are pinned to what hoidong records
    await accept_answer(client, answer)
    await asyncio.sleep(4)
    await client.close()
    results = {r.kind: r for r in await peer.close()}
    assert set(results) == {"audio", "video"}
    for kind, r in results.items():
        assert r.error is None
        assert r.frames > 0
        assert 2.0 < r.duration_s < 5.0, (kind, r.duration_s)
        assert r.started_at is not None and r.ended_at is not None
        # Segments of ~1.5 s, each a file playable on its own from 0 (video from a key
        # frame), placed one after the other on the track's timeline.
        assert len(r.segments) >= 2, (kind, r.segments)
        assert sum(seg.frames for seg in r.segments) == r.frames
        assert [seg.seq for seg in r.segments] == list(range(len(r.segments)))
        assert r.segments[0].offset == 0
        for a, b in itertools.pairwise(r.segments):
            assert abs(a.offset_s + a.duration_s - b.offset_s) < 0.1, (a, b)
        for seg in r.segments:
            with av.open(str(seg.path)) as c:
                stream = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
                first = next(pk for pk in c.demux(stream) if pk.pts is not None)
                assert first.pts == 0 and (kind == "audio" or first.is_keyframe)
            with av.open(str(seg.path)) as c:
                assert sum(1 for _ in c.decode(c.streams[0])) > 0
        made = assemble([Piece(seg.path, seg.offset_s) for seg in r.segments], r.path)
        assert made.packets == r.frames and not made.skipped
        with av.open(str(r.path)) as c:
            stream = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
            assert stream.codec_context.name == ("opus" if kind == "audio" else "vp8")
            packets = [pk for pk in c.demux(stream) if pk.pts is not None]
            assert packets
            # The file's own timeline must match the media's length (not the RTP clock
            # misread in another time base).
            last = float(packets[-1].pts * stream.time_base)
            assert abs(last - r.duration_s) < 0.2, (kind, last, r.duration_s)
        with av.open(str(r.path)) as c:
            stream = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
            decoded = sum(1 for _ in c.decode(stream))
            assert decoded > 0
    assert results["video"].codec == "vp8" and results["audio"].codec == "opus"


async def test_second_close_returns_same_results(tmp_path: Path) -> None:
    peer = ParticipantPeer(tmp_path)
    assert await peer.close() == []
    assert await peer.close() == []


@pytest.mark.parametrize(
    ("sdp", "code"),
    [
        ("", "sdp.unparsable"),
        (None, "sdp.unparsable"),
        ("hello world", "sdp.unparsable"),
        ("v=0\r\n" + "a=x\r\n" * 20000, "sdp.too_large"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "sdp.no_media"),
        (
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 H265/90000\r\n",
            "sdp.no_supported_codec",
        ),
    ],
)
async def test_bad_offers_get_a_code(tmp_path: Path, sdp: object, code: str) -> None:
    peer = ParticipantPeer(tmp_path)
    with pytest.raises(SdpError) as info:
        await peer.answer(sdp)
    assert info.value.code == code
    await peer.close()


async def test_second_offer_is_refused(tmp_path: Path) -> None:
    peer = ParticipantPeer(tmp_path)
    client = await make_offer(video=False)
    await peer.answer(client.localDescription.sdp)
    with pytest.raises(SdpError) as info:
        await peer.answer(client.localDescription.sdp)
    assert info.value.code == "sdp.unexpected"
    await client.close()
    await peer.close()


async def test_a_camera_in_a_codec_the_server_cannot_check_is_refused(tmp_path: Path) -> None:
    """Opus audio with an H.264-only camera: the camera check reads VP8 only, so the
    offer is refused with a code the page shows in both languages (never taken as a
    camera that is on)."""
    client = RTCPeerConnection()
    client.addTrack(AudioStreamTrack())
    video = client.addTransceiver(VideoStreamTrack())
    video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                               if c.mimeType == "video/H264"])
    await client.setLocalDescription(await client.createOffer())
    assert "VP8" not in client.localDescription.sdp
    peer = ParticipantPeer(tmp_path)
    with pytest.raises(SdpError) as info:
        await peer.answer(client.localDescription.sdp)
    assert info.value.code == "sdp.no_supported_codec"
    await peer.close()
    await client.close()

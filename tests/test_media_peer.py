"""The participant peer records real WebRTC media without decoding it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import pytest

from media.peer import ParticipantPeer
from media.sdp import SdpError
from tests.mediaclient import accept_answer, make_offer


async def test_peer_records_audio_and_video(tmp_path: Path) -> None:
    peer = ParticipantPeer(tmp_path)
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

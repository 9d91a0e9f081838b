"""Transcript merging and export formats; pure Python, no model needed."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest

from transcription import (
    FORMAT,
    Speaker,
    SpeakerSegment,
    TranscriptSegment,
    Word,
    from_json,
    merge_by_time,
    to_json,
    to_text,
    to_webvtt,
)

CHAIR = Speaker("u1", "Nguyễn <Văn> & A", "Chủ tịch hội đồng")
MEMBER = Speaker("u2", "Trần Thị Bình", "Ủy viên")
GUEST = Speaker("u3", "Lê Minh", "Khách mời")

VI_TEXT = "Hội đồng kiểm định chất lượng giáo dục đã thông qua báo cáo tự đánh giá."
# Time cue per the WebVTT spec: hours optional, at least 2 digits when present.
CUE_TIMING = re.compile(r"^(\d{2,}:)?\d{2}:\d{2}\.\d{3} --> (\d{2,}:)?\d{2}:\d{2}\.\d{3}$")


def seg(start: float, end: float, text: str) -> TranscriptSegment:
    words = [Word(start, end, " " + text.split()[0], 0.9)] if text.split() else []
    return TranscriptSegment(start, end, text, words)


def sample_tracks() -> list[tuple[Speaker, float, list[TranscriptSegment]]]:
    return [
        (CHAIR, 0.0, [seg(0.0, 2.0, "Khai mạc phiên họp."), seg(10.0, 12.5, VI_TEXT)]),
        (MEMBER, 5.0, [seg(0.0, 3.0, "Tôi đồng ý."), seg(5.0, 6.0, "Xin cảm ơn.")]),
        # Joined late and speaks at the same instant as MEMBER's second segment.
        (GUEST, 7.25, [seg(2.75, 3.75, "Chào mọi người.")]),
    ]


def merged() -> list[SpeakerSegment]:
    return merge_by_time(sample_tracks())


def test_merge_applies_offsets_and_sorts() -> None:
    result = merged()
    assert [(s.speaker_id, s.start, s.end) for s in result] == [
        ("u1", 0.0, 2.0),
        ("u2", 5.0, 8.0),
        ("u2", 10.0, 11.0),
        ("u3", 10.0, 11.0),
        ("u1", 10.0, 12.5),
    ]
    guest = result[3]
    assert (guest.speaker_name, guest.speaker_role) == ("Lê Minh", "Khách mời")
    assert guest.words[0].start == pytest.approx(10.0)
    assert guest.words[0].end == pytest.approx(11.0)


def test_merge_is_stable_and_leaves_input_alone() -> None:
    tracks = sample_tracks()
    same = [seg(1.0, 2.0, "một"), seg(1.0, 2.0, "hai")]
    result = merge_by_time([(MEMBER, 0.0, same), *tracks])
    assert [s.text for s in result[:3]] == ["Khai mạc phiên họp.", "một", "hai"]
    assert tracks[1][2][0].start == 0.0


def test_merge_rejects_non_finite_offset() -> None:
    with pytest.raises(ValueError):
        merge_by_time([(CHAIR, float("nan"), [seg(0, 1, "a")])])


def test_merge_of_nothing() -> None:
    assert merge_by_time([]) == []
    assert to_webvtt([]) == "WEBVTT\n"
    assert to_text([]) == ""


def test_webvtt_structure_and_escaping() -> None:
    segments = [
        *merged(),
        SpeakerSegment("u1", CHAIR.name, CHAIR.role, 3725.5, 3726.0, "a --> b <i>x</i>\n\nc", []),
        SpeakerSegment("u2", MEMBER.name, MEMBER.role, 3727.0, 3727.0, "   ", []),
    ]
    vtt = to_webvtt(segments)
    assert vtt.startswith("WEBVTT\n\n")
    blocks = [b for b in vtt.split("\n\n")[1:] if b.strip()]
    assert len(blocks) == 6  # the blank-text segment is skipped
    for block in blocks:
        timing, payload = block.strip("\n").split("\n")
        assert CUE_TIMING.match(timing), timing
        assert "-->" not in payload
        assert re.fullmatch(r"<v [^<>]+>[^<>]*", payload), payload
    assert "<v Nguyễn &lt;Văn&gt; &amp; A>Khai mạc phiên họp." in vtt
    assert "01:02:05.500 --> 01:02:06.000\n<v Nguyễn &lt;Văn&gt; &amp; A>a --&gt; b" in vtt
    assert "&lt;i&gt;x&lt;/i&gt; c" in vtt
    assert "00:00:05.000 --> 00:00:08.000\n<v Trần Thị Bình>Tôi đồng ý." in vtt


def test_webvtt_zero_length_and_negative_times() -> None:
    vtt = to_webvtt([SpeakerSegment("x", "", "", -0.2, -0.1, "ồ", [])])
    assert "00:00:00.000 --> 00:00:00.001\n<v x>ồ" in vtt


def test_text_lines() -> None:
    text = to_text(merged())
    lines = text.splitlines()
    assert lines[0] == "[00:00:00] Nguyễn <Văn> & A: Khai mạc phiên họp."
    assert lines[1] == "[00:00:05] Trần Thị Bình: Tôi đồng ý."
    assert lines[3] == "[00:00:10] Lê Minh: Chào mọi người."
    late = to_text([SpeakerSegment("u1", "A", "", 3 * 3600 + 61.9, 11000, "x", [])])
    assert late == "[03:01:01] A: x\n"


def test_json_round_trip() -> None:
    segments = merged()
    speakers = [CHAIR, MEMBER, GUEST, Speaker("u4", "Im lặng", "Thư ký")]
    doc = to_json(segments, session_id="s-1", language="vi", model="base", speakers=speakers)
    assert doc["format"] == FORMAT
    assert [s["id"] for s in doc["speakers"]] == ["u1", "u2", "u3", "u4"]
    encoded = json.dumps(doc, ensure_ascii=False)
    assert VI_TEXT in encoded
    back = from_json(json.loads(encoded))
    assert back.session_id == "s-1"
    assert (back.language, back.model) == ("vi", "base")
    assert back.speakers == speakers
    assert back.segments == segments


def test_json_rounds_times_to_milliseconds() -> None:
    track = [TranscriptSegment(0.1, 0.2, "x", [Word(0.1, 0.2, " x", 0.123456)])]
    segments = merge_by_time([(CHAIR, 0.2, track)])
    doc = to_json(segments, session_id="s", language="vi", model="m", speakers=[CHAIR])
    first = doc["segments"][0]
    assert (first["start"], first["end"]) == (0.3, 0.4)
    assert first["words"][0]["probability"] == 0.1235


def test_json_rejects_inconsistent_speakers() -> None:
    with pytest.raises(ValueError):
        to_json(merged(), session_id="s", language="vi", model="m", speakers=[CHAIR])
    with pytest.raises(ValueError):
        to_json([], session_id="s", language="vi", model="m", speakers=[CHAIR, CHAIR])
    with pytest.raises(ValueError):
        from_json({"format": "other/1"})
    with pytest.raises(ValueError):
        from_json({"format": FORMAT, "speakers": []})


def test_vietnamese_stays_nfc() -> None:
    nfd_name = unicodedata.normalize("NFD", MEMBER.name)
    nfd_text = unicodedata.normalize("NFD", VI_TEXT)
    assert nfd_text != VI_TEXT
    segments = [SpeakerSegment("u2", nfd_name, "", 1.0, 2.0, nfd_text, [])]
    speakers = [Speaker("u2", nfd_name, "")]
    outputs = [
        to_webvtt(segments),
        to_text(segments),
        json.dumps(
            to_json(segments, session_id="s", language="vi", model="m", speakers=speakers),
            ensure_ascii=False,
        ),
    ]
    for out in outputs:
        assert unicodedata.is_normalized("NFC", out)
        assert VI_TEXT in out
        assert MEMBER.name in out
    # Already-NFC text passes through byte for byte.
    nfc = [SpeakerSegment("u2", MEMBER.name, "", 1.0, 2.0, VI_TEXT, [])]
    assert to_text(nfc).encode() == f"[00:00:01] {MEMBER.name}: {VI_TEXT}\n".encode()

"""Word times kept where the track has voice (transcription.speech)."""

from __future__ import annotations

from transcription.speech import snap_to_speech
from transcription.transcript import TranscriptSegment, Word


def seg(*words: tuple[float, float]) -> TranscriptSegment:
    ws = [Word(a, b, f" w{i}", 0.9) for i, (a, b) in enumerate(words)]
    return TranscriptSegment(ws[0].start, ws[-1].end, "".join(w.text for w in ws), ws)


REGIONS = [(1.0, 3.0), (10.0, 12.0)]


def times(segments: list[TranscriptSegment]) -> list[tuple[float, float]]:
    return [(w.start, w.end) for s in segments for w in s.words]


def test_words_in_speech_keep_their_times() -> None:
    segments = [seg((1.0, 1.5), (1.6, 2.9)), seg((10.2, 10.8))]
    assert snap_to_speech(segments, REGIONS) == segments


def test_a_word_in_the_silence_moves_to_the_nearest_speech() -> None:
    # 3.1-3.5 is just after the first stretch; 9.0-9.4 just before the second.
    out = snap_to_speech([seg((2.5, 2.9), (3.1, 3.5)), seg((9.0, 9.4), (10.1, 10.5))],
                         REGIONS)
    assert times(out) == [(2.5, 2.9), (2.6, 3.0), (10.0, 10.4), (10.1, 10.5)]
    assert (out[0].start, out[0].end) == (2.5, 3.0)  # the segment spans its words
    assert out[1].start == 10.0


def test_order_is_kept_and_no_regions_change_nothing() -> None:
    out = snap_to_speech([seg((0.2, 0.4), (1.05, 1.1))], REGIONS)
    starts = [a for a, _ in times(out)]
    ends = [b for _, b in times(out)]
    assert starts == sorted(starts) and ends == sorted(ends)
    assert times(out)[0] == (1.0, 1.2)
    original = [seg((5.0, 5.5))]
    assert snap_to_speech(original, []) == original

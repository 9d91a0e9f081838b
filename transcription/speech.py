"""Where there is voice on a track, and keeping word times there.

A participant's track carries only that participant's voice, so a word can only have
been spoken where the track has speech. Whisper's word times drift at the edges of its
windows (the batched pipeline, which cuts the speech into chunks, most of all) and now
and then put a word in the silence after a turn — where, in the merged transcript, it
lands inside the next speaker's turn. :func:`snap_to_speech` moves such a word to the
nearest stretch of speech; words already in speech keep their times.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Any

from transcription.transcript import TranscriptSegment, Word

__all__ = ["snap_to_speech", "speech_regions"]

SAMPLE_RATE = 16000


def speech_regions(audio: Any) -> list[tuple[float, float]]:
    """Stretches of speech (seconds) in ``audio`` (16 kHz mono float32), by faster-whisper's
    Silero VAD without padding: tight around the voice. Blocking (~1 s per 10 min)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    found = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=300,
                                                    speech_pad_ms=0))
    return [(r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE) for r in found]


def snap_to_speech(segments: list[TranscriptSegment], regions: list[tuple[float, float]]
                   ) -> list[TranscriptSegment]:
    """``segments`` with every word whose middle lies outside ``regions`` (sorted, not
    overlapping) moved into the nearest one, keeping its length where the region allows;
    word order is kept (a moved word never starts or ends before the word before it)
    and a segment with a moved word spans its words. No regions: unchanged."""
    if not regions:
        return segments
    starts = [a for a, _ in regions]
    out: list[TranscriptSegment] = []
    last_start = last_end = 0.0
    for seg in segments:
        words: list[Word] = []
        moved = False
        for w in seg.words:
            start, end = _snapped(w.start, w.end, regions, starts)
            start, end = max(start, last_start), max(end, last_end, start)
            last_start, last_end = start, end
            if (start, end) == (w.start, w.end):
                words.append(w)
            else:
                moved = True
                words.append(dataclasses.replace(w, start=start, end=end))
        if moved:
            seg = dataclasses.replace(seg, words=words, start=words[0].start,
                                      end=words[-1].end)
        out.append(seg)
    return out


def _snapped(start: float, end: float, regions: list[tuple[float, float]],
             starts: list[float]) -> tuple[float, float]:
    mid = (start + end) / 2
    i = bisect.bisect_right(starts, mid) - 1  # the last region starting at or before mid
    if i >= 0 and regions[i][0] <= mid <= regions[i][1]:
        return start, end
    before = regions[i] if i >= 0 else None
    after = regions[i + 1] if i + 1 < len(regions) else None
    length = max(0.0, end - start)
    if after is None or (before is not None and mid - before[1] <= after[0] - mid):
        assert before is not None
        a, b = before
        return max(a, b - length), b
    a, b = after
    return a, min(b, a + length)

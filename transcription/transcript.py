"""Transcript data and its export formats (JSON, WebVTT, plain text).

All times are seconds as ``float``. A ``TranscriptSegment`` is relative to the start of
one participant's audio track; a ``SpeakerSegment`` is on the session timeline
(``merge_by_time`` adds each track's offset). Everything here is pure and fast; it does
not need a model.

Text is normalised to Unicode NFC on export so that Vietnamese diacritics compare and
search consistently whatever the input produced (Whisper, a macOS keyboard, ...).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FORMAT",
    "Speaker",
    "SpeakerSegment",
    "TrackTranscript",
    "TranscriptDocument",
    "TranscriptSegment",
    "Word",
    "from_json",
    "merge_by_time",
    "to_json",
    "to_text",
    "to_webvtt",
]

FORMAT = "hoidong-transcript/1"
"""Value of the ``"format"`` field written by ``to_json`` and required by ``from_json``."""


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word. ``text`` is as Whisper produced it, usually with a leading
    space that separates it from the previous word; ``probability`` is in [0, 1]."""

    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True, slots=True)
class TranscriptSegment:
    """A Whisper segment, times relative to the start of its audio track.

    ``avg_logprob`` and ``no_speech_prob`` are Whisper's confidence figures, kept for
    filtering hallucinations later; they are not exported.
    """

    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0


@dataclass(frozen=True, slots=True)
class Speaker:
    """A meeting participant: ``id`` is stable and unique within a session; ``name`` and
    ``role`` (e.g. "Chủ tịch hội đồng") are display text."""

    id: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class SpeakerSegment:
    """A segment attributed to a speaker, times on the session timeline."""

    speaker_id: str
    speaker_name: str
    speaker_role: str
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TrackTranscript:
    """Result of transcribing one audio track.

    ``language`` is the language actually used for decoding: the requested one, ``"en"``
    for an English-only model, or the detected one; ``None`` when nothing was requested
    and the track held no speech to detect from. ``language_probability`` is 1.0 when the
    language was imposed, 0.0 when ``language`` is ``None``. ``duration`` is the decoded
    audio length in seconds.
    """

    language: str | None
    language_probability: float
    duration: float
    segments: list[TranscriptSegment]


@dataclass(frozen=True, slots=True)
class TranscriptDocument:
    """What ``from_json`` returns: the arguments ``to_json`` was called with."""

    session_id: str
    language: str
    model: str
    speakers: list[Speaker]
    segments: list[SpeakerSegment]


def merge_by_time(
    tracks: Sequence[tuple[Speaker, float, Sequence[TranscriptSegment]]],
) -> list[SpeakerSegment]:
    """Put per-participant segments on one session timeline.

    Each track is ``(speaker, offset, segments)`` where ``offset`` is the track's start on
    the session timeline in seconds; it is added to segment and word times. The result is
    sorted by ``(start, end, speaker_id)``; ties keep input order (stable sort). Overlapping
    speech is kept as overlapping segments. Inputs are not modified.

    Raises:
        ValueError: an offset is NaN or infinite.
    """
    merged: list[SpeakerSegment] = []
    for speaker, offset, segments in tracks:
        if not math.isfinite(offset):
            raise ValueError(f"track offset for speaker {speaker.id!r} is not finite: {offset}")
        for seg in segments:
            merged.append(
                SpeakerSegment(
                    speaker_id=speaker.id,
                    speaker_name=speaker.name,
                    speaker_role=speaker.role,
                    start=seg.start + offset,
                    end=seg.end + offset,
                    text=seg.text,
                    words=[
                        Word(w.start + offset, w.end + offset, w.text, w.probability)
                        for w in seg.words
                    ],
                )
            )
    merged.sort(key=lambda s: (s.start, s.end, s.speaker_id))
    return merged


def to_json(
    segments: Sequence[SpeakerSegment],
    *,
    session_id: str,
    language: str,
    model: str,
    speakers: Sequence[Speaker],
) -> dict[str, Any]:
    """Build a JSON-serialisable document (``json.dumps`` it with ``ensure_ascii=False``).

    Shape::

        {"format": "hoidong-transcript/1", "session_id", "language", "model",
         "speakers": [{"id", "name", "role"}],
         "segments": [{"speaker_id", "start", "end", "text",
                       "words": [{"start", "end", "text", "probability"}]}]}

    ``speakers`` is authoritative for names and roles (segments refer to it by id) and may
    list participants who never spoke. Times are rounded to milliseconds, probabilities to
    4 decimals, text is NFC.

    Raises:
        ValueError: duplicate speaker ids, or a segment whose ``speaker_id`` is not listed.
    """
    ids = [s.id for s in speakers]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate speaker ids: {ids}")
    known = set(ids)
    for seg in segments:
        if seg.speaker_id not in known:
            raise ValueError(f"segment speaker {seg.speaker_id!r} is not in speakers")
    return {
        "format": FORMAT,
        "session_id": session_id,
        "language": language,
        "model": model,
        "speakers": [{"id": s.id, "name": _nfc(s.name), "role": _nfc(s.role)} for s in speakers],
        "segments": [
            {
                "speaker_id": seg.speaker_id,
                "start": _ms(seg.start),
                "end": _ms(seg.end),
                "text": _nfc(seg.text),
                "words": [
                    {
                        "start": _ms(w.start),
                        "end": _ms(w.end),
                        "text": _nfc(w.text),
                        "probability": round(w.probability, 4),
                    }
                    for w in seg.words
                ],
            }
            for seg in segments
        ],
    }


def from_json(data: Mapping[str, Any]) -> TranscriptDocument:
    """Read back a document produced by ``to_json`` (after ``json.loads``).

    Raises:
        ValueError: wrong ``format`` value, missing or mistyped fields, or a segment whose
            speaker is not listed.
    """
    if data.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document: format={data.get('format')!r}")
    try:
        speakers = [Speaker(str(s["id"]), str(s["name"]), str(s["role"])) for s in data["speakers"]]
        by_id = {s.id: s for s in speakers}
        segments = []
        for seg in data["segments"]:
            speaker = by_id[str(seg["speaker_id"])]
            segments.append(
                SpeakerSegment(
                    speaker_id=speaker.id,
                    speaker_name=speaker.name,
                    speaker_role=speaker.role,
                    start=float(seg["start"]),
                    end=float(seg["end"]),
                    text=str(seg["text"]),
                    words=[
                        Word(
                            float(w["start"]),
                            float(w["end"]),
                            str(w["text"]),
                            float(w["probability"]),
                        )
                        for w in seg["words"]
                    ],
                )
            )
        return TranscriptDocument(
            session_id=str(data["session_id"]),
            language=str(data["language"]),
            model=str(data["model"]),
            speakers=speakers,
            segments=segments,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed {FORMAT} document: {exc!r}") from exc


def to_webvtt(segments: Sequence[SpeakerSegment]) -> str:
    """Render WebVTT: one cue per segment with non-blank text, ``<v Name>text`` payload.

    Cue times are ``HH:MM:SS.mmm`` (hours widen past 99); negative times are clamped to 0
    and a cue's end is forced at least 1 ms after its start, as WebVTT requires. Names and
    text have ``&``, ``<`` and ``>`` escaped (so no ``-->`` can appear) and line breaks
    folded to spaces (a blank line would end the cue). A blank name falls back to the id.
    """
    lines = ["WEBVTT", ""]
    for seg in segments:
        text = _one_line(seg.text)
        if not text:
            continue
        start = max(0, round(seg.start * 1000))
        end = max(start + 1, round(seg.end * 1000))
        name = _one_line(seg.speaker_name) or seg.speaker_id
        lines.append(f"{_vtt_time(start)} --> {_vtt_time(end)}")
        lines.append(f"<v {_vtt_escape(name)}>{_vtt_escape(text)}")
        lines.append("")
    return "\n".join(lines)


def to_srt(segments: Sequence[SpeakerSegment]) -> str:
    """Render SubRip: numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` with ``Name: text``
    (one line each), separated by blank lines; the same clamping as :func:`to_webvtt`."""
    cues: list[str] = []
    for seg in segments:
        text = _one_line(seg.text)
        if not text:
            continue
        start = max(0, round(seg.start * 1000))
        end = max(start + 1, round(seg.end * 1000))
        name = _one_line(seg.speaker_name) or seg.speaker_id
        cues.append(f"{len(cues) + 1}\n{_vtt_time(start).replace('.', ',')} --> "
                    f"{_vtt_time(end).replace('.', ',')}\n{name}: {text}\n")
    return "\n".join(cues)


def for_speaker(segments: Sequence[SpeakerSegment], speaker_id: str) -> list[SpeakerSegment]:
    """The segments one participant spoke (for per-speaker exports)."""
    return [seg for seg in segments if seg.speaker_id == speaker_id]


def to_text(segments: Sequence[SpeakerSegment]) -> str:
    """Render ``[HH:MM:SS] Name: text`` lines (start time truncated to the second), one per
    segment with non-blank text, newline-terminated. A blank name falls back to the id."""
    out = []
    for seg in segments:
        text = _one_line(seg.text)
        if not text:
            continue
        total = max(0, math.floor(seg.start))
        stamp = f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"
        name = _one_line(seg.speaker_name) or seg.speaker_id
        out.append(f"[{stamp}] {name}: {text}\n")
    return "".join(out)


_WHITESPACE = re.compile(r"\s+")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", _nfc(text)).strip()


def _ms(seconds: float) -> float:
    return round(seconds, 3)


def _vtt_time(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

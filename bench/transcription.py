"""Transcription benchmark: per-track Whisper with VAD (hoidong) vs the mixed track.

A synthetic meeting of ``--minutes`` (espeak-ng, built once and cached in
``bench/.cache/transcription/``): four participants with their own voices, turns that
alternate with 1-4 s of silence (seeded), Vietnamese turns (voice ``vi``) and English
turns (voice ``en-us``): the chair and the secretary speak Vietnamese, the international
expert English, the institution's representative both. Each participant has a 16 kHz
mono track as long as the meeting (silence and a faint noise floor where they do not
speak, no crosstalk), the mixed track is their sum; the ground truth is every turn
(speaker, language, start, end, text).

For each model (``--models``, bundled names for ``transcription.model.resolve_model``):

- **per-track** (what hoidong does): ``Transcriber`` (VAD, word timestamps, beam 5,
  ``condition_on_previous_text=False``, the vocabulary prompt of
  ``transcription.vocabulary.initial_prompt``) on each participant's track, then
  ``merge_by_time``. ``tiny.en`` is English-only; ``base`` runs as the server does in a
  session of ``--language`` (default: the server's ``default_language``, ``vi``) with
  ``--other-languages`` (default: the server's ``other_languages``, ``en``): each track
  in whichever of these Whisper finds likeliest (``--language ""``: Whisper detects
  any language per track from its first 30 s of speech). With ``--session-language vi``
  ``base`` also runs with that language imposed on every track.
- **mixed** (the baseline): faster-whisper's defaults on the mixed track
  (``WhisperModel.transcribe(mixed, beam_size=5, vad_filter=False,
  word_timestamps=False)``, language detected, no speakers), same model, same threads.

Measured: wall time of a method end to end (decoding the audio files, VAD, Whisper,
merging; not loading the model, reported separately) over the meeting's length = the
real-time factor (RTF). Accuracy per ground-truth turn, on text normalised (NFC,
lowercase, punctuation removed): the hypothesis words whose middle falls in
[start - 0.5 s, end + 0.5 s] of the turn (per-track: of that speaker's track; mixed: any
word; its words get times interpolated within their segment by character position)
give WER on the English turns and CER on the Vietnamese turns (corpus-level, jiwer).
Speaker attribution (per-track only): the share of recognised words whose track is the
speaker of the turn under the word's middle (a word in no turn is wrong). ``--repeat``
runs per method, medians (default 1: one run of everything takes minutes).

    python -m bench.transcription [--minutes 10] [--models tiny.en,base] [--threads 2]
        [--language vi] [--other-languages en] [--session-language ""]
        [--decode 5:1:0] [--repeat 1] [--seed 7]

Writes bench/results/transcription.json: {rtf_tiny_en, rtf_base, rtf_baseline_mixed,
rtf_baseline_mixed_tiny_en, wer_en, cer_vi, wer_en_tiny_en, cer_vi_tiny_en,
speaker_accuracy, speaker_accuracy_tiny_en, audio_seconds, methods: [...], ...}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from server.settings import Settings
from transcription.model import resolve_model
from transcription.transcriber import Transcriber
from transcription.transcript import Speaker, SpeakerSegment, TrackTranscript, merge_by_time
from transcription.vocabulary import initial_prompt

RESULTS = Path(__file__).parent / "results" / "transcription.json"
CACHE = Path(__file__).parent / ".cache"
MODEL_CACHE = CACHE / "models"
FIXTURE_CACHE = CACHE / "transcription"
SAMPLE_RATE = 16000
WINDOW_S = 0.5
NOISE_RMS = 0.001  # about -60 dBFS: tracks are not digital silence between turns
TARGET_RTF_BASE = 0.15
TARGET_SPEAKER_ACCURACY = 0.98
FIXTURE_VERSION = 1

# ---------------------------------------------------------------------------- fixture

VI_SENTENCES: tuple[str, ...] = (
    "Kính thưa các thành viên hội đồng, hôm nay chúng ta họp để thẩm định báo cáo tự "
    "đánh giá của nhà trường.",
    "Đoàn đánh giá ngoài đã kiểm tra các minh chứng theo từng tiêu chuẩn và tiêu chí.",
    "Đề nghị thư ký đọc biên bản cuộc họp lần trước.",
    "Minh chứng cho tiêu chuẩn này còn thiếu kết quả khảo sát người học.",
    "Nhà trường cần bổ sung kế hoạch cải tiến chất lượng cho giai đoạn tới.",
    "Chuẩn đầu ra của chương trình đào tạo đã được công bố công khai trên trang thông tin "
    "điện tử.",
    "Hội đồng đề nghị làm rõ cách thu thập ý kiến của nhà tuyển dụng.",
    "Các minh chứng phải được mã hóa và lưu trữ đầy đủ trong hồ sơ.",
    "Đội ngũ giảng viên có trình độ tiến sĩ chiếm tỷ lệ khá cao.",
    "Tôi đề nghị đoàn xem lại kết quả đánh giá của tiêu chí về nghiên cứu khoa học.",
    "Cơ sở vật chất, thư viện và phòng thí nghiệm đáp ứng yêu cầu đào tạo.",
    "Kết quả khảo sát các bên liên quan cho thấy mức độ hài lòng tương đối tốt.",
    "Thư ký xin ghi nhận ý kiến của chủ tịch hội đồng vào biên bản.",
    "Nhà trường đã tổ chức lấy ý kiến cựu người học về chương trình đào tạo.",
    "Chúng tôi sẽ gửi bổ sung minh chứng trong thời gian sớm nhất.",
    "Đề nghị các thành viên biểu quyết về kết quả thẩm định.",
    "Hội đồng thống nhất công nhận chương trình đạt tiêu chuẩn chất lượng giáo dục.",
    "Báo cáo cần phân tích rõ điểm mạnh, tồn tại và kế hoạch hành động.",
    "Hệ thống đảm bảo chất lượng bên trong đã vận hành ổn định.",
    "Bây giờ chúng ta chuyển sang phần thảo luận về tiêu chuẩn tiếp theo.",
    "Ý kiến của chuyên gia quốc tế rất hữu ích cho việc cải tiến chất lượng.",
    "Xin mời đại diện nhà trường giải trình về các tồn tại đã nêu.",
    "Việc đánh giá kết quả học tập của người học cần công khai và minh bạch hơn.",
    "Cục Quản lý chất lượng đã hướng dẫn quy trình đánh giá ngoài.",
    "Hồ sơ đề nghị công nhận đã được nộp đúng thời hạn.",
    "Tôi đồng ý với nhận xét của đoàn về hoạt động nghiên cứu khoa học.",
    "Nhà trường cam kết thực hiện đầy đủ các khuyến nghị của hội đồng.",
    "Cuộc họp tạm nghỉ ít phút, sau đó chúng ta tiếp tục làm việc.",
    "Kiểm định viên đã phỏng vấn giảng viên, người học và nhà tuyển dụng.",
    "Biên bản khảo sát chính thức cần có chữ ký của trưởng đoàn.",
    "Tiêu chí này được đánh giá là đạt yêu cầu nhưng cần cải tiến thêm.",
    "Xin cảm ơn các ý kiến đóng góp rất thiết thực của hội đồng.",
)

EN_SENTENCES: tuple[str, ...] = (
    "Thank you, chair. I have reviewed the self assessment report in detail.",
    "The evidence for this standard is convincing, but the survey sample is small.",
    "Could the university explain how the learning outcomes were mapped to each course?",
    "We visited the library and the laboratories during the site visit.",
    "The employer feedback should be collected every year, not only before accreditation.",
    "I recommend adding a clear improvement plan with deadlines and responsible units.",
    "Graduate employment data look strong, but the method of collection is not described.",
    "Our team found that the internal quality assurance system works well.",
    "The assessment rubrics for the final projects need to be published to students.",
    "I would like to see the minutes of the meetings where stakeholders gave their opinions.",
    "The ratio of students to teaching staff is acceptable for this program.",
    "Please upload the missing documents to the shared folder before Friday.",
    "Research output has increased over the last few years.",
    "The report is well written, but some claims are not supported by evidence.",
    "We agree with the conclusion of the panel on this criterion.",
    "The alumni survey had a rather low response rate.",
    "How does the faculty use the results of student feedback to improve teaching?",
    "I suggest that the council votes on each standard separately.",
    "Thank you for the clarification, that answers my question.",
    "The curriculum was revised last year after consultation with industry partners.",
    "Students told us that they receive feedback on their assignments quickly.",
    "The external review team will send its final report soon.",
    "In my view the program meets the standard, with minor recommendations.",
    "Let me summarize the main strengths and the areas for improvement.",
    "Could you clarify who is responsible for monitoring the action plan?",
)


@dataclass(frozen=True, slots=True)
class Voice:
    """An espeak-ng voice: ``name`` (``-v``, e.g. ``vi+f2``), pitch 0-99, words/minute."""

    name: str
    pitch: int
    speed: int


@dataclass(frozen=True, slots=True)
class Participant:
    """A synthetic participant: a voice per language, the share of English turns and how
    often they take the floor (relative)."""

    id: str
    name: str
    role: str
    voices: dict[str, Voice]
    english_share: float
    weight: float


# Whisper finds espeak-ng's Vietnamese hard (mean log-probability near -1, its threshold
# for retrying at higher temperatures): these voices were the most intelligible to base.
PARTICIPANTS: tuple[Participant, ...] = (
    Participant("chair", "Nguyễn Văn An", "Chủ tịch hội đồng",
                {"vi": Voice("vi+m3", 30, 150)}, 0.0, 3.0),
    Participant("secretary", "Trần Thị Bình", "Thư ký",
                {"vi": Voice("vi+f4", 30, 125)}, 0.0, 2.0),
    Participant("expert", "John Miller", "Chuyên gia quốc tế",
                {"en": Voice("en-us+m1", 45, 160)}, 1.0, 2.0),
    Participant("representative", "Lê Văn Hùng", "Đại diện cơ sở giáo dục",
                {"vi": Voice("vi+m6", 50, 150), "en": Voice("en-us+m6", 50, 160)}, 0.4, 2.0),
)


@dataclass(frozen=True, slots=True)
class Turn:
    """One ground-truth turn on the meeting's timeline (seconds)."""

    speaker: str
    language: str
    start: float
    end: float
    text: str


@dataclass(slots=True)
class Fixture:
    """The cached meeting: per-participant tracks, the mixed track, the turns."""

    folder: Path
    seconds: float
    tracks: dict[str, Path]
    mixed: Path
    turns: list[Turn]


def _espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _synthesize(text: str, voice: Voice, tmp: Path) -> np.ndarray:
    """``text`` spoken by ``voice``: float32 mono 16 kHz, leading/trailing silence cut."""
    from faster_whisper import decode_audio

    wav = tmp / "turn.wav"
    subprocess.run(["espeak-ng", "-v", voice.name, "-p", str(voice.pitch), "-s",
                    str(voice.speed), "-w", str(wav), text], check=True, capture_output=True)
    audio: np.ndarray = decode_audio(str(wav), sampling_rate=SAMPLE_RATE)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    if loud.size == 0:
        raise RuntimeError(f"espeak-ng produced silence for {text!r}")
    return audio[loud[0]:loud[-1] + 1].astype(np.float32)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())


def _fixture_key(minutes: float, seed: int) -> str:
    spec = {"version": FIXTURE_VERSION, "minutes": float(minutes), "seed": seed,
            "participants": [asdict(p) for p in PARTICIPANTS], "vi": VI_SENTENCES,
            "en": EN_SENTENCES, "noise": NOISE_RMS, "espeak": _espeak_version()}
    blob = json.dumps(spec, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _load_fixture(folder: Path) -> Fixture:
    truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    return Fixture(
        folder=folder, seconds=float(truth["seconds"]),
        tracks={p: folder / f"track-{p}.wav" for p in truth["speakers"]},
        mixed=folder / "mixed.wav", turns=[Turn(**t) for t in truth["turns"]])


def build_fixture(minutes: float, seed: int) -> Fixture:
    """The meeting of ``minutes`` for ``seed``, from the cache or made (a few seconds)."""
    folder = FIXTURE_CACHE / f"meeting-{_fixture_key(minutes, seed)}"
    if (folder / "truth.json").is_file():
        return _load_fixture(folder)
    rng = random.Random(seed)
    total = round(minutes * 60 * SAMPLE_RATE)
    decks: dict[str, list[str]] = {"vi": [], "en": []}
    pools = {"vi": VI_SENTENCES, "en": EN_SENTENCES}

    def sentence(language: str) -> str:
        if not decks[language]:  # every sentence once before any repeats
            decks[language] = list(pools[language])
            rng.shuffle(decks[language])
        return decks[language].pop()

    tracks = {p.id: np.zeros(total, dtype=np.float32) for p in PARTICIPANTS}
    turns: list[Turn] = []
    cursor = round(rng.uniform(0.5, 1.5) * SAMPLE_RATE)
    previous: Participant | None = None
    FIXTURE_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=FIXTURE_CACHE) as tmp_name:
        tmp = Path(tmp_name)
        while True:
            if previous is None:
                who = PARTICIPANTS[0]  # the chair opens the meeting
            else:
                others = [p for p in PARTICIPANTS if p is not previous]
                who = rng.choices(others, weights=[p.weight for p in others])[0]
            language = "en" if rng.random() < who.english_share else "vi"
            text = " ".join(sentence(language) for _ in range(rng.choice((1, 2, 2, 3))))
            audio = _synthesize(text, who.voices[language], tmp)
            if cursor + audio.size > total - SAMPLE_RATE // 2:
                break
            tracks[who.id][cursor:cursor + audio.size] = audio
            turns.append(Turn(who.id, language, round(cursor / SAMPLE_RATE, 3),
                              round((cursor + audio.size) / SAMPLE_RATE, 3), text))
            cursor += audio.size + round(rng.uniform(1.0, 4.0) * SAMPLE_RATE)
            previous = who
        noise = np.random.default_rng(seed)
        for track in tracks.values():
            track += noise.normal(0.0, NOISE_RMS, total).astype(np.float32)
        for pid, track in tracks.items():
            _write_wav(tmp / f"track-{pid}.wav", track)
        _write_wav(tmp / "mixed.wav", np.sum(list(tracks.values()), axis=0))
        truth = {"seconds": total / SAMPLE_RATE, "seed": seed,
                 "speakers": [p.id for p in PARTICIPANTS],
                 "voices": {p.id: {k: asdict(v) for k, v in p.voices.items()}
                            for p in PARTICIPANTS},
                 "turns": [asdict(t) for t in turns]}
        (tmp / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1),
                                        encoding="utf-8")
        (tmp / "turn.wav").unlink(missing_ok=True)
        staged = FIXTURE_CACHE / f".staged-{os.getpid()}"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(tmp, staged)
    try:
        staged.rename(folder)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(staged, ignore_errors=True)
    return _load_fixture(folder)


# ---------------------------------------------------------------------------- scoring


@dataclass(frozen=True, slots=True)
class HypWord:
    """A recognised word on the meeting's timeline; ``speaker`` is None for the mixed track."""

    start: float
    end: float
    text: str
    speaker: str | None

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2


def normalise(text: str) -> str:
    """NFC, lowercase, punctuation (Unicode P*) replaced by spaces, spaces collapsed."""
    text = unicodedata.normalize("NFC", text).lower()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return " ".join(text.split())


def words_of_merged(merged: Sequence[SpeakerSegment]) -> list[HypWord]:
    return [HypWord(w.start, w.end, w.text, seg.speaker_id) for seg in merged for w in seg.words]


def words_of_segments(segments: Sequence[Any]) -> list[HypWord]:
    """Words of segments without word timestamps: times interpolated by character offset."""
    out: list[HypWord] = []
    for seg in segments:
        text = str(seg.text)
        span = max(float(seg.end) - float(seg.start), 0.0)
        pos = 0
        for word in text.split():
            at = text.index(word, pos)
            pos = at + len(word)
            share = (at + len(word) / 2) / max(len(text), 1)
            t = float(seg.start) + span * share
            out.append(HypWord(t, t, word, None))
    return out


def score(turns: Sequence[Turn], words: Sequence[HypWord], *, by_speaker: bool
          ) -> dict[str, Any]:
    """WER (English turns), CER (Vietnamese turns), speaker attribution, per-turn texts."""
    refs: dict[str, list[str]] = {"en": [], "vi": []}
    hyps: dict[str, list[str]] = {"en": [], "vi": []}
    per_turn = []
    for turn in turns:
        chosen = [w.text for w in words
                  if turn.start - WINDOW_S <= w.middle <= turn.end + WINDOW_S
                  and (not by_speaker or w.speaker == turn.speaker)]
        ref, hyp = normalise(turn.text), normalise(" ".join(chosen))
        refs[turn.language].append(ref)
        hyps[turn.language].append(hyp)
        per_turn.append({"speaker": turn.speaker, "language": turn.language,
                         "start": turn.start, "end": turn.end, "ref": ref, "hyp": hyp})
    result: dict[str, Any] = {
        "wer_en": round(jiwer.wer(refs["en"], hyps["en"]), 4) if refs["en"] else None,
        "cer_vi": round(jiwer.cer(refs["vi"], hyps["vi"]), 4) if refs["vi"] else None,
        # Also the other way round, for reading: tiny.en on Vietnamese, CER on English.
        "cer_en": round(jiwer.cer(refs["en"], hyps["en"]), 4) if refs["en"] else None,
        "wer_vi": round(jiwer.wer(refs["vi"], hyps["vi"]), 4) if refs["vi"] else None,
        "words": len(words),
        "words_outside_turn_windows": sum(
            1 for w in words if not any(t.start - WINDOW_S <= w.middle <= t.end + WINDOW_S
                                        for t in turns)),
    }
    if by_speaker:
        right = right_tolerant = 0
        for w in words:
            under = [t for t in turns if t.start <= w.middle <= t.end]
            right += bool(under) and under[0].speaker == w.speaker
            near = [t for t in turns if t.start - WINDOW_S <= w.middle <= t.end + WINDOW_S]
            right_tolerant += any(t.speaker == w.speaker for t in near)
        result["speaker_accuracy"] = round(right / len(words), 4) if words else None
        result["speaker_accuracy_within_0_5s"] = (
            round(right_tolerant / len(words), 4) if words else None)
    else:
        result["speaker_accuracy"] = None
    result["turns"] = per_turn
    return result


# ---------------------------------------------------------------------------- methods


@dataclass(slots=True)
class MethodResult:
    """One method on one model: timings (medians over runs) and accuracy of the last run."""

    model: str
    kind: str  # "per_track", "session" (language imposed) or "mixed"
    method: str
    language: str | None
    load_s: float
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, Any] = field(default_factory=dict)
    decode: Decode | None = None  # per-track methods


def _server() -> Settings:
    """The server's settings as it would run here (its defaults, HOIDONG_* overrides)."""
    return Settings.load()


@dataclass(frozen=True, slots=True)
class Decode:
    """How Whisper decodes (the server's ``whisper_*`` settings)."""

    beam: int = 5
    fallback: bool = False
    batch: int = 0
    temperatures: tuple[float, ...] = field(  # the fallback's, after 0
        default_factory=lambda: _server().fallback_temperatures)

    @classmethod
    def parse(cls, text: str) -> Decode:
        """``beam:fallback:batch``: fallback ``0`` (off), ``1`` (the server's ladder) or
        a ladder such as ``0.2/0.4/0.6/0.8/1.0`` (Whisper's own), e.g. ``5:1:0``."""
        beam, fallback, batch = text.split(":")
        if fallback in ("0", "1"):
            return cls(int(beam), fallback == "1", int(batch))
        ladder = tuple(float(x) for x in fallback.split("/"))
        return cls(int(beam), True, int(batch), ladder)

    @property
    def label(self) -> str:
        ladder = "/".join(f"{t:g}" for t in self.temperatures)
        return (f"beam {self.beam}, "
                + (f"fallback {ladder}" if self.fallback else "no fallback") + ", "
                + (f"batch {self.batch}" if self.batch else "sequential"))

    @property
    def tag(self) -> str:
        ladder = "_".join(f"{t:g}".replace(".", "") for t in self.temperatures)
        return f"{self.beam}_{ladder if self.fallback else 0}_{self.batch}"


def run_per_track(model: str, folder: Path, fixture: Fixture, threads: int,
                  language: str | None, repeat: int, decode: Decode = Decode(),
                  others: Sequence[str] = (), parallel: int = 1) -> MethodResult:
    """hoidong: each participant's track alone, VAD and word timestamps, then merged;
    ``language`` with ``others``: each track in the likeliest of them, as the server;
    ``parallel`` tracks at once, sharing the ``threads``."""
    start = time.perf_counter()
    transcriber = Transcriber(folder, cpu_threads=max(1, threads // parallel),
                              workers=parallel, beam_size=decode.beam,
                              temperature_fallback=decode.fallback,
                              fallback_temperatures=decode.temperatures,
                              batch_size=decode.batch)
    kind = ("session" if language is not None and not others and transcriber.multilingual
            else "per_track")
    shown = "+".join([language, *others]) if language is not None else None
    label = decode.label + (f", {parallel} tracks at once" if parallel > 1 else "")
    result = MethodResult(model, kind, f"per-track + VAD ({label})",
                          shown if transcriber.multilingual else "en",
                          round(time.perf_counter() - start, 2))
    result.decode = decode
    speakers = {p.id: Speaker(p.id, p.name, p.role) for p in PARTICIPANTS}
    effective = language if transcriber.multilingual else "en"

    def prompt(code: str | None) -> str | None:
        return initial_prompt(None, code)

    merged: list[SpeakerSegment] = []
    detected: dict[str, Any] = {}
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()

        def one(pid: str) -> tuple[str, TrackTranscript, float]:
            began = time.perf_counter()
            track = transcriber.transcribe_track(fixture.tracks[pid], language=effective,
                                                 prompt=prompt, others=others)
            return pid, track, time.perf_counter() - began

        tracks = []
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            for pid, track, took in pool.map(one, list(fixture.tracks)):
                tracks.append((speakers[pid], 0.0, track.segments))
                detected[pid] = {"language": track.language,
                                 "probability": round(track.language_probability, 3),
                                 "segments": len(track.segments),
                                 "wall_s": round(took, 2)}
        merged = merge_by_time(tracks)
        result.wall_s.append(time.perf_counter() - wall)
        result.cpu_s.append(time.process_time() - cpu)
    prompts = {c: prompt(c) for c in dict.fromkeys([effective, *others])}
    result.detail = {"tracks": detected, "prompt": prompts, "segments": len(merged)}
    result.accuracy = score(fixture.turns, words_of_merged(merged), by_speaker=True)
    return result


def run_mixed(model: str, folder: Path, fixture: Fixture, threads: int, repeat: int
              ) -> MethodResult:
    """The baseline: faster-whisper's defaults on the mixed track, no speakers."""
    from faster_whisper import WhisperModel

    start = time.perf_counter()
    whisper = WhisperModel(str(folder), device="cpu", compute_type="int8",
                           cpu_threads=threads, num_workers=1)
    result = MethodResult(model, "mixed", "mixed track (faster-whisper defaults)", None,
                          round(time.perf_counter() - start, 2))
    segments: list[Any] = []
    info: Any = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        iterator, info = whisper.transcribe(str(fixture.mixed), beam_size=5, vad_filter=False,
                                            word_timestamps=False)
        segments = list(iterator)
        result.wall_s.append(time.perf_counter() - wall)
        result.cpu_s.append(time.process_time() - cpu)
    if info is not None:
        result.language = str(info.language)
        result.detail = {"detected_language": str(info.language),
                         "probability": round(float(info.language_probability), 3),
                         "segments": len(segments)}
    result.accuracy = score(fixture.turns, words_of_segments(segments), by_speaker=False)
    return result


# ---------------------------------------------------------------------------- report


def _suffix(model: str) -> str:
    return "" if model == "base" else "_" + model.replace(".", "_").replace("-", "_")


def _summary(r: MethodResult, seconds: float) -> dict[str, Any]:
    wall = statistics.median(r.wall_s)
    return {"model": r.model, "method": r.method, "language": r.language,
            "rtf": round(wall / seconds, 4), "wall_s": round(wall, 2),
            "cpu_s": round(statistics.median(r.cpu_s), 2), "load_s": r.load_s,
            "wall_runs_s": [round(x, 2) for x in r.wall_s], **r.detail,
            **{k: v for k, v in r.accuracy.items() if k != "turns"},
            "turns": r.accuracy.get("turns", [])}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "not met")


def _server_decode() -> str:
    """The server's default decoding as ``beam:fallback:batch``."""
    d = _server()
    return f"{d.whisper_beam_size}:{int(d.whisper_temperature_fallback)}:{d.whisper_batch_size}"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the meeting")
    ap.add_argument("--models", default="tiny.en,base", help="comma-separated model names")
    ap.add_argument("--threads", type=int, default=2, help="CTranslate2 threads")
    ap.add_argument("--language", default=_server().default_language,
                    help="the session's language for the per-track runs ('': Whisper "
                         "detects each track's; default: the server's)")
    ap.add_argument("--other-languages", default=_server().other_languages,
                    help="languages a track may be in besides --language (default: the "
                         "server's)")
    ap.add_argument("--parallel", type=int,
                    default=_server().whisper_parallel_tracks,
                    help="tracks transcribed at once, sharing --threads (default: the "
                         "server's)")
    ap.add_argument("--session-language", default="",
                    help="also run multilingual models per track with this language imposed "
                         "(as the server does with a session's language), e.g. vi")
    ap.add_argument("--repeat", type=int, default=1, help="runs per method (medians)")
    ap.add_argument("--decode", default=_server_decode(),
                    help="per-track decoding to run, comma-separated beam:fallback:batch "
                         "(the first gives rtf_base; default: the server's defaults)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the meeting fixture")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    decodes = [Decode.parse(d) for d in args.decode.split(",") if d.strip()]
    began = time.perf_counter()
    load_before = os.getloadavg()

    fixture = build_fixture(args.minutes, args.seed)
    seconds = fixture.seconds
    speech = sum(t.end - t.start for t in fixture.turns)
    print(f"meeting: {seconds:.0f} s, {len(fixture.turns)} turns "
          f"({sum(t.language == 'en' for t in fixture.turns)} English, "
          f"{sum(t.language == 'vi' for t in fixture.turns)} Vietnamese), "
          f"{speech:.0f} s of speech; {fixture.folder}", file=sys.stderr)

    runs: list[MethodResult] = []
    for model in models:
        folder = resolve_model(model, MODEL_CACHE)
        steps = [("per_track", d) for d in decodes] + [("session", d) for d in decodes]
        for step, decode in [*steps, ("mixed", Decode())]:
            t0 = time.perf_counter()
            if step == "per_track":
                others = Settings.load(other_languages=args.other_languages
                                       ).other_language_codes
                runs.append(run_per_track(model, folder, fixture, args.threads,
                                          args.language or None, args.repeat, decode,
                                          others if args.language else (), args.parallel))
            elif step == "session":
                if model.endswith(".en") or not args.session_language:
                    continue
                runs.append(run_per_track(model, folder, fixture, args.threads,
                                          args.session_language, args.repeat, decode,
                                          parallel=args.parallel))
            else:
                runs.append(run_mixed(model, folder, fixture, args.threads, args.repeat))
            r = runs[-1]
            print(f"{model} {r.method} ({r.language}): {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)

    methods = [_summary(r, seconds) for r in runs]
    result: dict[str, Any] = {"audio_seconds": seconds, "speech_seconds": round(speech, 1),
                              "turns": len(fixture.turns)}
    for r, m in zip(runs, methods, strict=True):
        sfx = _suffix(r.model)
        if r.kind == "mixed":
            result[f"rtf_baseline_mixed{sfx}"] = m["rtf"]
            for name in ("wer_en", "cer_vi"):
                result[f"{name}_baseline_mixed{sfx}"] = m[name]
            continue
        tag = sfx if r.kind == "per_track" else f"{sfx}_session_{r.language}"
        if r.decode is not None and r.decode != decodes[0]:
            d = r.decode
            tag += f"_decode_{d.tag}"
        result[f"rtf{sfx or '_base'}{tag[len(sfx):]}"] = m["rtf"]
        for name in ("wer_en", "cer_vi", "speaker_accuracy", "speaker_accuracy_within_0_5s"):
            result[f"{name}{tag}"] = m[name]
    rtf_base, accuracy = result.get("rtf_base"), result.get("speaker_accuracy")
    result["targets"] = {
        "rtf_base_max": TARGET_RTF_BASE,
        "rtf_base_met": None if rtf_base is None else rtf_base <= TARGET_RTF_BASE,
        "speaker_accuracy_min": TARGET_SPEAKER_ACCURACY,
        "speaker_accuracy_met": None if accuracy is None else accuracy >= TARGET_SPEAKER_ACCURACY,
    }
    result.update({
        "threads": args.threads, "repeat": args.repeat, "seed": args.seed,
        "models": models, "session_language": args.session_language or None,
        "decode": [asdict(d) for d in decodes],
        "language": args.language or None, "other_languages": args.other_languages,
        "parallel": args.parallel,
        "window_s": WINDOW_S, "fixture": fixture.folder.name,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "total_run_s": round(time.perf_counter() - began, 1),
        "methods": methods,
    })
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")

    print("| model | method | language | RTF (end to end) | WER en | CER vi | speaker accuracy |")
    print("|---|---|---|---|---|---|---|")
    for r, m in zip(runs, methods, strict=True):
        language = (f"detected: {r.language}" if r.kind == "mixed"
                    else r.language or "detected per track")
        print(f"| {m['model']} | {m['method']} | {language} | {m['rtf']:.3f} "
              f"| {_pct(m['wer_en'])} | {_pct(m['cer_vi'])} | {_pct(m['speaker_accuracy'])} |")
    print(f"audio: {seconds:.0f} s ({len(fixture.turns)} turns, {speech:.0f} s of speech), "
          f"{args.threads} threads; run took {result['total_run_s']:.0f} s")
    for r in runs:
        if r.kind == "per_track" and r.model != "tiny.en":
            found = ", ".join(f"{pid} {t['language']} ({t['wall_s']:.0f} s)"
                              for pid, t in r.detail["tracks"].items())
            print(f"{r.model} per-track languages: {found}")
        elif r.kind == "mixed":
            print(f"{r.model} mixed track detected: {r.detail.get('detected_language')} "
                  f"({r.detail.get('probability')})")
    rtf_text = "–" if rtf_base is None else f"{rtf_base:.3f}"
    print(f"targets: base per-track end to end <= {TARGET_RTF_BASE}x audio: {rtf_text} "
          f"({_met(result['targets']['rtf_base_met'])}); speaker attribution >= "
          f"{100 * TARGET_SPEAKER_ACCURACY:.0f} %: {_pct(accuracy)} "
          f"({_met(result['targets']['speaker_accuracy_met'])})")


if __name__ == "__main__":
    main()

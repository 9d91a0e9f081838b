"""Speech-to-text for one participant's audio track with faster-whisper, on CPU.

``Transcriber`` owns a loaded model (hundreds of MB of RAM); create one per process and
reuse it. Its methods block for seconds to minutes: call them in a worker thread. Calls
from several threads are safe; up to ``workers`` of them run at once (CTranslate2's
``num_workers``), the rest wait.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transcription.errors import AudioError, ModelError
from transcription.model import check_model_folder
from transcription.speech import snap_to_speech, speech_regions
from transcription.transcript import TrackTranscript, TranscriptSegment, Word

__all__ = ["Prompt", "Transcriber"]

#: Whisper's initial prompt: a text, none, or a function of the track's language (used
#: when the language is chosen per track among candidates).
Prompt = str | Callable[[str | None], str | None] | None
#: Seconds of a track's speech its language is judged on (three 30-s windows).
LANGUAGE_PROBE_S = 90.0

_log = logging.getLogger(__name__)

_SAMPLE_RATE = 16000
NO_SPEECH_THRESHOLD = 0.9  # faster-whisper's default is 0.6


class Transcriber:
    """A loaded Whisper model (CTranslate2 format, see ``resolve_model``).

    ``cpu_threads`` is the number of threads one transcription may use, ``workers`` how
    many transcriptions may run at once (two tracks on one thread each keep two cores
    busier than one track on two: Whisper's decoding steps are too small to share
    well); ``compute_type``
    is a CTranslate2 quantisation ("int8" is fastest on CPU). ``beam_size`` trades speed
    for accuracy. ``temperature_fallback``: decode a window again at each of
    ``fallback_temperatures`` in turn while the result looks wrong (repetitive or
    improbable text; each such decode samples ``best_of`` candidates); on hard audio it
    is most of the time spent, one full decode per step. Whisper's own ladder is
    0.2–1.0 in steps of 0.2; off, one decode at temperature 0.
    ``batch_size`` > 0 decodes up to that many VAD speech chunks at once (faster-whisper's
    ``BatchedInferencePipeline``: chunks are cut at silences and decoded without the
    previous chunk's text); 0 decodes the speech as one stream, window after window.

    Raises (constructor):
        ModelError: ``"model.missing"`` if the folder lacks files, ``"model.corrupt"`` if
            CTranslate2 cannot load it.
        ValueError: ``cpu_threads`` or ``beam_size`` below 1, ``batch_size`` below 0.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        cpu_threads: int,
        compute_type: str = "int8",
        beam_size: int = 5,
        temperature_fallback: bool = False,
        fallback_temperatures: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0),
        best_of: int = 5,
        batch_size: int = 0,
        workers: int = 1,
    ) -> None:
        if cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1, got {cpu_threads}")
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if best_of < 1 or any(not 0 < t <= 1 for t in fallback_temperatures):
            raise ValueError("best_of must be >= 1 and fallback temperatures in (0, 1]")
        check_model_folder(model_path)
        # Imported lazily: the native libraries cost ~1 s and memory, and the export
        # functions of this package must stay usable without them.
        from faster_whisper import WhisperModel

        try:
            self._model: Any = WhisperModel(
                str(model_path),
                device="cpu",
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                num_workers=workers,
            )
        except Exception as exc:
            raise ModelError(
                "model.corrupt",
                f"cannot load Whisper model {model_path}: {exc}",
                {"path": str(model_path)},
            ) from exc
        self._path = model_path
        self._workers = workers
        self._beam_size = beam_size
        self._temperature: float | tuple[float, ...] = (
            (0.0, *fallback_temperatures) if temperature_fallback and fallback_temperatures
            else 0.0)
        self._best_of = best_of
        self._batch_size = batch_size
        self._batched: Any = None
        if batch_size:
            from faster_whisper import BatchedInferencePipeline

            self._batched = BatchedInferencePipeline(self._model)
        self._multilingual = bool(self._model.model.is_multilingual)
        self._languages = frozenset(str(code) for code in self._model.supported_languages)

    @property
    def model_path(self) -> Path:
        """The folder the model was loaded from."""
        return self._path

    @property
    def workers(self) -> int:
        """How many calls may run at once (each on ``cpu_threads`` threads); more wait."""
        return self._workers

    @property
    def multilingual(self) -> bool:
        """False for English-only models (``*.en``), which always transcribe as English."""
        return self._multilingual

    @property
    def languages(self) -> frozenset[str]:
        """Language codes the model accepts (``{"en"}`` for English-only models)."""
        return self._languages

    def transcribe(self, audio_path: Path, *, language: str | None, prompt: Prompt = None,
                   others: Sequence[str] = ()) -> list[TranscriptSegment]:
        """Transcribe one track; see ``transcribe_track`` (this drops the metadata)."""
        return self.transcribe_track(audio_path, language=language, prompt=prompt,
                                     others=others).segments

    def transcribe_track(self, audio_path: Path, *, language: str | None,
                         prompt: Prompt = None, others: Sequence[str] = ()) -> TrackTranscript:
        """Transcribe one audio file (anything FFmpeg/PyAV decodes: Ogg/Opus, WebM/Opus,
        WAV, ...; mixed down to mono 16 kHz).

        ``language`` is a Whisper code such as ``"vi"``, or ``None`` to detect it from the
        first 30 s. English-only models ignore it and use ``"en"``; the result's
        ``language`` records what was used. ``others``: languages the speaker may use
        instead of ``language`` (e.g. ``("en",)`` in a Vietnamese session): the track is
        transcribed in one of these when it is the language Whisper finds likeliest on
        the first :data:`LANGUAGE_PROBE_S` of its speech, and in ``language`` otherwise —
        free detection would take accented or synthetic Vietnamese for Thai or Chinese.
        Codes the model does not know are ignored. ``prompt`` (the
        domain vocabulary, see :func:`transcription.vocabulary.initial_prompt`) is
        Whisper's initial prompt, or a function giving it for the chosen language.
        Times are seconds from the start of the file. Silent or empty audio gives no
        segments, not an error. Blocking.

        Raises:
            AudioError: ``"audio.unreadable"`` (missing file, not media, no audio stream).
            ValueError: ``language`` is not supported by a multilingual model.
        """
        if language is not None and self._multilingual and language not in self._languages:
            raise ValueError(f"unsupported language {language!r}")
        for code in others:
            if code not in self._languages:
                _log.warning("ignoring language %r: the model does not know it", code)
        effective = language if self._multilingual else "en"
        audio = self._decode(audio_path)
        duration = float(audio.shape[0]) / _SAMPLE_RATE
        if audio.shape[0] == 0:
            return TrackTranscript(effective, 1.0 if effective else 0.0, 0.0, [])
        regions = speech_regions(audio)
        candidates = [c for c in dict.fromkeys([effective, *others]) if c in self._languages]
        if self._multilingual and effective is not None and len(candidates) > 1:
            effective = self._likeliest(audio, regions, candidates)

        options: dict[str, Any] = {
            "language": effective,
            "beam_size": self._beam_size,
            "temperature": self._temperature,
            "best_of": self._best_of,
            "vad_filter": True,
            "word_timestamps": True,
            # Meetings drift between topics and speakers; conditioning on the previous
            # text makes Whisper loop on hallucinated repetitions after a silence.
            "condition_on_previous_text": False,
            "initial_prompt": prompt(effective) if callable(prompt) else prompt,
            # Silero VAD has already taken the silences out. Whisper's own guess (skip a
            # window when "no speech" > 0.6 and the text scores low) then mostly drops
            # real speech it hears poorly — a whole window of a participant's words,
            # as browser audio through Opus showed — so it only acts when nearly sure.
            "no_speech_threshold": NO_SPEECH_THRESHOLD,
        }
        if self._batched is not None:
            segments_iter, info = self._batched.transcribe(
                audio, batch_size=self._batch_size, **options)
        else:
            segments_iter, info = self._model.transcribe(audio, **options)
        # The iterator does the decoding work lazily; consume it here, in the caller's thread.
        segments = [s for s in map(_segment, segments_iter) if s.text]
        if segments:
            segments = snap_to_speech(segments, regions)
        if effective is None and not segments:
            # Whisper "detects" a language even in pure silence; reporting it would be noise.
            return TrackTranscript(None, 0.0, duration, [])
        return TrackTranscript(
            language=str(info.language) if info.language else effective,
            language_probability=float(info.language_probability),
            duration=duration,
            segments=segments,
        )

    def _likeliest(self, audio: Any, regions: list[tuple[float, float]],
                   candidates: list[str]) -> str:
        """The language Whisper finds most probable for the speech in ``regions`` (the
        first :data:`LANGUAGE_PROBE_S` of it; probabilities summed over its 30-s windows)
        if it is one of ``candidates``, else the first candidate (the session's): a
        track Whisper hears as Thai in a Vietnamese session stays Vietnamese. Also the
        first candidate when there is no speech."""
        import numpy as np
        from faster_whisper.audio import pad_or_trim

        pieces, total = [], 0
        limit = int(LANGUAGE_PROBE_S * _SAMPLE_RATE)
        for start, end in regions:
            piece = audio[int(start * _SAMPLE_RATE):int(end * _SAMPLE_RATE)][:limit - total]
            pieces.append(piece)
            total += piece.shape[0]
            if total >= limit:
                break
        if not total:
            return candidates[0]
        extractor = self._model.feature_extractor
        features = extractor(np.concatenate(pieces))
        scores: dict[str, float] = {}
        for i in range(0, features.shape[-1], extractor.nb_max_frames):
            encoded = self._model.encode(pad_or_trim(features[..., i:i + extractor.nb_max_frames]))
            for token, probability in self._model.model.detect_language(encoded)[0]:
                code = str(token)[2:-2]  # "<|vi|>"
                scores[code] = scores.get(code, 0.0) + float(probability)
        likeliest = max(scores, key=lambda c: scores[c], default=candidates[0])
        return likeliest if likeliest in candidates else candidates[0]

    def _decode(self, audio_path: Path) -> Any:
        from av import FFmpegError
        from faster_whisper import decode_audio

        try:
            return decode_audio(str(audio_path), sampling_rate=_SAMPLE_RATE)
        # IndexError/ValueError come from PyAV when the container holds no audio stream.
        except (FFmpegError, OSError, IndexError, ValueError) as exc:
            raise AudioError(
                "audio.unreadable",
                f"cannot decode audio {audio_path}: {exc}",
                {"file": audio_path.name},
            ) from exc


def _segment(raw: Any) -> TranscriptSegment:
    # faster-whisper returns numpy floats; plain floats keep the dataclasses JSON-friendly.
    return TranscriptSegment(
        start=float(raw.start),
        end=float(raw.end),
        text=unicodedata.normalize("NFC", str(raw.text)).strip(),
        words=[
            Word(
                start=float(w.start),
                end=float(w.end),
                text=unicodedata.normalize("NFC", str(w.word)),
                probability=float(w.probability),
            )
            for w in (raw.words or [])
        ],
        avg_logprob=float(raw.avg_logprob),
        no_speech_prob=float(raw.no_speech_prob),
    )

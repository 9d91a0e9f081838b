"""Offline transcription of per-participant meeting recordings (faster-whisper, CPU).

Independent of ``server``: the server resolves a model (``resolve_model``), builds one
``Transcriber`` and runs it in a worker thread per track, then merges the tracks
(``merge_by_time``) and exports them (``to_json``, ``to_webvtt``, ``to_text``).
Importing this package does not load faster-whisper; constructing a ``Transcriber`` does.
"""

from transcription.errors import AudioError, ModelError, TranscriptionError
from transcription.model import (
    BASE_MODEL_SHA256,
    BUNDLED_MODELS,
    BundledModel,
    check_model_folder,
    resolve_model,
    verify_model,
)
from transcription.transcriber import Transcriber
from transcription.transcript import (
    FORMAT,
    Speaker,
    SpeakerSegment,
    TrackTranscript,
    TranscriptDocument,
    TranscriptSegment,
    Word,
    for_speaker,
    from_json,
    merge_by_time,
    to_json,
    to_srt,
    to_text,
    to_webvtt,
)
from transcription.vocabulary import DEFAULT_TERMS, initial_prompt

__all__ = [
    "BASE_MODEL_SHA256",
    "BUNDLED_MODELS",
    "DEFAULT_TERMS",
    "FORMAT",
    "AudioError",
    "BundledModel",
    "ModelError",
    "Speaker",
    "SpeakerSegment",
    "TrackTranscript",
    "Transcriber",
    "TranscriptDocument",
    "TranscriptSegment",
    "TranscriptionError",
    "Word",
    "check_model_folder",
    "for_speaker",
    "from_json",
    "initial_prompt",
    "merge_by_time",
    "resolve_model",
    "to_json",
    "to_srt",
    "to_text",
    "to_webvtt",
    "verify_model",
]

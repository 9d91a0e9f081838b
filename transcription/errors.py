"""Errors raised by the transcription package.

Every error carries a stable ``code`` (a key of the UI message catalogue) and
``params`` (string values the catalogue may interpolate). ``str(error)`` is an
English sentence meant for logs, not for end users: it may contain file-system
paths and library messages.

Programming mistakes (bad arguments) raise the built-in ``ValueError`` /
``TypeError`` instead, and file-system failures of the model cache raise
``OSError`` unchanged: neither is something the user can act on.
"""

from __future__ import annotations


class TranscriptionError(Exception):
    """Base class: a failure the operator or user can understand and act on.

    Attributes:
        code: catalogue key, e.g. ``"model.missing"``.
        params: catalogue parameters; values are always ``str``.
    """

    def __init__(self, code: str, message: str, params: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.params: dict[str, str] = dict(params or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, params={self.params!r})"


class ModelError(TranscriptionError):
    """The Whisper model cannot be used.

    Codes:
        ``"model.missing"``: the package or folder is absent, or lacks a required file.
            Params: ``spec`` (what was asked for), ``path``, and ``missing`` (comma-separated
            file names) when known.
        ``"model.corrupt"``: the files exist but the sha256 does not match, or CTranslate2
            refuses to load them. Params: ``spec`` or ``path``.
    """


class AudioError(TranscriptionError):
    """An audio file cannot be decoded.

    Codes:
        ``"audio.unreadable"``: missing file, not a media file, or no decodable audio
            stream. Params: ``file`` (base name only, safe to show to users).
    """

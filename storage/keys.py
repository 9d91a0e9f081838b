"""Object keys: validation and the layout of evidence in the store.

A key is a '/'-separated relative path of ASCII segments made of
``[A-Za-z0-9._-]``. Segments may not be empty or start with '.', which rules
out '.', '..' and hidden names (the local store reserves those for its
temporary and checksum files). Both stores validate every key through
:func:`validate_key`, so a key accepted by one is accepted by the other.
"""

from __future__ import annotations

import re

from storage.errors import InvalidKey

MAX_KEY_LENGTH = 1024  # S3's limit, in bytes; keys are ASCII so chars == bytes

_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KIND = re.compile(r"[a-z0-9_-]{1,64}")
_EXT = re.compile(r"[a-z0-9]{1,16}")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is safe, else raise :class:`InvalidKey`.

    ``InvalidKey.params["reason"]`` says which rule failed (English).
    """
    if not key:
        raise InvalidKey(key, "empty key")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(key, f"longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise InvalidKey(key, "absolute path")
    if "\\" in key:
        raise InvalidKey(key, "contains a backslash")
    if "\0" in key:
        raise InvalidKey(key, "contains a NUL character")
    for segment in key.split("/"):
        if segment == "":
            raise InvalidKey(key, "empty path segment")
        if segment in (".", ".."):
            raise InvalidKey(key, "contains a '.' or '..' segment")
        if _SEGMENT.fullmatch(segment) is None:
            raise InvalidKey(key, f"unsafe segment {segment!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it is ``""`` or a valid key optionally ending in '/'."""
    if prefix:
        validate_key(prefix.removesuffix("/"))
    return prefix


def _check(pattern: re.Pattern[str], name: str, value: str) -> str:
    if pattern.fullmatch(value) is None:
        raise InvalidKey(value, f"{name} must match {pattern.pattern}")
    return value


def session_prefix(dossier_id: str, session_id: str) -> str:
    """Prefix (ending in '/') under which everything of one session is stored."""
    _check(_ID, "dossier_id", dossier_id)
    _check(_ID, "session_id", session_id)
    return f"dossiers/{dossier_id}/sessions/{session_id}/"


def recording_key(
    dossier_id: str, session_id: str, participant_id: str, kind: str, ext: str
) -> str:
    """Key of one participant's recording in a session.

    ``kind`` is e.g. ``"audio"``, ``"video"`` or ``"audio-0001"`` for a segment
    (``[a-z0-9_-]``); ``ext`` is the file extension without the dot
    (``[a-z0-9]``). Raises :class:`InvalidKey` if any component is malformed.
    """
    _check(_ID, "participant_id", participant_id)
    _check(_KIND, "kind", kind)
    _check(_EXT, "ext", ext)
    return f"{session_prefix(dossier_id, session_id)}recordings/{participant_id}/{kind}.{ext}"


def transcript_key(dossier_id: str, session_id: str, fmt: str) -> str:
    """Key of a session's transcript in format ``fmt`` (e.g. ``"json"``, ``"vtt"``).

    Raises :class:`InvalidKey` if any component is malformed.
    """
    _check(_EXT, "fmt", fmt)
    return f"{session_prefix(dossier_id, session_id)}transcript/transcript.{fmt}"

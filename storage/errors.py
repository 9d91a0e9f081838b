"""Errors raised by object stores.

Every error carries a stable ``code`` (a key of the UI message catalogue) and
``params`` (the values the catalogue message interpolates). ``str(exc)`` is an
English message meant for logs, never for end users.
"""

from __future__ import annotations

from typing import ClassVar


class StorageError(Exception):
    """Base class; used directly for backend failures without a better code."""

    default_code: ClassVar[str] = "storage.error"

    def __init__(self, message: str, **params: str) -> None:
        super().__init__(message)
        self.code: str = self.default_code
        self.params: dict[str, str] = dict(params)


class ObjectExists(StorageError):
    """The key already holds an object; evidence is never overwritten."""

    default_code = "storage.exists"

    def __init__(self, key: str) -> None:
        super().__init__(f"object already exists, refusing to overwrite: {key}", key=key)


class ObjectNotFound(StorageError):
    """No object is stored under the key."""

    default_code = "storage.not_found"

    def __init__(self, key: str) -> None:
        super().__init__(f"object not found: {key}", key=key)


class StorageUnavailable(StorageError):
    """The backend could not be reached or failed at the I/O level.

    Network errors, timeouts, 5xx responses after retries, and local disk
    errors (full disk, permission denied) all land here: the caller may retry
    later, the request itself was not wrong.
    """

    default_code = "storage.unavailable"

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend} storage unavailable: {detail}", backend=backend, detail=detail)


class InvalidKey(StorageError):
    """The key is empty, absolute, escapes its root, or contains unsafe characters."""

    default_code = "storage.invalid_key"

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid storage key {key!r}: {reason}", key=key, reason=reason)


class ObjectLocked(StorageError):
    """The object is under retention or a legal hold: it cannot be deleted (yet)."""

    default_code = "storage.locked"

    def __init__(self, key: str, until: str = "", legal_hold: bool = False) -> None:
        why = "a legal hold" if legal_hold else f"retention until {until}"
        super().__init__(f"object is locked by {why}: {key}", key=key, until=until,
                         legal_hold="yes" if legal_hold else "no")

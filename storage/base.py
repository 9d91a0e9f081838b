"""The object-store contract shared by the local and S3/MinIO backends."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_CHUNK_SIZE = 256 * 1024


@dataclass(frozen=True)
class StoredObject:
    """An object as stored: its key, size in bytes and lowercase hex SHA-256."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Retention:
    """How an object is protected: kept at least until ``until`` (UTC; None: no retention
    date) in ``mode`` (``"COMPLIANCE"``: nobody can shorten it, not even an admin), and
    ``legal_hold`` (kept, whatever the date, until the hold is released)."""

    until: datetime | None
    mode: str | None
    legal_hold: bool

    def blocks_deletion(self, now: datetime) -> bool:
        return self.legal_hold or (self.until is not None and now < self.until)


class ObjectStore(abc.ABC):
    """Write-once storage of evidence files, addressed by key.

    All methods are coroutines (``iter_chunks`` is an async generator); blocking
    work such as file I/O, hashing and SDK calls runs in worker threads, so the
    event loop is never blocked. Instances are safe to share between tasks.

    Errors (all subclasses of :class:`storage.errors.StorageError`):

    * ``InvalidKey`` for any key rejected by :func:`storage.keys.validate_key`;
    * ``ObjectNotFound`` when reading a key that holds no object;
    * ``ObjectExists`` when writing a key that already holds one;
    * ``StorageUnavailable`` when the backend cannot be reached or fails at
      the I/O level; the operation may be retried.
    """

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Backend name: ``"local"`` or ``"minio"``."""

    @abc.abstractmethod
    async def put_file(
        self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        """Store a copy of the file at ``path`` under ``key``; never overwrites.

        The caller keeps ownership of ``path`` and must not modify it during
        the call. Raises ``ObjectExists`` if ``key`` is taken (the stored
        object is left untouched), ``FileNotFoundError`` if ``path`` is missing.
        """

    @abc.abstractmethod
    async def put_bytes(
        self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        """Store ``data`` under ``key``; never overwrites (raises ``ObjectExists``)."""

    @abc.abstractmethod
    async def get_bytes(self, key: str) -> bytes:
        """Return the whole object in memory; use ``iter_chunks`` for large ones."""

    @abc.abstractmethod
    async def download(self, key: str, dest: Path) -> None:
        """Copy the object to the file ``dest``; replaces ``dest`` if it exists.

        The parent directory of ``dest`` must exist. ``dest`` only appears
        once complete: a failed download does not leave a partial file there.
        """

    @abc.abstractmethod
    async def stat(self, key: str) -> StoredObject:
        """Return size and SHA-256 of the object without reading it (normally)."""

    @abc.abstractmethod
    async def exists(self, key: str) -> bool:
        """True if an object is stored under ``key``."""

    @abc.abstractmethod
    def iter_chunks(
        self,
        key: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        start: int = 0,
        end: int | None = None,
    ) -> AsyncIterator[bytes]:
        """Yield bytes ``[start, end)`` of the object in chunks of at most ``chunk_size``.

        ``end=None`` means up to the end of the object; an ``end`` past the end
        is clamped, and a ``start`` at or past the end yields nothing (HTTP
        callers answer 416 from ``stat`` before streaming). Raises
        ``ValueError`` for a negative ``start``, ``end < start`` or a
        non-positive ``chunk_size``; ``ObjectNotFound`` on the first iteration.
        """

    @abc.abstractmethod
    async def list_keys(self, prefix: str) -> list[str]:
        """Return all keys starting with ``prefix`` (plain string prefix), sorted.

        ``prefix`` is ``""`` (everything) or a valid key optionally ending in '/'.
        """

    @abc.abstractmethod
    async def retention(self, key: str) -> Retention:
        """The object's retention date and legal hold (``ObjectNotFound`` if absent)."""

    @abc.abstractmethod
    async def set_legal_hold(self, key: str, on: bool) -> None:
        """Put the object under a legal hold (``on``) or release it."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Delete the object for good — the retention action only, after its retention
        date and with no legal hold: raises ``ObjectLocked`` otherwise (on MinIO the
        server itself refuses), ``ObjectNotFound`` if absent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the store must not be used afterwards."""


def check_range(chunk_size: int, start: int, end: int | None) -> None:
    """Raise ``ValueError`` for arguments ``iter_chunks`` rejects."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if end is not None and end < start:
        raise ValueError(f"end ({end}) must be >= start ({start})")

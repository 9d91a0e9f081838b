"""Write-once storage of evidence files (recordings, transcripts).

Pick a backend with :func:`open_store`; everything else talks to the
:class:`ObjectStore` interface. This package never imports ``server``.
"""

from __future__ import annotations

from pathlib import Path

from storage.base import ObjectStore, Retention, StoredObject
from storage.errors import (
    InvalidKey,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
)
from storage.integrity import sha256_file
from storage.keys import recording_key, session_prefix, transcript_key, validate_key
from storage.local import LocalStore
from storage.s3 import S3Store

BACKENDS = ("local", "minio")

__all__ = [
    "BACKENDS",
    "InvalidKey",
    "LocalStore",
    "ObjectExists",
    "ObjectLocked",
    "ObjectNotFound",
    "ObjectStore",
    "Retention",
    "S3Store",
    "StorageError",
    "StorageUnavailable",
    "StoredObject",
    "open_store",
    "recording_key",
    "session_prefix",
    "sha256_file",
    "transcript_key",
    "validate_key",
]


def open_store(
    backend: str,
    *,
    local_root: Path,
    s3_endpoint: str = "",
    s3_access_key: str = "",
    s3_secret_key: str = "",
    s3_bucket: str = "hoidong",
    s3_secure: bool = False,
    s3_region: str | None = None,
    object_lock: bool = False,
    retention_days: int = 0,
) -> ObjectStore:
    """Return the store for ``backend`` (``"local"`` or ``"minio"``).

    ``local_root`` is used by ``"local"`` only; the ``s3_*`` settings and
    ``object_lock`` by ``"minio"`` only; ``retention_days`` (0: none) by both.
    No I/O happens here: the bucket is created on first use.
    Raises ``ValueError`` for an unknown backend or a missing ``s3_endpoint``.
    """
    if backend == "local":
        return LocalStore(local_root, retention_days=retention_days)
    if backend == "minio":
        if not s3_endpoint:
            raise ValueError("the minio storage backend needs an S3 endpoint")
        return S3Store(
            s3_endpoint,
            s3_access_key,
            s3_secret_key,
            s3_bucket,
            secure=s3_secure,
            region=s3_region,
            object_lock=object_lock,
            retention_days=retention_days,
        )
    raise ValueError(f"unknown storage backend {backend!r}; expected one of {BACKENDS}")

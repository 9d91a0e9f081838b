"""Content hashing shared by the stores."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> tuple[str, int]:
    """Return ``(lowercase hex SHA-256, size in bytes)`` of the file at ``path``.

    Blocking (reads the whole file): call it in a thread, e.g. via
    ``asyncio.to_thread``. Raises ``OSError`` if the file cannot be read.
    """
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def is_sha256_hex(value: str) -> bool:
    """True if ``value`` is a lowercase 64-digit hex SHA-256 as produced here."""
    return _SHA256_HEX.fullmatch(value) is not None

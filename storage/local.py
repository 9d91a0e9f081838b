"""Object store on a local filesystem directory."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from storage.base import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    ObjectStore,
    Retention,
    StoredObject,
    check_range,
)
from storage.errors import (
    InvalidKey,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    StorageUnavailable,
)
from storage.integrity import is_sha256_hex, sha256_file
from storage.keys import validate_key, validate_prefix

log = logging.getLogger(__name__)

# Keys never have a segment starting with '.', so hidden names cannot collide
# with objects: in-flight temp files and this checksum tree live among them.
_SHA_DIR = ".sha256"
_RETENTION_DIR = ".retention"
_COPY_CHUNK = 1 << 20


def _tmp_sibling(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.{suffix}")


def _fsync_dir(path: Path) -> None:
    # Makes the new directory entry (the link) durable, not just the data.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _reading(key: str) -> Iterator[None]:
    try:
        yield
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise ObjectNotFound(key) from None
    except OSError as exc:
        raise StorageUnavailable("local", str(exc)) from exc


class LocalStore(ObjectStore):
    """Objects are files at ``root/key``, read-only (0444) once written.

    A write goes to a hidden temp file in the target directory, is fsynced,
    then hard-linked to the final name: the link fails if the name exists, so
    an object is never replaced, and a crash leaves at most a hidden temp file
    (ignored by ``list_keys``), never a partial object. The SHA-256 computed
    while writing is kept in a hidden sidecar tree ``root/.sha256/key``; if it
    is missing (crash right after the link), ``stat`` rehashes the file.
    ``content_type`` is accepted for interface parity and not stored.
    Requires a filesystem with hard links (any local POSIX filesystem).

    Retention (``retention_days`` from the time of writing; 0: none) and legal holds
    are kept in ``root/.retention/key`` (JSON) and enforced by :meth:`delete`, the only
    way this store removes anything. Unlike MinIO's Object Lock this protects against
    hoidong's own code paths, not against someone with access to the files.
    """

    def __init__(self, root: Path, retention_days: int = 0) -> None:
        self._root = root.absolute()
        self._retention_days = retention_days

    @property
    def name(self) -> str:
        return "local"

    @property
    def root(self) -> Path:
        """Directory holding the objects."""
        return self._root

    def _path(self, key: str) -> Path:
        return self._root / validate_key(key)

    def _sidecar(self, key: str) -> Path:
        return self._root / _SHA_DIR / key

    def _retention_file(self, key: str) -> Path:
        return self._root / _RETENTION_DIR / validate_key(key)

    # -- writing ---------------------------------------------------------

    async def put_file(
        self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        final = self._path(key)

        def run() -> StoredObject:
            with path.open("rb") as src:
                return self._put_sync(key, final, src)

        return await asyncio.to_thread(run)

    async def put_bytes(
        self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        final = self._path(key)
        return await asyncio.to_thread(self._put_sync, key, final, io.BytesIO(data))

    def _put_sync(self, key: str, final: Path, src: BinaryIO) -> StoredObject:
        try:
            # Fails fast before copying a large file; the link below is what
            # actually guarantees no overwrite.
            if final.is_dir():
                raise InvalidKey(key, "key is a prefix of existing objects")
            if final.exists():
                raise ObjectExists(key)
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise InvalidKey(key, "a parent segment is an existing object") from None
            tmp = _tmp_sibling(final, "tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                with os.fdopen(fd, "wb") as out:
                    digest = hashlib.sha256()
                    size = 0
                    while chunk := src.read(_COPY_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                    os.fchmod(out.fileno(), 0o444)
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    if final.is_dir():
                        raise InvalidKey(key, "key is a prefix of existing objects") from None
                    raise ObjectExists(key) from None
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(final.parent)
        except OSError as exc:
            raise StorageUnavailable("local", str(exc)) from exc
        sha256 = digest.hexdigest()
        self._write_sidecar(key, sha256)
        if self._retention_days:
            until = datetime.now(UTC) + timedelta(days=self._retention_days)
            self._write_retention(key, Retention(until, "COMPLIANCE", False))
        return StoredObject(key=key, size=size, sha256=sha256)

    def _write_retention(self, key: str, r: Retention) -> None:
        path = self._retention_file(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_sibling(path, "tmp")
        tmp.write_text(json.dumps({"until": r.until.isoformat() if r.until else None,
                                   "mode": r.mode, "legal_hold": r.legal_hold}),
                       encoding="utf-8")
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def _read_retention(self, key: str) -> Retention:
        if not self._path(key).is_file():
            raise ObjectNotFound(key)
        try:
            data = json.loads(self._retention_file(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Retention(None, None, False)
        until = datetime.fromisoformat(data["until"]) if data.get("until") else None
        return Retention(until, data.get("mode"), bool(data.get("legal_hold")))

    async def retention(self, key: str) -> Retention:
        return await asyncio.to_thread(self._read_retention, key)

    async def set_legal_hold(self, key: str, on: bool) -> None:
        def run() -> None:
            r = self._read_retention(key)
            self._write_retention(key, Retention(r.until, r.mode, on))

        await asyncio.to_thread(run)

    async def delete(self, key: str) -> None:
        def run() -> None:
            r = self._read_retention(key)
            if r.blocks_deletion(datetime.now(UTC)):
                raise ObjectLocked(key, r.until.isoformat() if r.until else "", r.legal_hold)
            self._path(key).unlink()
            self._sidecar(key).unlink(missing_ok=True)
            self._retention_file(key).unlink(missing_ok=True)

        await asyncio.to_thread(run)

    def _write_sidecar(self, key: str, sha256: str) -> None:
        # Best effort: the object is already stored, and stat() can rehash it.
        sidecar = self._sidecar(key)
        try:
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            tmp = _tmp_sibling(sidecar, "tmp")
            tmp.write_text(sha256 + "\n", encoding="ascii")
            tmp.chmod(0o444)
            os.replace(tmp, sidecar)
        except OSError:
            log.warning("could not write checksum sidecar for %s", key, exc_info=True)

    # -- reading ---------------------------------------------------------

    async def get_bytes(self, key: str) -> bytes:
        final = self._path(key)

        def run() -> bytes:
            with _reading(key):
                return final.read_bytes()

        return await asyncio.to_thread(run)

    async def download(self, key: str, dest: Path) -> None:
        final = self._path(key)

        def run() -> None:
            with _reading(key):
                src = final.open("rb")
            with src:
                tmp = _tmp_sibling(dest, "part")
                try:
                    with tmp.open("wb") as out:
                        shutil.copyfileobj(src, out, _COPY_CHUNK)
                    os.replace(tmp, dest)
                finally:
                    tmp.unlink(missing_ok=True)

        await asyncio.to_thread(run)

    async def stat(self, key: str) -> StoredObject:
        final = self._path(key)

        def run() -> StoredObject:
            with _reading(key):
                st = final.stat()
                if not final.is_file():
                    raise ObjectNotFound(key)
            try:
                sha256 = self._sidecar(key).read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                sha256 = ""
            if not is_sha256_hex(sha256):
                with _reading(key):
                    sha256, _ = sha256_file(final)
                self._write_sidecar(key, sha256)
            return StoredObject(key=key, size=st.st_size, sha256=sha256)

        return await asyncio.to_thread(run)

    async def exists(self, key: str) -> bool:
        final = self._path(key)
        return await asyncio.to_thread(final.is_file)

    async def iter_chunks(
        self,
        key: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        start: int = 0,
        end: int | None = None,
    ) -> AsyncIterator[bytes]:
        check_range(chunk_size, start, end)
        final = self._path(key)

        def open_at_start() -> tuple[BinaryIO, int]:
            with _reading(key):
                f = final.open("rb")
                size = os.fstat(f.fileno()).st_size
                f.seek(start)
                return f, size

        f, size = await asyncio.to_thread(open_at_start)
        try:
            pos = start
            stop = size if end is None else min(end, size)
            while pos < stop:
                with _reading(key):
                    chunk = await asyncio.to_thread(f.read, min(chunk_size, stop - pos))
                if not chunk:
                    break
                pos += len(chunk)
                yield chunk
        finally:
            f.close()

    async def list_keys(self, prefix: str) -> list[str]:
        validate_prefix(prefix)
        return await asyncio.to_thread(self._list_sync, prefix)

    def _list_sync(self, prefix: str) -> list[str]:
        # Walk only the deepest directory the prefix names, then filter by string.
        base, _, _ = prefix.rpartition("/")
        top = self._root / base if base else self._root

        def on_error(exc: OSError) -> None:
            if not isinstance(exc, FileNotFoundError | NotADirectoryError):
                raise StorageUnavailable("local", str(exc)) from exc

        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(top, onerror=on_error):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self._root).as_posix()
            for filename in filenames:
                if filename.startswith("."):
                    continue
                key = filename if rel == "." else f"{rel}/{filename}"
                if key.startswith(prefix):
                    keys.append(key)
        keys.sort()
        return keys

    async def close(self) -> None:
        return None

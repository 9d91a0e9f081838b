"""Object store on S3 or MinIO, through the ``minio`` SDK."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.retention import Retention as S3Retention
from urllib3 import BaseHTTPResponse

from storage.base import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    ObjectStore,
    Retention,
    StoredObject,
    check_range,
)
from storage.errors import (
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
)
from storage.integrity import is_sha256_hex
from storage.keys import validate_key, validate_prefix

T = TypeVar("T")
log = logging.getLogger(__name__)

SHA256_METADATA = "sha256"  # sent and read back as the x-amz-meta-sha256 header
_HASH_CHUNK = 1 << 20


def default_http_client() -> urllib3.PoolManager:
    """HTTP pool used when none is given.

    Like the SDK's own default, but fails in seconds rather than minutes when
    the server is down (the SDK waits up to 5 minutes to connect), so a
    request handler can report ``storage.unavailable`` promptly.
    """
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=120),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(
            total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
        ),
    )


class S3Store(ObjectStore):
    """Objects in one bucket, created on first use if missing.

    Each object carries its SHA-256 as user metadata ``x-amz-meta-sha256``,
    set at upload, so ``stat`` needs no download; an object without it (written
    by another tool) is hashed by streaming it.

    No-overwrite is enforced by checking for the key before uploading. The SDK
    cannot send ``If-None-Match: *``, so two writers racing on the same key
    could both pass the check; the application has one writer per key (keys
    embed session and participant ids). Enable bucket versioning on
    production servers so even such an overwrite stays recoverable.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        *,
        http_client: urllib3.PoolManager | None = None,
        object_lock: bool = False,
        retention_days: int = 0,
    ) -> None:
        """``endpoint`` is ``host:port`` without scheme; ``secure`` selects HTTPS.

        ``http_client`` (owned by the store afterwards, cleared by ``close``)
        sets timeouts and retries; see :func:`default_http_client`. Raises
        ``ValueError`` for a malformed endpoint or bucket name.
        """
        self._http = http_client or default_http_client()
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=self._http,
        )
        self._bucket = bucket
        self._region = region
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()
        self._object_lock = object_lock
        self._retention_days = retention_days
        self._locked = False  # the bucket has Object Lock (known once ensure_bucket ran)

    @property
    def name(self) -> str:
        return "minio"

    @property
    def bucket(self) -> str:
        return self._bucket

    async def _run(self, key: str | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking SDK call in a thread, translating its errors."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except S3Error as exc:
            raise self._translate(exc, key) from exc
        except (
            ServerError,
            InvalidResponseError,
            urllib3.exceptions.HTTPError,
            ConnectionError,
            TimeoutError,
        ) as exc:
            raise StorageUnavailable("minio", str(exc)) from exc

    def _translate(self, exc: S3Error, key: str | None) -> StorageError:
        code = str(exc.code)
        if code == "NoSuchKey" and key is not None:
            return ObjectNotFound(key)
        if code == "NoSuchBucket":
            self._bucket_ready = False  # deleted behind our back: recreate next time
        if code == "PreconditionFailed" and key is not None:
            return ObjectExists(key)
        status = getattr(exc.response, "status", 0)
        if status >= 500:
            return StorageUnavailable("minio", f"{code}: {exc.message}")
        return StorageError(
            f"minio request failed: {code}: {exc.message}", backend="minio", detail=code
        )

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist; called lazily by every operation."""
        if self._bucket_ready:
            return
        async with self._bucket_lock:
            if self._bucket_ready:
                return
            await self._run(None, self._ensure_bucket_sync)
            self._bucket_ready = True

    def _ensure_bucket_sync(self) -> None:
        if not self._client.bucket_exists(self._bucket):
            try:
                # Object Lock can only be switched on when the bucket is created (it
                # turns versioning on too).
                self._client.make_bucket(self._bucket, location=self._region,
                                         object_lock=self._object_lock)
            except S3Error as exc:
                # Another process created it between our check and our request.
                if exc.code != "BucketAlreadyOwnedByYou":
                    raise
        self._locked = False
        if self._object_lock:
            try:
                self._client.get_object_lock_config(self._bucket)
                self._locked = True
            except S3Error as exc:
                if "ObjectLockConfiguration" not in str(exc.code):
                    raise
                log.warning("bucket %s has no Object Lock (it was created without it): "
                            "objects get no retention; create a new bucket with Object "
                            "Lock to have the store enforce it", self._bucket)

    @property
    def locked(self) -> bool:
        """True once the bucket is known to have Object Lock."""
        return self._locked

    # -- writing ---------------------------------------------------------

    async def put_file(
        self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        validate_key(key)
        await self._refuse_existing(key)

        def run() -> StoredObject:
            with path.open("rb") as f:
                digest = hashlib.sha256()
                size = 0
                while chunk := f.read(_HASH_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                f.seek(0)
                return self._upload_sync(key, f, size, digest.hexdigest(), content_type)

        return await self._run(key, run)

    async def put_bytes(
        self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        validate_key(key)
        await self._refuse_existing(key)
        sha256 = hashlib.sha256(data).hexdigest()
        return await self._run(
            key, self._upload_sync, key, io.BytesIO(data), len(data), sha256, content_type
        )

    async def _refuse_existing(self, key: str) -> None:
        if await self.exists(key):
            raise ObjectExists(key)

    def _upload_sync(
        self, key: str, data: BinaryIO, size: int, sha256: str, content_type: str
    ) -> StoredObject:
        # length=size uploads exactly the bytes that were hashed, even if the
        # source file grows meanwhile.
        result = self._client.put_object(
            self._bucket,
            key,
            data,
            size,
            content_type=content_type,
            metadata={SHA256_METADATA: sha256},
        )
        if self._locked and self._retention_days:
            # Set on the version just written rather than sent with the upload: S3 wants
            # a Content-MD5 on every upload request that carries a retention, which the
            # SDK does not send for plain or multipart uploads over signed HTTP.
            until = datetime.now(UTC) + timedelta(days=self._retention_days)
            self._client.set_object_retention(
                self._bucket, key, S3Retention(COMPLIANCE, until.replace(microsecond=0)),
                version_id=result.version_id)
        return StoredObject(key=key, size=size, sha256=sha256)

    # -- protection ------------------------------------------------------

    async def retention(self, key: str) -> Retention:
        validate_key(key)
        await self.ensure_bucket()

        def run() -> Retention:
            # From the object's own headers (S3's HEAD reports its lock), one request.
            info = self._client.stat_object(self._bucket, key)
            headers = {k.lower(): v for k, v in (info.metadata or {}).items()}
            mode = headers.get("x-amz-object-lock-mode") or None
            raw = headers.get("x-amz-object-lock-retain-until-date")
            until = datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
            if until is not None and until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
            hold = str(headers.get("x-amz-object-lock-legal-hold", "")).upper() == "ON"
            return Retention(until, mode, hold)

        return await self._run(key, run)

    async def set_legal_hold(self, key: str, on: bool) -> None:
        validate_key(key)
        await self.ensure_bucket()
        if not self._locked:
            raise StorageError(f"bucket {self._bucket} has no Object Lock: no legal hold",
                               backend="minio", detail="object_lock_off")
        fn = (self._client.enable_object_legal_hold if on
              else self._client.disable_object_legal_hold)
        await self._run(key, fn, self._bucket, key)

    async def delete(self, key: str) -> None:
        validate_key(key)
        await self.ensure_bucket()

        def run() -> None:
            info = self._client.stat_object(self._bucket, key)
            # The version itself: deleting without a version id would only hide it
            # behind a delete marker, which Object Lock allows.
            self._client.remove_object(self._bucket, key, version_id=info.version_id)

        try:
            await self._run(key, run)
        except StorageError as exc:
            if exc.params.get("detail") == "AccessDenied" or "locked" in str(exc).lower():
                r = await self.retention(key)
                raise ObjectLocked(key, r.until.isoformat() if r.until else "",
                                   r.legal_hold) from exc
            raise

    # -- reading ---------------------------------------------------------

    async def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        await self.ensure_bucket()

        def run() -> bytes:
            resp = self._client.get_object(self._bucket, key)
            try:
                return bytes(resp.read())
            finally:
                resp.close()
                resp.release_conn()

        return await self._run(key, run)

    async def download(self, key: str, dest: Path) -> None:
        validate_key(key)
        await self.ensure_bucket()
        # fget_object writes to a temp file next to dest and renames it.
        await self._run(key, self._client.fget_object, self._bucket, key, str(dest))

    async def stat(self, key: str) -> StoredObject:
        validate_key(key)
        await self.ensure_bucket()
        info = await self._run(key, self._client.stat_object, self._bucket, key)
        metadata = info.metadata or {}
        sha256 = str(metadata.get(f"x-amz-meta-{SHA256_METADATA}", "")).strip().lower()
        if not is_sha256_hex(sha256):
            digest = hashlib.sha256()
            async for chunk in self.iter_chunks(key, chunk_size=_HASH_CHUNK):
                digest.update(chunk)
            sha256 = digest.hexdigest()
        if info.size is None:
            raise StorageError(f"minio returned no size for {key}", backend="minio", detail=key)
        return StoredObject(key=key, size=info.size, sha256=sha256)

    async def exists(self, key: str) -> bool:
        validate_key(key)
        await self.ensure_bucket()
        try:
            await self._run(key, self._client.stat_object, self._bucket, key)
        except ObjectNotFound:
            return False
        return True

    async def iter_chunks(
        self,
        key: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        start: int = 0,
        end: int | None = None,
    ) -> AsyncIterator[bytes]:
        check_range(chunk_size, start, end)
        validate_key(key)
        await self.ensure_bucket()
        if end == start:
            # An empty range cannot be requested; still report a missing key.
            if not await self.exists(key):
                raise ObjectNotFound(key)
            return
        length = 0 if end is None else end - start  # 0 means "to the end" to the SDK

        def open_range() -> BaseHTTPResponse | None:
            try:
                return self._client.get_object(self._bucket, key, offset=start, length=length)
            except S3Error as exc:
                if exc.code == "InvalidRange":  # start is at or past the end
                    return None
                raise

        resp = await self._run(key, open_range)
        if resp is None:
            return
        try:
            while chunk := await self._run(key, resp.read, chunk_size):
                yield bytes(chunk)
        finally:
            # close() drops a half-read connection instead of reusing it.
            resp.close()
            resp.release_conn()

    async def list_keys(self, prefix: str) -> list[str]:
        validate_prefix(prefix)
        await self.ensure_bucket()

        def run() -> list[str]:
            objects = self._client.list_objects(self._bucket, prefix=prefix, recursive=True)
            return sorted(str(o.object_name) for o in objects if not o.is_dir)

        return await self._run(None, run)

    async def close(self) -> None:
        self._http.clear()

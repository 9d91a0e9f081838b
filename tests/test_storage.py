"""Tests of the storage package against both backends.

The "minio" backend runs against a real S3 server (moto, in-process, over
HTTP), so the SDK, metadata and error mapping are exercised for real.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
import stat as stat_mod
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import urllib3
from minio import Minio

from storage import (
    InvalidKey,
    LocalStore,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    S3Store,
    StorageError,
    StorageUnavailable,
    StoredObject,
    open_store,
    recording_key,
    sha256_file,
    transcript_key,
    validate_key,
)
from tests.s3server import S3_TEST_CREDENTIALS, moto_s3_server

REPO = Path(__file__).resolve().parent.parent
KEY = "dossiers/d1/sessions/s1/recordings/p1/audio.webm"


def _payload(size: int, seed: int = 1) -> bytes:
    # Non-repeating bytes, so an off-by-one in a range shows up as a mismatch.
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


def _s3_store(endpoint: str, bucket: str) -> S3Store:
    access, secret = S3_TEST_CREDENTIALS
    return S3Store(endpoint, access, secret, bucket)


@pytest.fixture(params=["local", "minio"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectStore]:
    s: ObjectStore
    if request.param == "local":
        s = LocalStore(tmp_path / "store")
    else:
        endpoint: str = request.getfixturevalue("s3_endpoint")
        # One bucket per test: moto keeps every bucket in process memory.
        s = _s3_store(endpoint, f"t-{uuid.uuid4().hex[:20]}")
    yield s
    await s.close()


# -- writing and reading back ------------------------------------------------


async def test_put_bytes_returns_hash_and_size(store: ObjectStore) -> None:
    data = _payload(1000)
    obj = await store.put_bytes(KEY, data, content_type="audio/webm")
    assert obj == StoredObject(key=KEY, size=1000, sha256=_sha(data))
    assert await store.stat(KEY) == obj
    assert await store.get_bytes(KEY) == data


async def test_put_empty_object(store: ObjectStore) -> None:
    obj = await store.put_bytes("empty.bin", b"")
    assert obj == StoredObject(key="empty.bin", size=0, sha256=_sha(b""))
    assert await store.stat("empty.bin") == obj
    assert await store.get_bytes("empty.bin") == b""
    assert [c async for c in store.iter_chunks("empty.bin")] == []


@pytest.mark.parametrize("size", [3 * 1024 + 7, 5 * 1024 * 1024 + 123])
async def test_put_file_and_download_round_trip(
    store: ObjectStore, tmp_path: Path, size: int
) -> None:
    # The larger size makes the SDK use a multipart upload.
    data = _payload(size, seed=size)
    src = tmp_path / "src.webm"
    src.write_bytes(data)

    obj = await store.put_file(KEY, src, content_type="video/webm")

    assert obj.size == size
    assert obj.sha256 == _sha(data)
    assert await store.stat(KEY) == obj
    assert src.read_bytes() == data  # the caller's file is left alone
    dest = tmp_path / "dest.webm"
    dest.write_bytes(b"stale content that must be replaced")
    await store.download(KEY, dest)
    assert dest.read_bytes() == data
    assert await store.get_bytes(KEY) == data


async def test_put_file_missing_source(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await store.put_file(KEY, tmp_path / "nope.webm")
    assert not await store.exists(KEY)


async def test_iter_chunks_whole_and_ranges(store: ObjectStore) -> None:
    data = _payload(10_000)
    await store.put_bytes(KEY, data)

    chunks = [c async for c in store.iter_chunks(KEY, chunk_size=4096)]
    assert [len(c) for c in chunks] == [4096, 4096, 1808]
    assert b"".join(chunks) == data

    async def read(start: int, end: int | None, chunk_size: int = 1000) -> bytes:
        parts = [c async for c in store.iter_chunks(KEY, chunk_size, start, end)]
        assert all(0 < len(p) <= chunk_size for p in parts)
        return b"".join(parts)

    assert await read(0, None) == data
    assert await read(10, 2510) == data[10:2510]
    assert await read(9_999, None) == data[9_999:]
    assert await read(1, 2) == data[1:2]
    assert await read(5_000, 50_000) == data[5_000:]  # end past the end is clamped
    assert await read(10_000, None) == b""  # start at the end
    assert await read(20_000, None) == b""  # start past the end
    assert await read(500, 500) == b""  # empty range


async def test_iter_chunks_rejects_bad_arguments(store: ObjectStore) -> None:
    await store.put_bytes(KEY, b"abc")
    for kwargs in ({"start": -1}, {"start": 5, "end": 4}, {"chunk_size": 0}):
        with pytest.raises(ValueError):
            _ = [c async for c in store.iter_chunks(KEY, **kwargs)]


async def test_iter_chunks_partial_consumption_then_more_requests(store: ObjectStore) -> None:
    # Abandoning a stream must not poison the connection pool or leak the file.
    data = _payload(300_000)
    await store.put_bytes(KEY, data)
    for _ in range(3):
        it = store.iter_chunks(KEY, chunk_size=1024)
        first = await anext(it)
        assert first == data[:1024]
        await it.aclose()  # type: ignore[attr-defined]
    assert await store.get_bytes(KEY) == data


async def test_exists(store: ObjectStore) -> None:
    assert not await store.exists(KEY)
    await store.put_bytes(KEY, b"x")
    assert await store.exists(KEY)
    # A prefix of a key is not an object.
    assert not await store.exists("dossiers/d1")


async def test_list_keys_by_prefix(store: ObjectStore) -> None:
    keys = [
        "dossiers/d1/sessions/s1/recordings/p1/audio.webm",
        "dossiers/d1/sessions/s1/recordings/p2/video.webm",
        "dossiers/d1/sessions/s1/transcript/transcript.json",
        "dossiers/d1/sessions/s2/recordings/p1/audio.webm",
        "dossiers/d2/sessions/s1/recordings/p1/audio.webm",
        "top.txt",
    ]
    for i, key in enumerate(reversed(keys)):
        await store.put_bytes(key, f"{i}".encode())

    assert await store.list_keys("") == sorted(keys)
    assert await store.list_keys("dossiers/d1/") == keys[:4]
    assert await store.list_keys("dossiers/d1/sessions/s1/") == keys[:3]
    assert await store.list_keys("dossiers/d1/sessions/s1/recordings/") == keys[:2]
    # A plain string prefix, not only whole segments.
    assert await store.list_keys("dossiers/d1/sessions/s1/rec") == keys[:2]
    assert await store.list_keys("dossiers/d") == keys[:5]
    assert await store.list_keys("top") == ["top.txt"]
    assert await store.list_keys("dossiers/d3/") == []
    assert await store.list_keys("top.txt/") == []


# -- write-once --------------------------------------------------------------


async def test_second_put_raises_and_keeps_original(store: ObjectStore, tmp_path: Path) -> None:
    original = _payload(2048, seed=1)
    first = await store.put_bytes(KEY, original)

    with pytest.raises(ObjectExists) as info:
        await store.put_bytes(KEY, _payload(2048, seed=2))
    assert info.value.code == "storage.exists"
    assert info.value.params == {"key": KEY}

    other = tmp_path / "other.webm"
    other.write_bytes(_payload(4096, seed=3))
    with pytest.raises(ObjectExists):
        await store.put_file(KEY, other)

    assert await store.get_bytes(KEY) == original
    assert await store.stat(KEY) == first
    assert await store.list_keys("") == [KEY]


# -- missing and invalid keys ------------------------------------------------


async def test_missing_key_raises_not_found(store: ObjectStore, tmp_path: Path) -> None:
    missing = "dossiers/d1/nothing.bin"
    with pytest.raises(ObjectNotFound) as info:
        await store.get_bytes(missing)
    assert info.value.code == "storage.not_found"
    assert info.value.params == {"key": missing}
    with pytest.raises(ObjectNotFound):
        await store.stat(missing)
    with pytest.raises(ObjectNotFound):
        await store.download(missing, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    with pytest.raises(ObjectNotFound):
        _ = [c async for c in store.iter_chunks(missing)]
    with pytest.raises(ObjectNotFound):
        _ = [c async for c in store.iter_chunks(missing, start=3, end=3)]


UNSAFE_KEYS = [
    "",
    "../x",
    "a/../b",
    "a/./b",
    "/abs",
    "a//b",
    "a/",
    "a\\b",
    "a\0b",
    ".hidden",
    "a/.tmp",
    "có dấu.txt",
    "with space",
    "x" * 1025,
]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
async def test_unsafe_keys_rejected(store: ObjectStore, tmp_path: Path, key: str) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"data")
    with pytest.raises(InvalidKey) as info:
        await store.put_bytes(key, b"data")
    assert info.value.code == "storage.invalid_key"
    assert info.value.params["key"] == key
    with pytest.raises(InvalidKey):
        await store.put_file(key, src)
    with pytest.raises(InvalidKey):
        await store.get_bytes(key)
    with pytest.raises(InvalidKey):
        await store.stat(key)
    with pytest.raises(InvalidKey):
        await store.exists(key)
    with pytest.raises(InvalidKey):
        await store.download(key, tmp_path / "out.bin")
    with pytest.raises(InvalidKey):
        _ = [c async for c in store.iter_chunks(key)]
    assert await store.list_keys("") == []


@pytest.mark.parametrize("prefix", ["../", "/abs/", "a//", "a\\b"])
async def test_unsafe_prefix_rejected(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidKey):
        await store.list_keys(prefix)


# -- local backend specifics ---------------------------------------------------


async def test_local_object_is_read_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    await store.put_bytes(KEY, b"evidence")
    path = tmp_path / KEY
    assert stat_mod.S_IMODE(path.stat().st_mode) == 0o444
    assert path.read_bytes() == b"evidence"


async def test_local_leftover_temp_file_is_invisible(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    await store.put_bytes("dossiers/d1/other.bin", b"other")
    # What a crash between writing the temp file and linking it leaves behind.
    leftover = tmp_path / "dossiers/d1/.audio.webm.0123456789abcdef.tmp"
    leftover.write_bytes(b"half a file")

    assert await store.list_keys("") == ["dossiers/d1/other.bin"]
    assert await store.list_keys("dossiers/d1/") == ["dossiers/d1/other.bin"]
    assert not await store.exists("dossiers/d1/audio.webm")
    obj = await store.put_bytes("dossiers/d1/audio.webm", b"whole file")
    assert obj.sha256 == _sha(b"whole file")
    assert await store.get_bytes("dossiers/d1/audio.webm") == b"whole file"
    # No temp file of the successful write is left next to the object.
    names = sorted(p.name for p in (tmp_path / "dossiers/d1").iterdir())
    assert names == [leftover.name, "audio.webm", "other.bin"]


async def test_local_stat_rehashes_without_checksum_sidecar(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    data = _payload(5000)
    obj = await store.put_bytes(KEY, data)
    sidecar = tmp_path / ".sha256" / KEY
    assert sidecar.read_text().strip() == _sha(data)
    sidecar.unlink()  # as after a crash right after the link
    assert await store.stat(KEY) == obj
    assert sidecar.read_text().strip() == _sha(data)


async def test_local_concurrent_puts_exactly_one_wins(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    payloads = [_payload(200_000, seed=i) for i in range(8)]
    results = await asyncio.gather(
        *(store.put_bytes(KEY, p) for p in payloads), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, StoredObject)]
    assert len(winners) == 1
    assert all(isinstance(r, ObjectExists) for r in results if r is not winners[0])
    stored = await store.get_bytes(KEY)
    assert _sha(stored) == winners[0].sha256
    assert stored in payloads


async def test_local_key_conflicting_with_directory(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    await store.put_bytes("a/b", b"1")
    with pytest.raises(InvalidKey):
        await store.put_bytes("a", b"2")
    with pytest.raises(InvalidKey):
        await store.put_bytes("a/b/c", b"3")
    assert await store.list_keys("") == ["a/b"]


# -- S3 backend specifics -----------------------------------------------------


async def test_s3_sha256_is_object_metadata(s3_endpoint: str) -> None:
    bucket = f"t-{uuid.uuid4().hex[:20]}"
    store = _s3_store(s3_endpoint, bucket)
    data = _payload(777)
    await store.put_bytes(KEY, data, content_type="audio/webm")
    raw = Minio(s3_endpoint, *S3_TEST_CREDENTIALS, secure=False)
    info = raw.stat_object(bucket, KEY)
    assert info.metadata is not None
    assert info.metadata["x-amz-meta-sha256"] == _sha(data)
    assert info.content_type == "audio/webm"
    await store.close()


async def test_s3_stat_hashes_object_without_metadata(s3_endpoint: str) -> None:
    bucket = f"t-{uuid.uuid4().hex[:20]}"
    store = _s3_store(s3_endpoint, bucket)
    await store.ensure_bucket()
    data = _payload(3000)
    raw = Minio(s3_endpoint, *S3_TEST_CREDENTIALS, secure=False)
    raw.put_object(bucket, "foreign.bin", io.BytesIO(data), len(data))
    assert await store.stat("foreign.bin") == StoredObject("foreign.bin", 3000, _sha(data))
    await store.close()


async def test_s3_unreachable_raises_unavailable_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port any more: connections are refused.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=2, read=30),
        retries=urllib3.Retry(total=2, backoff_factor=0.2),
    )
    access, secret = S3_TEST_CREDENTIALS
    store = S3Store(f"127.0.0.1:{port}", access, secret, "hoidong", http_client=http)
    began = time.monotonic()
    with pytest.raises(StorageUnavailable) as info:
        await store.put_bytes(KEY, b"data")
    assert info.value.code == "storage.unavailable"
    assert info.value.params["backend"] == "minio"
    for call in (store.get_bytes(KEY), store.exists(KEY), store.list_keys("")):
        with pytest.raises(StorageUnavailable):
            await call
    assert time.monotonic() - began < 20
    await store.close()


# -- factory, keys, hashing, errors, layering ------------------------------------


async def test_open_store(tmp_path: Path, s3_endpoint: str) -> None:
    local = open_store("local", local_root=tmp_path)
    assert isinstance(local, LocalStore)
    assert local.name == "local"

    access, secret = S3_TEST_CREDENTIALS
    s3 = open_store(
        "minio",
        local_root=tmp_path,
        s3_endpoint=s3_endpoint,
        s3_access_key=access,
        s3_secret_key=secret,
        s3_bucket=f"t-{uuid.uuid4().hex[:20]}",
    )
    assert isinstance(s3, S3Store)
    assert s3.name == "minio"
    await s3.put_bytes("k", b"v")  # creates the bucket lazily
    assert await s3.get_bytes("k") == b"v"
    await s3.close()

    with pytest.raises(ValueError):
        open_store("ftp", local_root=tmp_path)
    with pytest.raises(ValueError):
        open_store("minio", local_root=tmp_path)


def test_key_layout() -> None:
    assert (
        recording_key("D-1", "s_2", "p3", "audio", "webm")
        == "dossiers/D-1/sessions/s_2/recordings/p3/audio.webm"
    )
    assert (
        recording_key("d", "s", "p", "video-0002", "mkv")
        == "dossiers/d/sessions/s/recordings/p/video-0002.mkv"
    )
    assert transcript_key("d", "s", "json") == "dossiers/d/sessions/s/transcript/transcript.json"
    for key in (recording_key("d", "s", "p", "audio", "ogg"), transcript_key("d", "s", "vtt")):
        assert validate_key(key) == key


@pytest.mark.parametrize(
    "args",
    [
        ("..", "s", "p", "audio", "webm"),
        ("d/e", "s", "p", "audio", "webm"),
        ("d", "", "p", "audio", "webm"),
        ("d", "s", "p" * 65, "audio", "webm"),
        ("d", "s", "p", "Audio", "webm"),
        ("d", "s", "p", "audio.x", "webm"),
        ("d", "s", "p", "audio", "we.bm"),
        ("d", "s", "p", "audio", ""),
    ],
)
def test_recording_key_rejects_bad_components(args: tuple[str, str, str, str, str]) -> None:
    with pytest.raises(InvalidKey):
        recording_key(*args)


def test_transcript_key_rejects_bad_format() -> None:
    with pytest.raises(InvalidKey):
        transcript_key("d", "s", "../json")


def test_sha256_file(tmp_path: Path) -> None:
    data = _payload(3 * 1024 * 1024 + 5)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert sha256_file(path) == (_sha(data), len(data))
    assert sha256_file(path, chunk_size=1000) == (_sha(data), len(data))
    path.write_bytes(b"")
    assert sha256_file(path) == (_sha(b""), 0)


def test_error_attributes() -> None:
    err = InvalidKey("../x", "contains a '.' or '..' segment")
    assert isinstance(err, StorageError)
    assert err.code == "storage.invalid_key"
    assert err.params == {"key": "../x", "reason": "contains a '.' or '..' segment"}
    assert "../x" in str(err)
    unavailable = StorageUnavailable("minio", "connection refused")
    assert unavailable.code == "storage.unavailable"
    assert "connection refused" in str(unavailable)


def test_storage_does_not_import_server() -> None:
    code = (
        "import sys, storage, storage.local, storage.s3;"
        "bad = [m for m in sys.modules if m == 'server' or m.startswith('server.')];"
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr

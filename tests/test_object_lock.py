"""Write-once storage: retention and legal holds, against moto's S3 server (Object Lock
through the ``minio`` SDK) and the local backend (enforced by hoidong)."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minio import Minio
from minio.error import S3Error

from storage import LocalStore, ObjectLocked, ObjectNotFound, ObjectStore, S3Store
from tests.conftest import Running
from tests.s3server import S3_TEST_CREDENTIALS, moto_s3_server

KEY = "dossiers/d1/sessions/s1/recordings/p1/audio.webm"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


def raw_client(endpoint: str) -> Minio:
    access, secret = S3_TEST_CREDENTIALS
    return Minio(endpoint, access_key=access, secret_key=secret, secure=False)


@pytest.fixture(params=["local", "minio"])
async def locked_store(request: pytest.FixtureRequest, tmp_path: Path
                       ) -> AsyncIterator[ObjectStore]:
    s: ObjectStore
    if request.param == "local":
        s = LocalStore(tmp_path / "store", retention_days=3650)
    else:
        endpoint: str = request.getfixturevalue("s3_endpoint")
        access, secret = S3_TEST_CREDENTIALS
        s = S3Store(endpoint, access, secret, f"lock-{uuid.uuid4().hex[:16]}",
                    object_lock=True, retention_days=3650)
    yield s
    await s.close()


async def test_retention_is_set_and_readable(locked_store: ObjectStore) -> None:
    before = datetime.now(UTC)
    await locked_store.put_bytes(KEY, b"evidence")
    r = await locked_store.retention(KEY)
    assert r.mode == "COMPLIANCE" and not r.legal_hold
    assert r.until is not None
    assert before + timedelta(days=3649) < r.until < before + timedelta(days=3651)
    with pytest.raises(ObjectNotFound):
        await locked_store.retention(KEY + ".absent")


async def test_a_retained_object_cannot_be_deleted(locked_store: ObjectStore) -> None:
    await locked_store.put_bytes(KEY, b"evidence")
    with pytest.raises(ObjectLocked) as info:
        await locked_store.delete(KEY)
    assert info.value.code == "storage.locked"
    assert await locked_store.get_bytes(KEY) == b"evidence"


async def test_legal_hold_blocks_deletion_until_released(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")  # no retention: only the hold protects it
    await store.put_bytes(KEY, b"evidence")
    await store.set_legal_hold(KEY, True)
    assert (await store.retention(KEY)).legal_hold
    with pytest.raises(ObjectLocked):
        await store.delete(KEY)
    await store.set_legal_hold(KEY, False)
    await store.delete(KEY)  # the retention action, once nothing protects it
    assert not await store.exists(KEY)


async def test_the_s3_server_itself_refuses(s3_endpoint: str) -> None:
    """What Object Lock adds over hoidong's own checks: another client going to the
    bucket directly cannot overwrite or delete the locked version either."""
    access, secret = S3_TEST_CREDENTIALS
    bucket = f"lock-{uuid.uuid4().hex[:16]}"
    store = S3Store(s3_endpoint, access, secret, bucket, object_lock=True,
                    retention_days=3650)
    try:
        await store.put_bytes(KEY, b"original")
        assert store.locked
        client = raw_client(s3_endpoint)
        version = client.stat_object(bucket, KEY).version_id
        assert version
        # An overwrite is a new version; the locked one is still there, unchanged.
        client.put_object(bucket, KEY, io.BytesIO(b"forged"), 6)
        kept = client.get_object(bucket, KEY, version_id=version)
        assert kept.read() == b"original"
        kept.close()
        kept.release_conn()
        # Deleting the version is refused by the server; without a version id only a
        # delete marker is added and the version stays readable.
        with pytest.raises(S3Error):
            client.remove_object(bucket, KEY, version_id=version)
        client.remove_object(bucket, KEY)
        again = client.get_object(bucket, KEY, version_id=version)
        assert again.read() == b"original"
        again.close()
        again.release_conn()
    finally:
        await store.close()


async def test_legal_hold_on_s3(s3_endpoint: str) -> None:
    access, secret = S3_TEST_CREDENTIALS
    bucket = f"hold-{uuid.uuid4().hex[:16]}"
    store = S3Store(s3_endpoint, access, secret, bucket, object_lock=True)  # no retention
    try:
        await store.put_bytes(KEY, b"evidence")
        await store.set_legal_hold(KEY, True)
        assert (await store.retention(KEY)).legal_hold
        version = raw_client(s3_endpoint).stat_object(bucket, KEY).version_id
        with pytest.raises(S3Error):
            raw_client(s3_endpoint).remove_object(bucket, KEY, version_id=version)
        with pytest.raises(ObjectLocked):
            await store.delete(KEY)
        await store.set_legal_hold(KEY, False)
        assert not (await store.retention(KEY)).legal_hold
    finally:
        await store.close()


async def test_an_admin_puts_a_dossier_under_legal_hold(running: Running) -> None:
    from server.state import STORE
    from tests.conftest import make_staff

    r = running
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "appraisal"}, 201)
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                    {"kind": "council_meeting", "title": "Họp"}, 201)
    await r.api("POST", f"/api/sessions/{s['id']}/start")
    await r.api("POST", f"/api/sessions/{s['id']}/end")  # stores the attendance report
    store = r.app[STORE]
    keys = await store.list_keys(f"dossiers/{d['id']}/")
    assert keys
    secretary = await make_staff(r, "thuky", "secretary")
    resp = await r.client.put(f"/api/dossiers/{d['id']}/legal-hold",
                              json={"hold": True, "reason": "Khiếu nại"},
                              headers={"Authorization": f"Bearer {secretary}"})
    assert resp.status == 403  # admins only
    held = await r.api("PUT", f"/api/dossiers/{d['id']}/legal-hold",
                       {"hold": True, "reason": "Khiếu nại của cơ sở giáo dục"})
    assert held["legal_hold"] is True
    assert all([(await store.retention(k)).legal_hold for k in keys])
    with pytest.raises(ObjectLocked):
        await store.delete(keys[0])
    released = await r.api("PUT", f"/api/dossiers/{d['id']}/legal-hold",
                           {"hold": False, "reason": "Đã giải quyết"})
    assert released["legal_hold"] is False
    assert not any([(await store.retention(k)).legal_hold for k in keys])
    bad = await r.api("PUT", f"/api/dossiers/{d['id']}/legal-hold", {"hold": True}, 400)
    assert bad["error"]["code"]
    events = await r.api("GET", f"/api/sessions/{s['id']}/audit")  # the session's only
    assert not any(e["kind"].startswith("dossier.legal_hold") for e in events)

"""Archive packages: the Merkle root, BagIt bags and their offline check, tampering
named, unsafe zips refused, `hoidong verify`, and packages made by the server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from storage.archive import (
    AUDIT_CHAINS,
    AUDIT_EVENTS,
    PackageError,
    make_package,
    verify_package,
    zip_package,
)
from storage.chain import GENESIS, event_hash
from storage.merkle import merkle_root
from tests.conftest import Running

ROOT = Path(__file__).resolve().parent.parent


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_merkle_root_follows_rfc_6962() -> None:
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()
    a, b, c = b"a", b"b", b"c"
    la, lb, lc = h(b"\x00" + a), h(b"\x00" + b), h(b"\x00" + c)
    assert merkle_root([a]) == la.hex()
    assert merkle_root([a, b]) == h(b"\x01" + la + lb).hex()
    # Three leaves split at 2 (the largest power of two below 3), not 1.
    assert merkle_root([a, b, c]) == h(b"\x01" + h(b"\x01" + la + lb) + lc).hex()
    assert merkle_root([a, b, c]) != merkle_root([a, c, b])


def audit_events(n: int, *, tamper: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    events, prev = [], GENESIS
    for i in range(1, n + 1):
        ev = {"chain": "session:s1", "seq": i, "prev": prev,
              "at": f"2026-12-01T09:00:0{i}.000000Z", "kind": "participant.joined",
              "actor": "system", "dossier_id": "d1", "session_id": "s1",
              "participant_id": f"p{i}", "data": {}, "id": i}
        ev["hash"] = event_hash(ev)
        prev = ev["hash"]
        events.append(ev)
    if tamper:
        events[1]["actor"] = "user:forger"  # edited after it was written
    return events, {"session:s1": {"seq": n, "head": prev}}


def make_bag(folder: Path, *, tamper_audit: bool = False) -> str:
    (folder / "recordings" / "p1").mkdir(parents=True)
    (folder / "recordings" / "p1" / "audio.webm").write_bytes(b"\x1aE\xdf\xa3" + bytes(5000))
    (folder / "session.json").write_text(json.dumps({"title": "Phiên họp Hội đồng"}),
                                         encoding="utf-8")
    events, chains = audit_events(3, tamper=tamper_audit)
    audit_dir = folder / "audit"
    audit_dir.mkdir()
    (audit_dir / "events.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    (audit_dir / "chains.json").write_text(json.dumps(chains), encoding="utf-8")
    return make_package(folder, {"Source-Organization": "Trường Đại học A"})


def test_an_untouched_package_passes(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    root = make_bag(bag)
    report = verify_package(bag)
    assert report.ok, report.problems
    assert report.merkle_root == root == report.recorded_root
    assert report.files == 4 and report.chains == 1 and report.events == 3
    assert report.info["Source-Organization"] == "Trường Đại học A"
    zipped = tmp_path / "bag.zip"
    zip_package(bag, zipped)
    assert verify_package(zipped).ok


def test_one_changed_byte_is_named(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    make_bag(bag)
    media = bag / "data" / "recordings" / "p1" / "audio.webm"
    data = bytearray(media.read_bytes())
    data[100] ^= 0x01
    media.write_bytes(bytes(data))
    report = verify_package(bag)
    assert not report.ok
    assert report.problems[0].code == "package.hash_mismatch"
    assert report.problems[0].params["path"] == "data/recordings/p1/audio.webm"


def test_a_dropped_file_is_named(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    make_bag(bag)
    (bag / "data" / "session.json").unlink()
    report = verify_package(bag)
    assert [p.code for p in report.problems][:1] == ["package.file_missing"]
    assert report.problems[0].params["path"] == "data/session.json"


def test_an_edited_audit_event_is_named(tmp_path: Path) -> None:
    """The audit file's bag hash is right (it was sealed after the edit), but the
    chain inside it is not: the edited event is named."""
    bag = tmp_path / "bag"
    bag.mkdir()
    make_bag(bag, tamper_audit=True)
    report = verify_package(bag)
    assert [(p.code, p.params.get("seq")) for p in report.problems] == [
        ("chain.hash_mismatch", "2")]


def test_a_changed_merkle_root_is_found(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    make_bag(bag)
    manifest = bag / "manifest-sha256.txt"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-1]) + "\n")  # a file taken out of the manifest
    report = verify_package(bag)
    codes = [p.code for p in report.problems]
    assert "package.merkle_mismatch" in codes


def test_no_manifest_and_not_a_bag(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    make_bag(bag)
    (bag / "manifest-sha256.txt").unlink()
    with pytest.raises(PackageError) as info:
        verify_package(bag)
    assert info.value.code == "package.no_manifest"
    with pytest.raises(PackageError) as info:
        verify_package(tmp_path / "absent.zip")
    assert info.value.code == "package.no_such_file"
    text = tmp_path / "notes.txt"
    text.write_text("không phải gói")
    with pytest.raises(PackageError) as info:
        verify_package(text)
    assert info.value.code == "package.not_a_bag"


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "bag/../../evil", "C:/evil"])
def test_unsafe_zip_names_are_refused(tmp_path: Path, name: str) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("bag/bagit.txt", "BagIt-Version: 1.0\n")
        z.writestr(name, "x")
    with pytest.raises(PackageError) as info:
        verify_package(bad)
    assert info.value.code == "package.unsafe_path"
    assert not (tmp_path.parent / "evil.txt").exists()


def test_a_zip_bomb_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("bag/bagit.txt", "BagIt-Version: 1.0\n")
        z.writestr("bag/data/zeros.bin", bytes(64 << 20))  # 64 MiB of zeros: ~1000:1
    with pytest.raises(PackageError) as info:
        verify_package(bomb)
    assert info.value.code == "package.too_large"


def run_verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", "verify", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_hoidong_verify_reports_in_both_languages(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    make_bag(bag)
    zipped = tmp_path / "package.zip"
    zip_package(bag, zipped)
    good = run_verify(zipped)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "HỢP LỆ" in good.stdout and "VALID" in good.stdout
    media = bag / "data" / "recordings" / "p1" / "audio.webm"
    media.write_bytes(media.read_bytes() + b"!")
    bad = run_verify(bag)
    assert bad.returncode == 1, bad.stdout
    assert "KHÔNG HỢP LỆ" in bad.stdout and "INVALID" in bad.stdout
    assert "data/recordings/p1/audio.webm" in bad.stdout
    assert run_verify(tmp_path / "absent").returncode == 2


async def test_the_server_packages_an_ended_session(running: Running, tmp_path: Path) -> None:
    r = running
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ thẩm định", "phase": "appraisal",
                                               "institution": "Trường Đại học A"}, 201)
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                    {"kind": "council_meeting", "title": "Phiên họp"}, 201)
    sid = s["id"]
    await r.api("POST", f"/api/sessions/{sid}/participants",
                {"name": "Trần Thị Bình", "role": "member"}, 201)
    await r.api("POST", f"/api/sessions/{sid}/start")
    refused = await r.api("POST", f"/api/sessions/{sid}/packages", None, 409)
    assert refused["error"]["code"] == "archive.session_not_ended"
    await r.api("POST", f"/api/sessions/{sid}/end")
    package = await r.api("POST", f"/api/sessions/{sid}/packages", None, 201)
    assert len(package["merkle_root"]) == 64
    listed = await r.api("GET", f"/api/sessions/{sid}/packages")
    assert [p["id"] for p in listed] == [package["id"]]
    resp = await r.client.get(package["download_url"], headers=r.auth())
    assert resp.status == 200
    data = await resp.read()
    assert hashlib.sha256(data).hexdigest() == package["sha256"]
    zipped = tmp_path / "session.zip"
    zipped.write_bytes(data)
    report = verify_package(zipped)
    assert report.ok, report.problems
    assert report.merkle_root == package["merkle_root"]
    assert report.info["External-Identifier"] == sid
    assert report.events >= 4  # created, invited, started, ended …
    check = await r.api("POST", f"/api/packages/{package['id']}/verify")
    assert check["ok"] and check["root_matches_database"], check
    # Downloads and checks are themselves in the access chain.
    events = await r.api("GET", f"/api/sessions/{sid}/audit")
    access = [e for e in events if e["chain"] == "access"]
    assert [e["kind"] for e in access] == ["access.downloaded", "access.verified"]
    assert "package.created" in [e["kind"] for e in events]
    missing = await r.api("GET", "/api/packages/0123456789abcdef0123456789abcdef/download",
                          None, 404)
    assert missing["error"]["code"] == "package.not_found"
    with zipfile.ZipFile(zipped) as z:
        names = z.namelist()
    assert any(n.endswith(AUDIT_EVENTS) for n in names)
    assert any(n.endswith(AUDIT_CHAINS) for n in names)
    assert any(n.endswith("data/session.json") for n in names)

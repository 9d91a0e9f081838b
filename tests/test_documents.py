"""Dossier documents (minh chứng), the dossier's package and the retention action.

Real files of each kind (PDF, PNG, JPEG, DOCX, XLSX, ODT, an OLE2 header), lying
extensions, an upload over the size limit, a bad evidence code; then the dossier
package with its documents and sessions, checked offline; then retention: dates shown,
nothing deleted before them, the admin's action after them, audited, refused on hold.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiohttp import FormData
from docx import Document
from fpdf import FPDF
from sqlalchemy import select

from server.models import AuditEvent
from server.state import DB, STORE
from storage.archive import verify_package
from storage.filetype import DocumentTypeError, check_document, sniff
from tests.conftest import Running, make_settings, make_staff, start_app


def pdf_bytes(text: str = "Minh chứng H1.01.01.01") -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text=text.encode("ascii", "replace").decode())
    return bytes(pdf.output())


def image_bytes(fmt: str) -> bytes:
    img = np.zeros((16, 16, 3), np.uint8)
    img[4:12, 4:12] = (200, 30, 30)
    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
    codec = {"png": ("png", "rgb24"), "jpeg": ("mjpeg", "yuvj420p")}[fmt]
    enc = av.CodecContext.create(codec[0], "w")
    enc.width, enc.height, enc.pix_fmt = 16, 16, codec[1]
    return b"".join(bytes(p) for p in enc.encode(frame.reformat(format=codec[1])))


def docx_bytes() -> bytes:
    doc = Document()
    doc.add_paragraph("Biên bản khảo sát sơ bộ")
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def zipped(members: dict[str, bytes], stored_first: str | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        if stored_first:
            z.writestr(zipfile.ZipInfo(stored_first), members.pop(stored_first),
                       compress_type=zipfile.ZIP_STORED)
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


XLSX = zipped({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})
ODT = zipped({"mimetype": b"application/vnd.oasis.opendocument.text",
              "content.xml": b"<office:document-content/>"}, stored_first="mimetype")
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 200


@pytest.mark.parametrize(("data", "name", "kind"), [
    (pdf_bytes(), "bao-cao.pdf", "pdf"), (image_bytes("png"), "anh.PNG", "png"),
    (image_bytes("jpeg"), "anh.jpeg", "jpeg"), (docx_bytes(), "bien-ban.docx", "docx"),
    (XLSX, "bang.xlsx", "xlsx"), (ODT, "van-ban.odt", "odt"), (OLE2, "cu.doc", "ole2"),
])
def test_real_files_are_what_they_say(tmp_path: Path, data: bytes, name: str,
                                      kind: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    assert check_document(path, name).name == kind


@pytest.mark.parametrize(("data", "name", "code"), [
    (ELF, "bao-cao.pdf", "document.type_unsupported"),  # a program calling itself a PDF
    (image_bytes("png"), "bao-cao.pdf", "document.type_mismatch"),
    (pdf_bytes(), "anh.jpg", "document.type_mismatch"),
    (docx_bytes(), "bang.xlsx", "document.type_mismatch"),
    (zipped({"a.txt": b"x"}), "bien-ban.docx", "document.type_unsupported"),
    (b"<html><script>alert(1)</script>", "trang.html", "document.type_unsupported"),
    (pdf_bytes(), "khong-duoi", "document.type_mismatch"),
    (b"PK\x03\x04 broken zip", "hong.docx", "document.type_unsupported"),
])
def test_lying_or_unknown_files_are_refused(tmp_path: Path, data: bytes, name: str,
                                            code: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    with pytest.raises(DocumentTypeError) as err:
        check_document(path, name)
    assert err.value.code == code
    assert sniff(path) is None or code == "document.type_mismatch"


def form(code: str, title: str, data: bytes | None, filename: str = "minh-chung.pdf",
         description: str = "") -> FormData:
    f = FormData(default_to_multipart=True)  # as a browser sends a form with a file input
    f.add_field("code", code)
    f.add_field("title", title)
    f.add_field("description", description)
    if data is not None:
        f.add_field("file", data, filename=filename, content_type="application/pdf")
    return f


async def upload(r: Running, dossier_id: str, body: Any, status: int = 201,
                 token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else r.auth()
    resp = await r.client.post(f"/api/dossiers/{dossier_id}/documents", data=body,
                               headers=headers)
    out: dict[str, Any] = await resp.json()
    assert resp.status == status, (resp.status, out)
    return out


async def new_dossier(r: Running) -> str:
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ tự đánh giá Trường A",
                                               "phase": "evaluation",
                                               "institution": "Trường Đại học A"}, 201)
    return str(d["id"])


def upload_space_files(r: Running) -> list[Path]:
    space = r.settings.spool_dir / "uploads"
    return [p for p in space.iterdir()] if space.exists() else []


async def test_upload_list_view_and_the_record(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, transcribe_on_end=False, document_max_mb=0.05)
    async for r in start_app(settings):
        did = await new_dossier(r)
        data = pdf_bytes()
        doc = await upload(r, did, form("H1.01.01.01", "Quyết định thành lập Hội đồng tự "
                                        "đánh giá", data, filename="C:\\fakepath\\QĐ số 12.pdf",
                                        description="Bản scan có dấu đỏ"))
        assert doc["sha256"] == hashlib.sha256(data).hexdigest() and doc["size"] == len(data)
        assert (doc["code"], doc["file_type"], doc["filename"]) == (
            "H1.01.01.01", "pdf", "QĐ số 12.pdf")
        until = datetime.fromisoformat(doc["retain_until"])
        assert until - datetime.fromisoformat(doc["created_at"]) == timedelta(days=3650)
        await upload(r, did, form("H1.01.02.03", "Ảnh hội thảo", image_bytes("png"),
                                  filename="anh.png"))
        listed = await r.api("GET", f"/api/dossiers/{did}/documents")
        assert [d["code"] for d in listed] == ["H1.01.01.01", "H1.01.02.03"]
        # Viewing: the bytes as uploaded, their hash, and an access event.
        resp = await r.client.get(doc["content_url"], headers=r.auth())
        assert resp.status == 200 and await resp.read() == data
        assert resp.headers["Content-Type"] == "application/pdf"
        assert resp.headers["X-Content-SHA256"] == doc["sha256"]
        assert "inline" in resp.headers["Content-Disposition"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        stored = await r.app[STORE].get_bytes(
            next(k for k in await r.app[STORE].list_keys(f"dossiers/{did}/documents/")
                 if doc["id"] in k))
        assert stored == data
        events = await dossier_events(r, did)
        uploaded = [e for e in events if e["kind"] == "document.uploaded"]
        assert [e["data"]["code"] for e in uploaded] == ["H1.01.01.01", "H1.01.02.03"]
        assert uploaded[0]["data"]["sha256"] == doc["sha256"]
        assert uploaded[0]["chain"] == f"dossier:{did}"
        access = [e for e in await access_events(r) if e["data"].get("document") == doc["id"]]
        assert [e["kind"] for e in access] == ["access.viewed"]
        # A reviewer may read, not upload.
        reviewer = await make_staff(r, "phanbien", "reviewer")
        resp = await r.client.get(f"/api/dossiers/{did}/documents",
                                  headers={"Authorization": f"Bearer {reviewer}"})
        assert resp.status == 200
        refused = await upload(r, did, form("H1.01.01.02", "x", data), 403, token=reviewer)
        assert refused["error"]["code"]
        assert not upload_space_files(r)


async def dossier_events(r: Running, did: str) -> list[dict[str, Any]]:
    async with r.app[DB].session() as s:
        rows = (await s.execute(select(AuditEvent).where(AuditEvent.dossier_id == did)
                                .order_by(AuditEvent.id))).scalars()
        return [{"kind": e.kind, "chain": e.chain, "data": e.data, "actor": e.actor}
                for e in rows]


async def access_events(r: Running) -> list[dict[str, Any]]:
    async with r.app[DB].session() as s:
        rows = (await s.execute(select(AuditEvent).where(AuditEvent.chain == "access")
                                .order_by(AuditEvent.seq))).scalars()
        return [{"kind": e.kind, "data": e.data} for e in rows]


async def test_bad_uploads_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, transcribe_on_end=False, document_max_mb=0.05)
    async for r in start_app(settings):
        did = await new_dossier(r)
        big = pdf_bytes() + b"%" * (60 * 1024)  # a real PDF, padded past 50 KiB
        cases: list[tuple[Any, int, str]] = [
            (form("H1.01.01.01", "Quá lớn", big), 413, "document.too_large"),
            (form("H1.01.01.01", "Nói dối", image_bytes("png")), 415,
             "document.type_mismatch"),
            (form("H1.01.01.01", "Chương trình", ELF), 415, "document.type_unsupported"),
            (form("không có mã", "Sai mã", pdf_bytes()), 400, "document.bad_code"),
            (form("H1.01.01.01", "", pdf_bytes()), 400, "http.invalid_field"),
            (form("H1.01.01.01", "Không có tệp", None), 400, "http.invalid_field"),
            (form("H1.01.01.01", "Rỗng", b""), 400, "document.empty"),
            (b"not a form", 400, "document.bad_upload"),
        ]
        for body, status, code in cases:
            out = await upload(r, did, body, status)
            assert out["error"]["code"] == code, (code, out)
            assert out["error"]["message"]["vi"] and out["error"]["message"]["en"]
        # Nothing stored, nothing recorded, nothing left in the upload space.
        assert await r.app[STORE].list_keys(f"dossiers/{did}/") == []
        assert not [e for e in await dossier_events(r, did) if e["kind"] == "document.uploaded"]
        assert not upload_space_files(r)
        assert await r.api("GET", f"/api/dossiers/{did}/documents") == []
        # A declared length over the limit is refused before a byte is read.
        resp = await r.client.post(f"/api/dossiers/{did}/documents", data=b"x" * 200_000,
                                   headers={**r.auth(), "Content-Type":
                                            "multipart/form-data; boundary=x"})
        assert resp.status == 413
        missing = await r.client.get("/api/documents/0123456789abcdef0123456789abcdef/content",
                                     headers=r.auth())
        assert missing.status == 404


async def test_the_dossier_package_holds_documents_and_sessions(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, transcribe_on_end=False)
    async for r in start_app(settings):
        did = await new_dossier(r)
        data = pdf_bytes()
        doc = await upload(r, did, form("H1.01.01.01", "Kế hoạch tự đánh giá", data))
        s = await r.api("POST", f"/api/dossiers/{did}/sessions",
                        {"kind": "council_meeting", "title": "Phiên họp"}, 201)
        await r.api("POST", f"/api/sessions/{s['id']}/participants",
                    {"name": "Trần Thị Bình", "role": "member"}, 201)
        await r.api("POST", f"/api/sessions/{s['id']}/start")
        await r.api("POST", f"/api/sessions/{s['id']}/end")
        later = await r.api("POST", f"/api/dossiers/{did}/sessions",
                            {"kind": "team_session", "title": "Chưa họp"}, 201)
        package = await r.api("POST", f"/api/dossiers/{did}/packages", None, 201)
        assert package["session_id"] is None and len(package["merkle_root"]) == 64
        assert [p["id"] for p in await r.api("GET", f"/api/dossiers/{did}/packages")] == [
            package["id"]]
        resp = await r.client.get(package["download_url"], headers=r.auth())
        body = await resp.read()
        path = tmp_path / "dossier.zip"
        path.write_bytes(body)
        report = verify_package(path)
        assert report.ok, report.problems
        assert report.info["External-Identifier"] == did
        assert report.chains >= 2  # the dossier's and the session's
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            top = names[0].split("/")[0]
            meta = json.loads(z.read(f"{top}/data/dossier.json"))
            doc_path = f"{top}/{meta['documents'][0]['path']}"
            assert z.read(doc_path) == data
            assert f"{top}/data/sessions/{s['id']}/session.json" in names
        assert meta["documents"][0]["code"] == "H1.01.01.01"
        assert meta["documents"][0]["sha256"] == doc["sha256"]
        assert [x["id"] for x in meta["sessions"]] == [s["id"]]
        assert [x["id"] for x in meta["sessions_not_ended"]] == [later["id"]]
        # One changed byte of the document: the check names it.
        tampered = tmp_path / "tampered.zip"
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as out:
            for info in src.infolist():
                raw = src.read(info)
                if info.filename == doc_path:
                    raw = raw[:-5] + bytes([raw[-5] ^ 1]) + raw[-4:]
                out.writestr(info, raw)
        bad = verify_package(tampered)
        assert not bad.ok and bad.problems[0].params.get("path", "").endswith(
            meta["documents"][0]["path"].split("/")[-1]), bad.problems


async def test_retention_dates_shown_nothing_deleted_before_and_the_audited_action(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path, transcribe_on_end=False)
    async for r in start_app(settings):
        did = await new_dossier(r)
        old = await upload(r, did, form("H1.01.01.01", "Văn bản cũ", pdf_bytes("old")))
        new = await upload(r, did, form("H1.01.01.02", "Văn bản mới", pdf_bytes("new")))
        shown = await r.api("GET", f"/api/dossiers/{did}/retention")
        assert shown["retention_years"] == 10 and len(shown["objects"]) == 2
        assert all(o["retain_until"] and not o["expired"] for o in shown["objects"])
        reason = "Hết thời hạn lưu trữ 10 năm theo quy định"
        body = {"reason": reason, "confirm_dossier_id": did}
        # Before the dates: the action deletes nothing (and says so, audited).
        done = await r.api("POST", f"/api/dossiers/{did}/retention/delete", body)
        assert done["deleted"] == [] and done["kept"] == 2 and done["next_expiry"]
        # Only admins; with the dossier confirmed.
        secretary = await make_staff(r, "thuky", "secretary")
        resp = await r.client.post(f"/api/dossiers/{did}/retention/delete", json=body,
                                   headers={"Authorization": f"Bearer {secretary}"})
        assert resp.status == 403
        wrong = await r.api("POST", f"/api/dossiers/{did}/retention/delete",
                            {"reason": reason, "confirm_dossier_id": "x" * 32}, 400)
        assert wrong["error"]["code"] == "retention.not_confirmed"
        # Ten years pass for the old document (the test moves its date; hoidong never does).
        key = next(k for k in await r.app[STORE].list_keys(f"dossiers/{did}/documents/")
                   if old["id"] in k)
        sidecar = r.settings.data_dir / "objects" / ".retention" / key
        record = json.loads(sidecar.read_text())
        record["until"] = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        sidecar.write_text(json.dumps(record))
        # On legal hold nothing goes, whatever the dates.
        await r.api("PUT", f"/api/dossiers/{did}/legal-hold", {"hold": True,
                                                               "reason": "Khiếu nại đang xử lý"})
        held = await r.api("POST", f"/api/dossiers/{did}/retention/delete", body, 409)
        assert held["error"]["code"] == "retention.legal_hold"
        await r.api("PUT", f"/api/dossiers/{did}/legal-hold", {"hold": False,
                                                               "reason": "Đã giải quyết xong"})
        done = await r.api("POST", f"/api/dossiers/{did}/retention/delete", body)
        assert done["deleted"] == [key] and done["kept"] == 1
        assert not await r.app[STORE].exists(key)
        docs = {d["id"]: d for d in await r.api("GET", f"/api/dossiers/{did}/documents")}
        assert docs[old["id"]]["deleted_at"] and docs[old["id"]]["content_url"] is None
        assert docs[new["id"]]["deleted_at"] is None
        gone = await r.client.get(old["content_url"], headers=r.auth())
        assert gone.status == 410
        applied = [e for e in await dossier_events(r, did) if e["kind"] == "retention.applied"]
        assert len(applied) == 2 and applied[0]["data"]["deleted"] == []
        last = applied[1]
        assert last["data"]["reason"] == reason and last["actor"].startswith("user:")
        assert [d["key"] for d in last["data"]["deleted"]] == [key]
        assert last["data"]["deleted"][0]["sha256"] == old["sha256"]

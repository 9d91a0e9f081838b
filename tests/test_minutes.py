"""Minutes agreed by all parties: versions with hashes, agreement bound to a version,
a change voiding earlier agreements, the lock with its PDF and DOCX, refusals (a stale
version, a locked minutes, a forged link, a concurrent save, oversized text), markup
kept inert, and the minutes in the session's package."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from docx import Document
from pypdf import PdfReader

from server import jointoken
from server.models import Transcript, TranscriptSegment, utcnow
from server.state import DB, SECRET
from storage.archive import verify_package
from tests.conftest import Running

SCRIPT = "<script>alert('x')</script> <b>đậm</b>"
CONTENT = "Hội đồng thống nhất: Trường đạt tiêu chuẩn kiểm định chất lượng giáo dục."


async def council(r: Running) -> tuple[str, dict[str, dict[str, Any]]]:
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ tự đánh giá Trường Đại học Huế",
                                               "phase": "appraisal",
                                               "institution": "Trường Đại học Huế"}, 201)
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                    {"kind": "council_meeting", "title": "Phiên họp thẩm định"}, 201)
    people = {}
    for name, role in (("Nguyễn Văn An", "chair"), ("Trần Thị Bình", "secretary"),
                       ("Lê Văn Cường", "member")):
        people[role] = await r.api("POST", f"/api/sessions/{s['id']}/participants",
                                   {"name": name, "role": role}, 201)
    await r.api("POST", f"/api/sessions/{s['id']}/start")
    await r.api("POST", f"/api/sessions/{s['id']}/end")
    return str(s["id"]), people


async def party(r: Running, token: str, path: str, body: dict[str, Any], status: int = 200
                ) -> dict[str, Any]:
    resp = await r.client.post(path, json={"token": token, **body})
    out: dict[str, Any] = await resp.json()
    assert resp.status == status, (resp.status, out)
    return out


async def test_versions_agreement_voiding_and_the_lock(running: Running, tmp_path: Path
                                                        ) -> None:
    r = running
    sid, people = await council(r)
    async with r.app[DB].session() as s:  # what the transcript says the chair said
        tr = Transcript(session_id=sid, status="done", language="vi", model="stand-in")
        s.add(tr)
        await s.flush()
        s.add(TranscriptSegment(transcript_id=tr.id, seq=0, participant_id=people["chair"]["id"],
                                start_s=1.0, end_s=3.0, text="Khai mạc", folded="khai mac"))
        await s.commit()
    draft = await r.api("GET", f"/api/sessions/{sid}/minutes/template?lang=vi")
    assert draft["content"] == "- Nguyễn Văn An phát biểu: …", draft["content"]
    assert draft["title"].startswith("BIÊN BẢN HỌP HỘI ĐỒNG")
    assert "Nguyễn Văn An: Chủ tịch" in draft["attendees"], draft["attendees"]
    assert "Hồ sơ tự đánh giá Trường Đại học Huế" in draft["agenda"]
    assert draft["organisation"] == "TRƯỜNG ĐẠI HỌC HUẾ"
    v1 = await r.api("POST", f"/api/sessions/{sid}/minutes/versions",
                     {"base": None, "content": {**draft, "content": "Bản nháp"}}, 201)
    assert v1["current"] == 1 and len(v1["versions"][0]["sha256"]) == 64
    # A second editor who also started from nothing: refused, nothing lost.
    late = await r.api("POST", f"/api/sessions/{sid}/minutes/versions",
                       {"base": None, "content": draft}, 409)
    assert late["error"]["code"] == "minutes.stale_base"
    links = await r.api("POST", f"/api/sessions/{sid}/minutes/links", None, 201)
    assert {x["role"] for x in links} == {"chair", "secretary"}
    tokens = {x["role"]: x["url"].rsplit("/", 1)[1] for x in links}
    page = await r.client.get("/" + links[0]["url"].split("/", 3)[3])
    assert page.status == 200
    # The chair agrees to version 1; then the secretary saves version 2 (voiding it).
    sha1 = v1["versions"][0]["sha256"]
    await party(r, tokens["chair"], "/api/minutes/respond",
                {"version": 1, "sha256": sha1, "decision": "agree"})
    content = {**draft, "content": f"{CONTENT}\n{SCRIPT}", "place": "Huế",
               "date": "2026-12-01"}
    v2 = await r.api("POST", f"/api/sessions/{sid}/minutes/versions",
                     {"base": 1, "content": content}, 201)
    assert [x["void"] for x in v2["versions"][0]["responses"]] == [True]
    assert not any(p["agreed_at"] for p in v2["required"])
    sha2 = v2["versions"][1]["sha256"]
    stale = await party(r, tokens["chair"], "/api/minutes/respond",
                        {"version": 1, "sha256": sha1, "decision": "agree"}, 409)
    assert stale["error"]["code"] == "minutes.stale_version"
    wrong_hash = await party(r, tokens["chair"], "/api/minutes/respond",
                             {"version": 2, "sha256": "0" * 64, "decision": "agree"}, 409)
    assert wrong_hash["error"]["code"] == "minutes.stale_version"
    # A member (not a required party) may comment, not agree.
    member = jointoken.issue(r.app[SECRET], session_id=sid,
                             participant_id=people["member"]["id"], role="member",
                             now=utcnow(), lifetime=timedelta(hours=1), typ="minutes")
    refused = await party(r, member, "/api/minutes/respond",
                          {"version": 2, "sha256": sha2, "decision": "agree"}, 403)
    assert refused["error"]["code"] == "minutes.not_a_party"
    await party(r, member, "/api/minutes/respond",
                {"version": 2, "sha256": sha2, "decision": "comment",
                 "comment": "Đề nghị bổ sung minh chứng H1.01.01.01"})
    # Both parties agree to version 2: the minutes lock.
    view = await party(r, tokens["secretary"], "/api/minutes/view", {})
    assert view["version"]["number"] == 2 and view["version"]["content"]["content"].endswith(
        SCRIPT)
    await party(r, tokens["chair"], "/api/minutes/respond",
                {"version": 2, "sha256": sha2, "decision": "agree"})
    early = await r.api("POST", f"/api/sessions/{sid}/minutes/lock", None, 409)
    assert early["error"]["code"] == "minutes.not_agreed"
    assert "Trần Thị Bình" in early["error"]["message"]["vi"]
    agreed = await party(r, tokens["secretary"], "/api/minutes/respond",
                         {"version": 2, "sha256": sha2, "decision": "agree"})
    assert not agreed["locked"] and all(p["agreed_at"] for p in agreed["required"])
    done = await r.api("POST", f"/api/sessions/{sid}/minutes/lock")
    assert done["locked"] and done["final"]["version"] == 2 and done["final"]["sha256"] == sha2
    twice = await r.api("POST", f"/api/sessions/{sid}/minutes/lock", None, 409)
    assert twice["error"]["code"] == "minutes.locked"
    # Locked: no new version, no new answer.
    locked = await r.api("POST", f"/api/sessions/{sid}/minutes/versions",
                         {"base": 2, "content": content}, 409)
    assert locked["error"]["code"] == "minutes.locked"
    again = await party(r, tokens["chair"], "/api/minutes/respond",
                        {"version": 2, "sha256": sha2, "decision": "agree"}, 409)
    assert again["error"]["code"] == "minutes.locked"
    # The PDF: A4, the Vietnamese text intact, the markup printed as text.
    resp = await r.client.get(f"/api/sessions/{sid}/minutes.pdf", headers=r.auth())
    pdf = await resp.read()
    assert hashlib.sha256(pdf).hexdigest() == done["final"]["pdf_sha256"]
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(p.extract_text() for p in reader.pages)
    flat = " ".join(text.split())
    for expected in (CONTENT, "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc",
                     "Huế, ngày 01 tháng 12 năm 2026", "<script>alert('x')</script>",
                     "Nguyễn Văn An", "Đã đồng ý phiên bản 2", sha2):
        assert expected in flat, expected
    assert abs(float(reader.pages[0].mediabox.width) - 595.28) < 1
    fonts = [f for page in reader.pages for f in (page["/Resources"]["/Font"] or {}).values()]
    assert fonts and all("/FontFile2" in f.get_object()["/DescendantFonts"][0].get_object()[
        "/FontDescriptor"] for f in fonts)  # embedded
    docx = await (await r.client.get(f"/api/sessions/{sid}/minutes.docx",
                                     headers=r.auth())).read()
    doc = Document(io.BytesIO(docx))
    assert any(CONTENT in p.text for p in doc.paragraphs)
    # The record and the package.
    kinds = [e["kind"] for e in await r.api("GET", f"/api/sessions/{sid}/audit")]
    for kind in ("minutes.version_saved", "minutes.agreements_voided", "minutes.agreed",
                 "minutes.commented", "minutes.locked", "minutes.links_issued"):
        assert kind in kinds, kind
    package = await r.api("POST", f"/api/sessions/{sid}/packages", None, 201)
    zipped = tmp_path / "p.zip"
    zipped.write_bytes(await (await r.client.get(package["download_url"],
                                                 headers=r.auth())).read())
    assert verify_package(zipped).ok
    with zipfile.ZipFile(zipped) as z:
        names = z.namelist()
        assert any(n.endswith("data/minutes/minutes.pdf") for n in names)
        assert z.read(next(n for n in names if n.endswith("minutes/minutes.pdf"))) == pdf


async def test_forged_and_wrong_links_and_bad_text(running: Running) -> None:
    r = running
    sid, people = await council(r)
    chair = people["chair"]
    forged = jointoken.issue("another-secret-" + "x" * 32, session_id=sid,
                             participant_id=chair["id"], role="chair", now=utcnow(),
                             lifetime=timedelta(hours=1), typ="minutes")
    join_link = chair["join_url"].rsplit("/", 1)[1]  # a meeting link is not a minutes link
    for token in (forged, join_link, "not-a-token", ""):
        out = await party(r, token, "/api/minutes/view", {}, 401)
        assert out["error"]["message"]["vi"] and out["error"]["message"]["en"]
        page = await r.client.get(f"/minutes/{sid}/{token or 'x'}")
        assert page.status == 401
    too_long = await r.api("POST", f"/api/sessions/{sid}/minutes/versions",
                           {"base": None, "content": {"content": "x" * 50_001}}, 400)
    assert too_long["error"]["code"] == "http.invalid_field"
    unknown = await r.api("POST", f"/api/sessions/{sid}/minutes/versions",
                          {"base": None, "content": {"extra": "x"}}, 400)
    assert unknown["error"]["code"] == "http.invalid_field"
    nul = await r.api("POST", f"/api/sessions/{sid}/minutes/versions",
                      {"base": None, "content": {"content": "a\u0000b"}}, 400)
    assert nul["error"]["code"] in ("http.bad_request", "http.invalid_field")
    none = await r.client.get(f"/api/sessions/{sid}/minutes.pdf", headers=r.auth())
    assert none.status == 404


def pkcs7_detached(data: bytes, name: str) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    from tests.tsa import make_certificate
    key, cert = make_certificate(name)
    return (pkcs7.PKCS7SignatureBuilder().set_data(data)
            .add_signer(cert, key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature,
                                               pkcs7.PKCS7Options.Binary]))


async def test_a_party_signs_the_locked_pdf_and_verify_checks_it(running: Running,
                                                                 tmp_path: Path) -> None:
    r = running
    sid, _ = await council(r)
    v1 = await r.api("POST", f"/api/sessions/{sid}/minutes/versions",
                     {"base": None, "content": {"title": "BIÊN BẢN", "content": CONTENT}}, 201)
    sha = v1["versions"][0]["sha256"]
    links = await r.api("POST", f"/api/sessions/{sid}/minutes/links", None, 201)
    tokens = {x["role"]: x["url"].rsplit("/", 1)[1] for x in links}
    early = await party(r, tokens["chair"], "/api/minutes/sign",
                        {"signature": base64.b64encode(b"x").decode()}, 409)
    assert early["error"]["code"] == "minutes.not_locked"
    for role in ("chair", "secretary"):
        await party(r, tokens[role], "/api/minutes/respond",
                    {"version": 1, "sha256": sha, "decision": "agree"})
    await r.api("POST", f"/api/sessions/{sid}/minutes/lock")
    resp = await r.client.get("/api/minutes/final.pdf", params={"token": tokens["chair"]})
    assert resp.status == 200
    pdf = await resp.read()
    good = pkcs7_detached(pdf, "Nguyễn Văn An")
    for bad, status, code in ((pkcs7_detached(pdf + b" ", "Kẻ giả"), 422, "signature.invalid"),
                              (b"\x30\x03\x02\x01\x00", 422, "signature.unreadable")):
        out = await party(r, tokens["chair"], "/api/minutes/sign",
                          {"signature": base64.b64encode(bad).decode()}, status)
        assert out["error"]["code"] == code, out
    not_b64 = await party(r, tokens["chair"], "/api/minutes/sign", {"signature": "@@@"}, 400)
    assert not_b64["error"]["code"] == "signature.unreadable"
    state = await party(r, tokens["chair"], "/api/minutes/sign",
                        {"signature": base64.b64encode(good).decode()}, 201)
    assert [s["name"] for s in state["signatures"]] == ["Nguyễn Văn An"]
    assert "Nguyễn Văn An" in state["signatures"][0]["signer"]
    package = await r.api("POST", f"/api/sessions/{sid}/packages", None, 201)
    zipped = tmp_path / "signed.zip"
    zipped.write_bytes(await (await r.client.get(package["download_url"],
                                                 headers=r.auth())).read())
    report = verify_package(zipped)
    assert report.ok, report.problems
    assert [signer for _, signer in report.signatures] == [state["signatures"][0]["signer"]]
    # A signature swapped for one of other bytes in the package: named.
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(tampered, "w") as out:
        for info in src.infolist():
            raw = src.read(info)
            if info.filename.endswith(".p7s"):
                raw = pkcs7_detached(b"another text", "Kẻ giả")
            out.writestr(info, raw)
    bad = verify_package(tampered)
    assert any(p.code == "signature.invalid" for p in bad.problems), bad.problems
    kinds = [e["kind"] for e in await r.api("GET", f"/api/sessions/{sid}/audit")]
    assert "minutes.signed" in kinds

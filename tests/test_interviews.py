"""Interviews: the interviewee's link works only around the scheduled time; a pseudonym
is what other participants and the transcript see, the real name stays with staff."""

from __future__ import annotations

import asyncio
import html
import io
import json
import unicodedata
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

from server.i18n import t
from server.joinwindow import vietnam_time
from server.models import public_name, utcnow
from server.state import LIVE, TRANSCRIPTION
from tests.conftest import Running, make_settings, start_app
from tests.mediaclient import accept_answer, make_offer
from tests.test_signalling import next_message


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def docx_text(data: bytes) -> str:
    from docx import Document
    doc = Document(io.BytesIO(data))
    cells = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    return "\n".join([p.text for p in doc.paragraphs] + cells)


async def interview(r: Running, start_in: timedelta, length: timedelta | None) -> str:
    d = await r.api("POST", "/api/dossiers", {"title": "HS", "phase": "evaluation"}, 201)
    start = utcnow() + start_in
    body: dict[str, Any] = {"kind": "interview", "title": "Phỏng vấn sinh viên",
                            "scheduled_at": start.isoformat()}
    if length is not None:
        body["scheduled_end_at"] = (start + length).isoformat()
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions", body, 201)
    return str(s["id"])


async def add(r: Running, sid: str, name: str, role: str, pseudonym: str | None = None
              ) -> dict[str, Any]:
    p: dict[str, Any] = await r.api("POST", f"/api/sessions/{sid}/participants",
                                    {"name": name, "role": role, "pseudonym": pseudonym}, 201)
    p["token"] = p["join_url"].rsplit("/", 1)[1]
    p["path"] = "/join/" + p["join_url"].split("/join/", 1)[1]
    return p


async def hello(r: Running, sid: str, token: str) -> dict[str, Any]:
    ws = await r.client.ws_connect("/ws/join")
    await ws.send_json({"type": "hello", "token": token, "session_id": sid})
    msg: dict[str, Any] = await ws.receive_json()
    await ws.close()
    return msg


async def test_interviewee_link_works_only_in_the_window(running: Running) -> None:
    r = running
    # Starts in two hours: too early (the margin is 15 minutes).
    sid = await interview(r, timedelta(hours=2), timedelta(minutes=45))
    student = await add(r, sid, "Nguyễn Văn Sinh", "interviewee")
    reviewer = await add(r, sid, "Trần Đánh Giá", "reviewer")
    resp = await r.client.get(student["path"])
    assert resp.status == 403
    page = await resp.text()
    session = await r.api("GET", f"/api/sessions/{sid}")
    opens = datetime.fromisoformat(session["scheduled_at"]) - timedelta(minutes=15)
    closes = opens + timedelta(minutes=15 + 45 + 15)
    shown = {"start": vietnam_time(opens), "end": vietnam_time(closes)}
    assert html.escape(t("join.too_early", "vi", shown)) in page  # opening time in UTC+7
    assert html.escape(t("join.too_early", "en", shown)) in page
    resp = await r.client.post("/api/join/consent",
                               json={"token": student["token"], "accepted": True})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "join.too_early"
    refused = await hello(r, sid, student["token"])
    assert refused["code"] == "join.too_early" and "{start}" not in refused["message"]["vi"]
    # The window limits interviewees only: the reviewer's link works now.
    assert (await r.client.get(reviewer["path"])).status == 200

    # Started ten minutes ago, ends in thirty: open.
    sid = await interview(r, -timedelta(minutes=10), timedelta(minutes=40))
    student = await add(r, sid, "Lê Thị Học", "interviewee")
    assert (await r.client.get(student["path"])).status == 200
    resp = await r.client.post("/api/join/consent",
                               json={"token": student["token"], "accepted": True})
    assert resp.status == 200
    # In the window the link works: the interviewee is let into the lobby.
    assert (await hello(r, sid, student["token"]))["type"] == "waiting"

    # Scheduled yesterday for an hour (no end given: the default length applies): closed.
    sid = await interview(r, -timedelta(days=1), None)
    student = await add(r, sid, "Phạm Cựu", "interviewee")
    resp = await r.client.get(student["path"])
    assert resp.status == 403 and "join.too_late" in await resp.text()


async def test_schedule_end_must_follow_start(running: Running) -> None:
    d = await running.api("POST", "/api/dossiers", {"title": "HS", "phase": "evaluation"}, 201)
    start = utcnow()
    body = {"kind": "interview", "title": "PV", "scheduled_at": start.isoformat(),
            "scheduled_end_at": (start - timedelta(minutes=5)).isoformat()}
    resp = await running.client.post(f"/api/dossiers/{d['id']}/sessions", json=body,
                                     headers=running.auth())
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "session.bad_schedule"


async def test_pseudonym_is_what_others_and_the_transcript_see(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, transcribe_on_end=True)
    async for r in start_app(settings):
        sid = await interview(r, -timedelta(minutes=5), timedelta(minutes=30))
        student = await add(r, sid, "Hoàng Thị Thật", "interviewee", pseudonym="SV-03")
        reviewer = await add(r, sid, "Trần Đánh Giá", "reviewer")
        for p in (student, reviewer):
            resp = await r.client.post("/api/join/consent",
                                       json={"token": p["token"], "accepted": True})
            assert resp.status == 200
        sockets, peers, seen = [], [], []
        # The reviewer runs the interview; the interviewee waits in the lobby until
        # the reviewer admits them, and the lobby shows the pseudonym, not the name.
        for p in (reviewer, student):
            ws = await r.client.ws_connect("/ws/join")
            await ws.send_json({"type": "hello", "token": p["token"], "session_id": sid})
            welcome = await ws.receive_json()
            if p is student:
                assert welcome["type"] == "waiting", welcome
                lobby = await next_message(sockets[0], "lobby")
                assert lobby["waiting"] == [{"id": student["id"], "name": "SV-03",
                                             "role": "interviewee", "since": ANY}]
                await sockets[0].send_json({"type": "admit", "participant_id": student["id"]})
                welcome = await ws.receive_json()
            assert welcome["type"] == "welcome", welcome
            assert welcome["participant"]["controls"] == (p is reviewer)
            pc = await make_offer(receive_slots=welcome["receive_slots"] and 1)
            await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
            answer = await next_message(ws, "answer")
            await accept_answer(pc, answer["sdp"])
            sockets.append(ws)
            peers.append(pc)
        # What the reviewer is told about the slot showing the interviewee.
        deadline = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < deadline:
            msg = await sockets[0].receive(timeout=5)
            data = json.loads(msg.data)
            if data["type"] == "slots":
                seen += [s["participant"] for s in data["slots"] if s["participant"]]
                if seen:
                    break
        assert seen and all(s["name"] == "SV-03" for s in seen), seen
        await asyncio.sleep(1.5)
        await r.api("POST", f"/api/sessions/{sid}/end")
        for ws, pc in zip(sockets, peers, strict=True):
            await ws.close()
            await pc.close()
        await r.app[TRANSCRIPTION].wait_idle()
        doc = await (await r.client.get(f"/api/sessions/{sid}/transcript.json",
                                        headers=r.auth())).json()
        names = {s["id"]: s["name"] for s in doc["speakers"]}
        assert names[student["id"]] == "SV-03"
        assert "Hoàng Thị Thật" not in json.dumps(doc, ensure_ascii=False)
        # Staff still see who it was.
        people = await r.api("GET", f"/api/sessions/{sid}/participants")
        me = next(p for p in people if p["id"] == student["id"])
        assert (me["name"], me["pseudonym"]) == ("Hoàng Thị Thật", "SV-03")
        assert me["admitted_at"] is not None
        # What is stored and archived shows the pseudonym only: the attendance report,
        # the transcript's documents, the audit log — every file of the package.
        report = await (await r.client.get(f"/api/sessions/{sid}/attendance",
                                           headers=r.auth())).json()
        mine = next(p for p in report["participants"] if p["id"] == student["id"])
        assert (mine["name"], mine["pseudonym"]) == ("SV-03", "SV-03")
        package = await r.api("POST", f"/api/sessions/{sid}/packages", None, 201)
        data = await (await r.client.get(package["download_url"], headers=r.auth())).read()
        real = "Hoàng Thị Thật"
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            assert any(n.endswith(".pdf") for n in names), names
            for name in names:
                raw = z.read(name)
                text = pdf_text(raw) if name.endswith(".pdf") else (
                    docx_text(raw) if name.endswith(".docx") else raw.decode("utf-8", "replace"))
                assert real not in unicodedata.normalize("NFC", text), name


async def test_interviewees_see_only_their_own_interview(running: Running) -> None:
    """Two interviews at once, two interviewees in the first: each link opens its own
    interview only; it is no key to the other interview, nor to any staff API."""
    r = running
    first = await interview(r, -timedelta(minutes=5), timedelta(minutes=40))
    d = await r.api("POST", "/api/dossiers", {"title": "HS 2", "phase": "evaluation"}, 201)
    start = utcnow() - timedelta(minutes=5)
    second = (await r.api("POST", f"/api/dossiers/{d['id']}/sessions", {
        "kind": "interview", "title": "Phỏng vấn nhà tuyển dụng",
        "scheduled_at": start.isoformat(),
        "scheduled_end_at": (start + timedelta(minutes=40)).isoformat()}, 201))["id"]
    one = await add(r, first, "Sinh viên Một", "interviewee", pseudonym="SV-01")
    two = await add(r, first, "Sinh viên Hai", "interviewee", pseudonym="SV-02")
    employer = await add(r, second, "Nhà tuyển dụng", "interviewee")
    page = await (await r.client.get(one["path"])).text()
    assert "Phỏng vấn sinh viên" in page and "Phỏng vấn nhà tuyển dụng" not in page
    assert "Sinh viên Hai" not in page and "SV-02" not in page
    # Their link is no key to the other interview…
    for token, sid in ((one["token"], second), (employer["token"], first)):
        refused = await hello(r, sid, token)
        assert refused["code"] == "join.wrong_session", refused
    # …nor to the staff API, of their own interview or the other.
    for path in (f"/api/sessions/{first}", f"/api/sessions/{first}/participants",
                 f"/api/sessions/{second}/participants", f"/api/sessions/{first}/audit",
                 "/api/search?q=a", "/api/dossiers"):
        resp = await r.client.get(path, headers={"Authorization": f"Bearer {one['token']}"})
        assert resp.status == 401, (path, resp.status)
    # Both interviewees of the first wait in its lobby, under their pseudonyms.
    for p in (one, two):
        resp = await r.client.post("/api/join/consent",
                                   json={"token": p["token"], "accepted": True})
        assert resp.status == 200
    sockets = []
    for p in (one, two):
        ws = await r.client.ws_connect("/ws/join")
        await ws.send_json({"type": "hello", "token": p["token"], "session_id": first})
        assert (await ws.receive_json())["type"] == "waiting"
        sockets.append(ws)
    lobby = r.app[LIVE].lobby.waiting(first)
    assert sorted(public_name(w.participant) for w in lobby) == ["SV-01", "SV-02"]
    assert not r.app[LIVE].lobby.waiting(second)
    for ws in sockets:
        await ws.close()

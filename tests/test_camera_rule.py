"""The camera rule live, with a real aiortc client: a member's camera goes black, the
member is warned, the chair alerted, the interval becomes non-compliant and the member
is moved to the lobby; the roll call of a hybrid session; the attendance report
(JSON, CSV, PDF) stored when the session ends, and who may read it."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientWebSocketResponse
from pypdf import PdfReader

from tests.conftest import Running, make_settings, make_staff, start_app
from tests.test_camera_live import camera_track, wait_camera
from tests.test_signalling import (
    Invited,
    audit,
    hello,
    invite,
    join_with_media,
    joined,
    next_message,
    recv_json,
)


async def hybrid_council(r: Running, **policy: Any) -> str:
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ thẩm định", "phase": "appraisal"},
                    201)
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions", {
        "kind": "council_meeting", "title": "Phiên họp Hội đồng", "mode": "hybrid",
        "admission": "invited", "policy": policy}, 201)
    assert s["policy"]["camera_grace_s"] == policy.get("camera_grace_s", 10)
    await r.api("POST", f"/api/sessions/{s['id']}/start")
    return str(s["id"])


async def panel_until(ws: ClientWebSocketResponse, check: Any, within: float = 10.0
                      ) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        msg = await next_message(ws, "panel", within=max(0.1, deadline - time.monotonic()))
        if check(msg):
            return msg


def row(panel: dict[str, Any], who: Invited) -> dict[str, Any]:
    return next(p for p in panel["participants"] if p["id"] == who.id)


async def test_warning_breach_lobby_roll_call_and_report(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, camera_sample_s=1.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await hybrid_council(r, camera_grace_s=2, camera_escalation_s=3,
                                   camera_to_lobby=True)
        chair = await invite(r, sid, "Chủ tịch Nguyễn An", "chair")
        member = await invite(r, sid, "Ủy viên Trần Bình", "member")
        absent = await invite(r, sid, "Ủy viên Lê Cường", "member")
        await invite(r, sid, "Phòng họp A", "room")
        chair_ws = await joined(r, chair, sid)
        m = await join_with_media(r, member, sid)
        try:
            await wait_camera(r, sid, member.id, True, None)
            panel = await panel_until(chair_ws, lambda p, who=member: row(p, who)["camera_on"])
            assert row(panel, member)["connected"] and row(panel, member)["state"] == "ok"
            assert row(panel, absent) == {**row(panel, absent), "connected": False,
                                          "camera_on_s": 0.0}
            # The chair has no camera (no media at all): it is held to the rule too, and
            # counts as present for "the chair present" but not as present with a camera.
            assert panel["quorum"]["counted"] == 3 and not panel["quorum"]["met"]

            # Roll call: the absent member is in the meeting room after all.
            await r.api("POST", f"/api/sessions/{sid}/room",
                        {"participant_id": absent.id, "present": True})
            panel = await panel_until(chair_ws, lambda p, who=absent: row(p, who)["in_room"])
            assert panel["quorum"]["present"] == 2 and panel["quorum"]["met"]  # 2 of 3

            # The member's camera goes black: warning, alert, breach, lobby.
            blacked = time.time()
            camera_track(m.pc).black = True
            warning = await next_message(m.ws, "camera_warning", within=10)
            assert warning["reason"] == "black" and warning["escalation_in_s"] == 3
            alert = await next_message(chair_ws, "alert", within=5)
            while alert["participant"]["id"] != member.id:  # the chair's own, first
                alert = await next_message(chair_ws, "alert", within=5)
            assert alert["kind"] == "camera_warning" and alert["reason"] == "black"
            breach = await next_message(m.ws, "camera_non_compliant", within=10)
            assert breach["to_lobby"] is True
            assert (await recv_json(m.ws, skip=frozenset({"speaker", "camera"})))["type"] == (
                "moved_to_lobby")
            moved = time.time()
        finally:
            await m.ws.close()
            await m.pc.close()
        events = await audit(r, sid)
        mine = [e for e in events if e["participant_id"] == member.id]
        kinds = [e["kind"] for e in mine]
        for kind in ("camera.warning", "camera.non_compliant", "participant.moved_to_lobby"):
            assert kind in kinds, kinds
        off = next(e for e in mine if e["kind"] == "camera.non_compliant")
        since = off["data"]["since"]
        assert off["data"]["reason"] == "black"
        left = next(e for e in mine if e["kind"] == "participant.left")
        assert left["data"]["reason"] == "moved_to_lobby"
        assert "quorum.met" in [e["kind"] for e in events]
        # The chair never sent a camera: its breach is recorded, but a host stays.
        chairs = [e for e in events if e["participant_id"] == chair.id]
        breach = next(e for e in chairs if e["kind"] == "camera.non_compliant")
        assert breach["data"] == {**breach["data"], "reason": "no_video", "to_lobby": False}
        assert "participant.moved_to_lobby" not in [e["kind"] for e in chairs]
        roll = next(e for e in events if e["kind"] == "room.present")
        assert roll["participant_id"] == absent.id and roll["actor"].startswith("user:")
        # Back with the same link: into the lobby, until the chair admits again.
        ws = await r.client.ws_connect("/ws/join")
        assert (await hello(ws, member.token, sid))["type"] == "waiting"
        await chair_ws.send_json({"type": "admit", "participant_id": member.id})
        assert (await next_message(ws, "welcome"))["participant"]["id"] == member.id
        await ws.close()

        # Bad roll calls: unknown participant, wrong types.
        resp = await r.client.post(f"/api/sessions/{sid}/room", headers=r.auth(),
                                   json={"participant_id": "nobody", "present": True})
        assert resp.status == 404 and (await resp.json())["error"]["message"]["vi"]
        resp = await r.client.post(f"/api/sessions/{sid}/room", headers=r.auth(),
                                   json={"participant_id": absent.id, "present": "yes"})
        assert resp.status == 400
        await chair_ws.send_json({"type": "room_presence", "participant_id": absent.id,
                                  "present": False})
        panel = await panel_until(chair_ws, lambda p, who=absent: not row(p, who)["in_room"])
        await chair_ws.send_json({"type": "end_session"})
        await next_message(chair_ws, "session_ended")
        await chair_ws.close()

        # The attendance report, stored at the end with its hashes.
        stored = await stored_report(r, sid)
        hashes = {o["format"]: o["sha256"] for o in stored["data"]["objects"]}
        assert set(hashes) == {"json", "csv", "pdf"}
        resp = await r.client.get(f"/api/sessions/{sid}/attendance", headers=r.auth())
        body = await resp.read()
        assert resp.status == 200 and resp.headers["X-Content-SHA256"] == hashes["json"]
        assert hashlib.sha256(body).hexdigest() == hashes["json"]
        report = await resp.json()
        length = report["session"]["length_s"]
        people = {p["id"]: p for p in report["participants"]}
        for p in people.values():
            assert abs(p["connected_s"] + p["in_room_s"] + p["absent_s"] - length) < 0.01
            assert abs(p["camera_on_s"] + p["camera_off_s"] - p["connected_s"]) < 0.01
        bad = people[member.id]
        # Breached until moved out; and again while back without a camera (re-admitted,
        # no media sent): a reconnect does not reset the rule's clock.
        nc, again = bad["non_compliant"]
        assert again["reason"] == "black" and _ts(again["from"]) > _ts(nc["to"])
        assert nc["from"] == since and nc["reason"] == "black"
        # Off from when the black picture was seen (within a sample interval and a
        # decode), non-compliant until moved out.
        black = [o for o in bad["camera_off"] if o["reason"] == "black"]
        assert black and abs(_ts(black[0]["from"]) - blacked) < 2.5, (black, blacked)
        assert abs(_ts(nc["to"]) - moved) < 1.5
        assert bad["warnings"] == 1 and bad["connections"][0]["reason"] == "moved_to_lobby"
        assert len(bad["connections"]) == 2
        assert people[absent.id]["in_room_s"] > 0 and people[absent.id]["connected_s"] == 0
        resp = await r.client.get(f"/api/sessions/{sid}/attendance.csv", headers=r.auth())
        text = (await resp.read()).decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        assert "Ủy viên Trần Bình" in [x[0] for x in rows] and rows[0][0] == "Họ và tên"
        resp = await r.client.get(f"/api/sessions/{sid}/attendance.pdf", headers=r.auth())
        pdf = await resp.read()
        assert hashlib.sha256(pdf).hexdigest() == hashes["pdf"]
        pages = PdfReader(io.BytesIO(pdf)).pages
        assert "Ủy viên Trần Bình" in "".join(page.extract_text() for page in pages)
        # English on demand (made now, not stored); the reviewer may not read it.
        resp = await r.client.get(f"/api/sessions/{sid}/attendance.pdf?lang=en",
                                  headers=r.auth())
        assert resp.status == 200 and "X-Content-SHA256" not in resp.headers
        reviewer = await make_staff(r, "reviewer1", "reviewer")
        resp = await r.client.get(f"/api/sessions/{sid}/attendance",
                                  headers={"Authorization": f"Bearer {reviewer}"})
        assert resp.status == 403
        archivist = await make_staff(r, "archivist1", "archivist")
        resp = await r.client.get(f"/api/sessions/{sid}/attendance.csv",
                                  headers={"Authorization": f"Bearer {archivist}"})
        assert resp.status == 200


async def stored_report(r: Running, sid: str) -> dict[str, Any]:
    """The ``report.stored`` event (stored right after the session ended)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for e in await audit(r, sid):
            if e["kind"] == "report.stored":
                return e
        await asyncio.sleep(0.2)
    raise AssertionError("no report stored")


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


async def test_roll_call_needs_a_live_hybrid_session(running: Running) -> None:
    r = running
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "appraisal"}, 201)
    online = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                         {"kind": "council_meeting", "title": "Trực tuyến"}, 201)
    who = await invite(r, online["id"], "Ủy viên", "member")
    resp = await r.client.post(f"/api/sessions/{online['id']}/room", headers=r.auth(),
                               json={"participant_id": who.id, "present": True})
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "session.not_hybrid"
    sid = await hybrid_council(r)
    await r.api("POST", f"/api/sessions/{sid}/end")
    resp = await r.client.post(f"/api/sessions/{sid}/room", headers=r.auth(),
                               json={"participant_id": who.id, "present": True})
    assert (await resp.json())["error"]["code"] == "session.not_live"
    # Bad policies are refused with a message, never stored.
    resp = await r.client.post(f"/api/dossiers/{d['id']}/sessions", headers=r.auth(), json={
        "kind": "council_meeting", "title": "X", "policy": {"camera_grace_s": -1}})
    assert resp.status == 400
    resp = await r.client.post(f"/api/dossiers/{d['id']}/sessions", headers=r.auth(), json={
        "kind": "council_meeting", "title": "X", "policy": {"quorum_ratio": 2}})
    assert resp.status == 400
    resp = await r.client.post(f"/api/dossiers/{d['id']}/sessions", headers=r.auth(), json={
        "kind": "council_meeting", "title": "X", "policy": {"camera_required_roles": ["boss"]}})
    assert resp.status == 400

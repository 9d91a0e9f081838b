"""The lobby: who waits to be admitted, hosts admitting or turning people away, and the
record it leaves (on SQLite and PostgreSQL, over the real signalling socket)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from unittest.mock import ANY

import pytest
from aiohttp import ClientWebSocketResponse

from server.i18n import both
from server.models import (
    Admission,
    MeetingSession,
    Participant,
    ParticipantRole,
    SessionKind,
    must_wait,
    utcnow,
)
from tests.conftest import Running
from tests.test_signalling import (
    Invited,
    audit,
    connect,
    expect_closed,
    expect_error,
    hello,
    invite,
    joined,
    new_session,
    next_message,
    recv_json,
)

GUESTS = {"observer", "interviewee", "institution_rep"}


@pytest.mark.parametrize("admission", list(Admission))
@pytest.mark.parametrize("kind", [SessionKind.COUNCIL_MEETING, SessionKind.INTERVIEW])
@pytest.mark.parametrize("role", list(ParticipantRole))
def test_who_waits(admission: Admission, kind: SessionKind, role: ParticipantRole) -> None:
    session = MeetingSession(kind=kind.value, admission=admission.value)
    person = Participant(role=role.value)
    host = role in ("chair", "secretary", "team_lead") or (
        kind == SessionKind.INTERVIEW and role == "reviewer")
    expected = not host and (admission == Admission.LOBBY
                             or (admission == Admission.INVITED and role in GUESTS))
    assert must_wait(session, person) == expected
    # Once admitted, never again (a reconnect, a restart).
    person.admitted_at = utcnow()
    assert not must_wait(session, person)


async def lobby_shows(ws: ClientWebSocketResponse, ids: list[str]) -> dict[str, Any]:
    """Read the host's ``lobby`` messages until one lists exactly ``ids``."""
    deadline = time.monotonic() + 10
    while True:
        msg = await recv_json(ws, within=max(0.1, deadline - time.monotonic()))
        if msg["type"] == "lobby" and [w["id"] for w in msg["waiting"]] == ids:
            return msg


async def waiting_in_lobby(r: Running, who: Invited, sid: str) -> ClientWebSocketResponse:
    ws = await connect(r)
    msg = await hello(ws, who.token, sid)
    assert msg == {"type": "waiting", "session": {"id": sid, "title": "Phiên họp"}}, msg
    return ws


async def test_guest_waits_until_the_chair_admits(running_db: Running) -> None:
    r = running_db
    sid = await new_session(r, admission="invited")
    chair = await invite(r, sid, "Chủ tịch An", "chair")
    member = await invite(r, sid, "Thành viên Bình", "member")
    guest = await invite(r, sid, "Quan sát Chi", "observer")

    chair_ws = await joined(r, chair, sid)  # hosts never wait
    member_ws = await joined(r, member, sid)  # invited council members enter directly
    guest_ws = await waiting_in_lobby(r, guest, sid)
    lobby = await lobby_shows(chair_ws, [guest.id])
    assert lobby["waiting"] == [{"id": guest.id, "name": "Quan sát Chi", "role": "observer",
                                 "since": ANY}]
    # Waiting is quiet: pings are answered, nothing else happens.
    await guest_ws.send_json({"type": "ping"})
    assert await recv_json(guest_ws) == {"type": "pong"}

    # Only a host may admit.
    await member_ws.send_json({"type": "admit", "participant_id": guest.id})
    assert await recv_json(member_ws) == {"type": "denied", "code": "signal.forbidden",
                                          "message": both("signal.forbidden")}
    await chair_ws.send_json({"type": "admit", "participant_id": guest.id})
    welcome = await recv_json(guest_ws)
    assert welcome["type"] == "welcome" and welcome["participant"]["id"] == guest.id, welcome
    assert welcome["participant"]["controls"] is False
    await lobby_shows(chair_ws, [])
    # Admitting someone no longer waiting is refused, not an error.
    await chair_ws.send_json({"type": "admit", "participant_id": guest.id})
    assert (await next_message(chair_ws, "denied"))["code"] == "participant.not_waiting"

    # Admitted once: a reconnect enters directly.
    await guest_ws.close()
    again = await joined(r, guest, sid)
    await again.close()

    people = {p["id"]: p for p in await r.api("GET", f"/api/sessions/{sid}/participants")}
    assert people[guest.id]["admitted_at"] is not None
    assert people[member.id]["admitted_at"] is None  # entered directly: nothing to record
    events = [(e["kind"], e["participant_id"], e["actor"]) for e in await audit(r, sid)
              if e["kind"] in ("participant.lobby_entered", "participant.admitted")]
    assert events == [("participant.lobby_entered", guest.id, f"participant:{guest.id}"),
                      ("participant.admitted", guest.id, f"participant:{chair.id}")]
    admitted = next(e for e in await audit(r, sid) if e["kind"] == "participant.admitted")
    assert admitted["data"]["waited_s"] >= 0
    for ws in (chair_ws, member_ws):
        await ws.close()


async def test_turned_away_leaving_and_ending(running_db: Running) -> None:
    r = running_db
    sid = await new_session(r, admission="lobby")
    secretary = await invite(r, sid, "Thư ký Dung", "secretary")
    member = await invite(r, sid, "Thành viên Bình", "member")  # "lobby": members wait too
    quitter = await invite(r, sid, "Thành viên Em", "member")
    late = await invite(r, sid, "Thành viên Giang", "member")

    # Nobody to admit yet: they wait, and the host arriving is shown who waits.
    member_ws = await waiting_in_lobby(r, member, sid)
    secretary_ws = await joined(r, secretary, sid)
    lobby = await recv_json(secretary_ws)
    assert [w["id"] for w in lobby["waiting"]] == [member.id]

    # Turned away: a bilingual error and a close; the link may be used to ask again.
    await secretary_ws.send_json({"type": "deny", "participant_id": member.id})
    await expect_error(member_ws, "lobby.denied", 4403)
    member_ws = await waiting_in_lobby(r, member, sid)

    # Someone who gives up is taken off the list, and that is recorded.
    quitter_ws = await waiting_in_lobby(r, quitter, sid)
    await lobby_shows(secretary_ws, [member.id, quitter.id])
    await quitter_ws.send_json({"type": "leave"})
    assert await recv_json(quitter_ws) == {"type": "bye"}
    await expect_closed(quitter_ws, 1000)
    await lobby_shows(secretary_ws, [member.id])

    # Only ping and leave while waiting; anything else closes that socket alone.
    late_ws = await waiting_in_lobby(r, late, sid)
    await late_ws.send_json({"type": "offer", "sdp": "v=0"})
    await expect_error(late_ws, "lobby.not_admitted", 4403)

    # The session ends: whoever still waits is told so.
    await r.api("POST", f"/api/sessions/{sid}/end")
    await expect_error(member_ws, "session.ended", 4409)
    assert (await next_message(secretary_ws, "session_ended"))["type"] == "session_ended"

    kinds = [(e["kind"], e["participant_id"]) for e in await audit(r, sid)
             if e["kind"].startswith("participant.") and e["kind"] != "participant.invited"]
    assert ("participant.denied", member.id) in kinds
    assert ("participant.lobby_left", quitter.id) in kinds
    assert ("participant.lobby_left", late.id) in kinds
    assert kinds.count(("participant.lobby_entered", member.id)) == 2
    assert not any(k == "participant.admitted" for k, _ in kinds)
    denied = next(e for e in await audit(r, sid) if e["kind"] == "participant.denied")
    assert denied["actor"] == f"participant:{secretary.id}"


async def test_a_second_tab_replaces_the_first_wait(running_db: Running) -> None:
    r = running_db
    sid = await new_session(r, admission="invited")
    guest = await invite(r, sid, "Đại diện trường", "institution_rep")
    first = await waiting_in_lobby(r, guest, sid)
    second = await waiting_in_lobby(r, guest, sid)
    await expect_error(first, "lobby.replaced", 4409)
    await second.send_json({"type": "ping"})
    assert await recv_json(second) == {"type": "pong"}
    await second.close()


async def test_open_sessions_have_no_lobby(running_db: Running) -> None:
    r = running_db
    sid = await new_session(r, admission="open")
    guest = await invite(r, sid, "Quan sát Chi", "observer")
    ws = await joined(r, guest, sid)
    await ws.close()
    await asyncio.sleep(0)
    assert not [e for e in await audit(r, sid) if e["kind"] == "participant.lobby_entered"]


async def test_admission_is_validated(running_db: Running) -> None:
    r = running_db
    d = await r.api("POST", "/api/dossiers", {"title": "HS", "phase": "appraisal"}, 201)
    resp = await r.client.post(f"/api/dossiers/{d['id']}/sessions", headers=r.auth(),
                               json={"kind": "council_meeting", "title": "P",
                                     "admission": "everyone"})
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == "http.invalid_field"
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                    {"kind": "council_meeting", "title": "P"}, 201)
    assert s["admission"] == "invited"

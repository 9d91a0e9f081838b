"""A database that fails for a while loses no segment and no record: SQLite's write lock
not had in time ("database is locked", seen in the soak with twenty participants on two
cores) is waited out when a closed segment is entered and when a stored one is marked
(one such error used to end the upload task: no later segment was stored until the next
start), and when a join, a leave, a camera event, a camera-rule decision or a finished
recording is recorded (a failed leave record used to end the connection's teardown: its
recordings were never stored; a failed join record ended the join with the peer half set
up; a failed recording entry lost the track's row and the connection's other tracks; a
failed camera-rule record lost that decision for good)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc

from server import audit as audit_module
from server.database import retry_transient
from server.segments import SegmentKeeper
from server.state import LIVE
from tests.conftest import make_settings, start_app
from tests.test_segments import _three_stored_each, check_stored, segments, until
from tests.test_signalling import (
    audit,
    invite,
    join_with_media,
    new_session,
    stored_recordings,
)


def _locked() -> sa_exc.OperationalError:
    return sa_exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError(
        "database is locked"))


def lock_records(monkeypatch: pytest.MonkeyPatch, left: dict[str, int]) -> None:
    """Recording an audit event of a kind in ``left`` fails as a locked SQLite does,
    ``left[kind]`` times (counted down)."""
    record = audit_module.record

    def failing_record(s: Any, kind: str, **kwargs: Any) -> Any:
        if left.get(kind):
            left[kind] -= 1
            raise _locked()
        return record(s, kind, **kwargs)

    monkeypatch.setattr(audit_module, "record", failing_record)


async def test_a_locked_database_loses_no_segment(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    left = {"enter": 2, "upload": 3}
    enter, upload = SegmentKeeper._enter, SegmentKeeper._upload

    async def failing_enter(self: SegmentKeeper, *args: Any) -> str:
        if left["enter"]:
            left["enter"] -= 1
            raise _locked()
        return await enter(self, *args)

    async def failing_upload(self: SegmentKeeper, *args: Any) -> bool:
        if left["upload"]:
            left["upload"] -= 1
            raise _locked()
        return await upload(self, *args)

    monkeypatch.setattr(SegmentKeeper, "_enter", failing_enter)
    monkeypatch.setattr(SegmentKeeper, "_upload", failing_upload)
    settings = make_settings(tmp_path, segment_s=1.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        member = await invite(r, sid, "Thành viên", "member")
        client = await join_with_media(r, member, sid)
        await until(_three_stored_each, r, sid, within=40)
        await client.leave()
        rows = await until(_all_stored, r, sid, within=40)
        assert left == {"enter": 0, "upload": 0}
        for kind in ("audio", "video"):
            seqs = sorted(x["seq"] for x in rows if x["kind"] == kind)
            assert seqs == list(range(len(seqs))), seqs  # none missing
        await check_stored(r, rows)


async def _all_stored(r: Any, sid: str) -> list[dict[str, Any]] | None:
    rows = await segments(r, sid)
    return rows if rows and all(x["status"] == "stored" for x in rows) else None


async def test_retry_transient() -> None:
    calls: list[int] = []

    async def twice_locked() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _locked()
        return "written"

    assert await retry_transient(twice_locked, "test", max_delay_s=0.01) == "written"
    assert len(calls) == 3

    async def broken() -> None:
        raise ValueError("not a database that passes")

    with pytest.raises(ValueError):
        await retry_transient(broken, "test")


async def test_a_locked_database_loses_no_leave_and_no_recording(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    left = {"participant.left": 2, "participant.joined": 2, "recording.stored": 2}
    lock_records(monkeypatch, left)
    settings = make_settings(tmp_path, segment_s=1.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        member = await invite(r, sid, "Thành viên", "member")
        client = await join_with_media(r, member, sid)
        await until(_three_stored_each, r, sid, within=40)
        await client.leave()
        recs = await stored_recordings(r, sid, member.id, 2)
        assert {x["kind"] for x in recs} == {"audio", "video"}
        assert all(x["status"] == "stored" for x in recs)
        events = await audit(r, sid)
        for kind in ("participant.joined", "participant.left"):
            assert len([e for e in events if e["kind"] == kind]) == 1, kind
        assert left == {"participant.left": 0, "participant.joined": 0,
                        "recording.stored": 0}
        stored = [e for e in events if e["kind"] == "recording.stored"]
        assert len(stored) == 2, stored  # each track once, no duplicate row


async def test_segments_are_entered_a_few_at_a_time(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments closing faster than the database takes them wait without holding a
    database connection: at most ENTERING are entered at once (each here takes 0.4 s, as
    behind a busy SQLite write lock), the rest of the server still gets its connections
    (the audit read below), and every segment is entered and stored in the end."""
    import asyncio

    from server.segments import ENTERING
    from server.state import LIVE

    enter = SegmentKeeper._enter

    async def slow_enter(self: SegmentKeeper, *args: Any) -> str:
        await asyncio.sleep(0.4)
        return await enter(self, *args)

    monkeypatch.setattr(SegmentKeeper, "_enter", slow_enter)
    settings = make_settings(tmp_path, segment_s=1.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        people = [await invite(r, sid, f"Thành viên {i}", "member") for i in range(3)]
        clients = [await join_with_media(r, who, sid) for who in people]
        await asyncio.sleep(4)  # six tracks closing a segment a second each
        assert await audit(r, sid)  # a reader is not starved of connections meanwhile
        for client in clients:
            await client.leave()
        rows = await until(_all_stored, r, sid, within=60)
        keeper = r.app[LIVE].segments
        assert keeper.entering_most == ENTERING, keeper.entering_most
        for kind in ("audio", "video"):
            for who in people:
                seqs = sorted(x["seq"] for x in rows
                              if x["kind"] == kind and x["participant_id"] == who.id)
                assert seqs and seqs == list(range(len(seqs))), seqs


async def test_a_locked_database_loses_no_camera_rule_decision(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The camera rule's decisions (warnings, breaches, quorum) are taken once: in the
    soak four rounds' records were lost to "database is locked" before this."""
    left = {"camera.warning": 2}
    lock_records(monkeypatch, left)
    settings = make_settings(tmp_path, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        session = await r.api("GET", f"/api/sessions/{sid}")
        rule = r.app[LIVE].camera_rule
        await rule._audit(sid, session["dossier_id"], None, "camera.warning",
                          {"reason": "black"})
        warnings = [e for e in await audit(r, sid) if e["kind"] == "camera.warning"]
        assert left == {"camera.warning": 0}
        assert len(warnings) == 1 and warnings[0]["data"] == {"reason": "black"}

"""The audit log as hash chains: canonical JSON, the chain check, chaining on both
databases (concurrent writers included), tampering found and named, old events chained
by the migration."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from server import audit
from server.audit import verify_chains
from server.database import Database, alembic_config, migrate
from server.models import AuditChain, AuditEvent
from storage.canonical import canonical_json, normalised
from storage.chain import GENESIS, chain_name, event_hash, format_time, verify_chain
from tests.conftest import Running

# -- canonical JSON and the pure check -----------------------------------------------------


def test_canonical_json() -> None:
    value = {"b": [1, 2.5, None, True], "a": "Hội đồng \"A\"\n", "c": {"z": 0.1, "y": 1e-7}}
    assert canonical_json(value) == (
        '{"a":"Hội đồng \\"A\\"\\n","b":[1,2.5,null,true],"c":{"y":1e-07,"z":0.1}}'
    ).encode()
    assert canonical_json(normalised({"t": (1, 2)})) == canonical_json({"t": [1, 2]})
    with pytest.raises(ValueError):
        canonical_json({"x": math.nan})
    with pytest.raises(TypeError):
        canonical_json({1: "x"})


def chain_of(n: int, chain: str = "session:s1") -> list[dict[str, Any]]:
    out, prev = [], GENESIS
    for i in range(1, n + 1):
        ev = {"chain": chain, "seq": i, "prev": prev, "at": f"2026-12-01T10:00:0{i}.000000Z",
              "kind": "participant.joined", "actor": "system", "dossier_id": "d1",
              "session_id": "s1", "participant_id": f"p{i}", "data": {"i": i}, "id": 100 + i}
        ev["hash"] = event_hash(ev)
        prev = ev["hash"]
        out.append(ev)
    return out


def test_an_untouched_chain_passes() -> None:
    events = chain_of(4)
    check = verify_chain("session:s1", events, head=events[-1]["hash"], head_seq=4)
    assert check.ok and check.events == 4 and check.head == events[-1]["hash"]
    assert verify_chain("session:s1", []).ok


@pytest.mark.parametrize(("tamper", "seq", "code"), [
    (lambda ev: ev[1]["data"].update(i=99), 2, "chain.hash_mismatch"),
    (lambda ev: ev[2].update(actor="user:x"), 3, "chain.hash_mismatch"),
    (lambda ev: ev.pop(1), 2, "chain.gap"),
    (lambda ev: ev.insert(0, ev.pop(2)), 1, "chain.gap"),
    (lambda ev: ev.pop(), 4, "chain.head_mismatch"),
])
def test_tampering_is_found_and_named(tamper: Any, seq: int, code: str) -> None:
    events = chain_of(4)
    head, head_seq = events[-1]["hash"], 4
    tamper(events)
    check = verify_chain("session:s1", events, head=head, head_seq=head_seq)
    assert check.broken is not None and (check.broken.seq, check.broken.code) == (seq, code)


def test_a_rehashed_event_still_breaks_the_next_link() -> None:
    events = chain_of(3)
    events[0]["data"] = {"i": 42}
    events[0]["hash"] = event_hash(events[0])  # the forger recomputes the hash
    check = verify_chain("session:s1", events)
    assert check.broken is not None
    assert (check.broken.seq, check.broken.code) == (2, "chain.prev_mismatch")
    assert check.broken.event_id == 102


def test_chain_names() -> None:
    assert chain_name("access.downloaded", "s", "d") == "access"
    assert chain_name("participant.joined", "s", "d") == "session:s"
    assert chain_name("dossier.created", None, "d") == "dossier:d"
    assert chain_name("user.created", None, None) == "system"


# -- in the database ------------------------------------------------------------------------


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await migrate(database_url)
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.close()


async def test_events_are_chained_as_they_are_written(db: Database) -> None:
    async with db.session() as s:
        audit.record(s, "session.created", session_id="s1", dossier_id="d1")
        audit.record(s, "access.viewed", session_id="s1", actor="user:u1")
        audit.record(s, "participant.invited", session_id="s1", data={"name": "Bình"})
        await s.commit()
    async with db.session() as s:
        rows = list((await s.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars())
        heads = {h.chain: h for h in (await s.execute(select(AuditChain))).scalars()}
    assert [(e.chain, e.seq) for e in rows] == [("session:s1", 1), ("access", 1),
                                                ("session:s1", 2)]
    assert rows[0].prev_hash == GENESIS and rows[2].prev_hash == rows[0].hash
    assert heads["session:s1"].seq == 2 and heads["session:s1"].head == rows[2].hash
    assert all(c.ok for c in await verify_chains(db))
    # What is hashed is what is stored: recomputed from the row as read back.
    assert event_hash(audit.hashed_fields(rows[2])) == rows[2].hash
    assert format_time(rows[0].at).endswith("Z")


async def test_concurrent_writers_make_one_chain(db: Database) -> None:
    async def write(i: int) -> None:
        async with db.session() as s:
            audit.record(s, "participant.joined", session_id="busy", participant_id=f"p{i}")
            await asyncio.sleep(0)
            audit.record(s, "participant.left", session_id="busy", participant_id=f"p{i}")
            await s.commit()

    await asyncio.gather(*(write(i) for i in range(12)))
    async with db.session() as s:
        seqs = sorted((await s.execute(select(AuditEvent.seq).where(
            AuditEvent.chain == "session:busy"))).scalars())
    assert seqs == list(range(1, 25))
    (check,) = await verify_chains(db, ["session:busy"])
    assert check.ok and check.events == 24


async def _lift_append_only(db: Database) -> None:
    async with db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execute(text("DROP TRIGGER audit_events_no_update"))
            await conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            await conn.execute(text(
                "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))


async def test_an_edited_or_deleted_row_is_named(db: Database) -> None:
    async with db.session() as s:
        for i in range(5):
            audit.record(s, "participant.joined", session_id="t", participant_id=f"p{i}")
        await s.commit()
    async with db.session() as s:
        ids = list((await s.execute(select(AuditEvent.id).where(AuditEvent.chain == "session:t")
                                    .order_by(AuditEvent.seq))).scalars())
    await _lift_append_only(db)  # what someone with database access could do
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE audit_events SET participant_id = 'px' WHERE id = :i"),
                           {"i": ids[2]})
    (check,) = await verify_chains(db, ["session:t"])
    assert check.broken is not None
    assert (check.broken.event_id, check.broken.code) == (ids[2], "chain.hash_mismatch")
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE audit_events SET participant_id = 'p2' WHERE id = :i"),
                           {"i": ids[2]})
        await conn.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": ids[4]})
    (check,) = await verify_chains(db, ["session:t"])
    assert check.broken is not None and check.broken.code == "chain.head_mismatch"


async def test_the_migration_chains_events_written_before_it(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0010")
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            for i, (kind, sid) in enumerate([("session.created", "s1"), ("user.created", None),
                                             ("participant.joined", "s1")]):
                await conn.execute(text(
                    "INSERT INTO audit_events (at, kind, dossier_id, session_id, "
                    "participant_id, actor, data) VALUES (:at, :k, NULL, :s, NULL, "
                    "'system', :d)"),
                    {"at": f"2026-11-30 10:00:0{i}.123456", "k": kind, "s": sid,
                     "d": json.dumps({"n": i, "tên": "Hội đồng"}, ensure_ascii=False)})
        await migrate(url)
        checks = {c.chain: c for c in await verify_chains(db)}
        assert set(checks) == {"session:s1", "system"}
        assert checks["session:s1"].ok and checks["session:s1"].events == 2
        assert checks["system"].ok and checks["system"].events == 1
        async with db.session() as s:  # new events continue the migrated chain
            audit.record(s, "session.ended", session_id="s1")
            await s.commit()
        (check,) = await verify_chains(db, ["session:s1"])
        assert check.ok and check.events == 3
    finally:
        await db.close()


async def test_the_api_shows_the_chain_and_checks_it(running: Running) -> None:
    from server.state import DB

    r = running
    d = await r.api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "appraisal"}, 201)
    s = await r.api("POST", f"/api/dossiers/{d['id']}/sessions",
                    {"kind": "council_meeting", "title": "Họp"}, 201)
    await r.api("POST", f"/api/sessions/{s['id']}/participants",
                {"name": "Trần Thị Bình", "role": "member"}, 201)
    events = await r.api("GET", f"/api/sessions/{s['id']}/audit")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[1]["prev_hash"] == events[0]["hash"] != GENESIS
    check = await r.api("GET", f"/api/sessions/{s['id']}/audit/verify")
    assert check == {"chain": f"session:{s['id']}", "ok": True, "events": len(events),
                     "head": events[-1]["hash"], "broken": None}
    db = r.app[DB]
    await _lift_append_only(db)
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE audit_events SET actor = 'user:someone' WHERE id = :i"),
                           {"i": events[0]["id"]})
    check = await r.api("GET", f"/api/sessions/{s['id']}/audit/verify")
    assert check["ok"] is False
    assert check["broken"]["seq"] == 1 and check["broken"]["code"] == "chain.hash_mismatch"
    assert "sự kiện số 1" in check["broken"]["message"]["vi"]
    assert "event 1 was changed" in check["broken"]["message"]["en"]

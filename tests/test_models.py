"""The schema on both databases: migrations, UTC times, the append-only audit log,
the whole object graph and foreign keys (SQLite included)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.database import Database, migrate
from server.models import (
    AuditEvent,
    Base,
    Dossier,
    MeetingSession,
    Participant,
    Recording,
    SessionStatus,
    Transcript,
    TranscriptSegment,
    User,
)
from server.search import FTS_TABLE

ICT = timezone(timedelta(hours=7))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await migrate(database_url)
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.close()


async def schema(conn: AsyncConnection) -> dict[str, set[str]]:
    def read(sync_conn: Any) -> dict[str, set[str]]:
        insp = inspect(sync_conn)
        return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}

    return await conn.run_sync(read)


async def alembic_versions(conn: AsyncConnection) -> list[str]:
    return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


async def make_dossier(db: Database, **kw: Any) -> Dossier:
    async with db.session() as s:
        d = Dossier(title="Hồ sơ tự đánh giá", institution="Trường ĐH A", phase="evaluation", **kw)
        s.add(d)
        await s.commit()
        return d


# -- migrations ---------------------------------------------------------------------------

async def test_migrate_creates_every_table(database_url: str) -> None:
    await migrate(database_url)
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            tables = await schema(conn)
            versions = await alembic_versions(conn)
    finally:
        await db.close()
    # The search index (FTS5 on SQLite) is not a model table: left out.
    tables = {t: c for t, c in tables.items() if not t.startswith(FTS_TABLE)}
    assert set(tables) == set(Base.metadata.tables) | {"alembic_version"}
    for name, table in Base.metadata.tables.items():
        assert tables[name] == {c.name for c in table.columns}, name
    assert len(versions) == 1


async def test_migrating_twice_is_a_no_op(database_url: str) -> None:
    await migrate(database_url)
    db = Database(database_url)
    try:
        d = await make_dossier(db)
        async with db.engine.connect() as conn:
            before = (await schema(conn), await alembic_versions(conn))
        await migrate(database_url)
        async with db.engine.connect() as conn:
            after = (await schema(conn), await alembic_versions(conn))
        assert after == before
        async with db.session() as s:
            assert [x.id for x in (await s.execute(select(Dossier))).scalars()] == [d.id]
    finally:
        await db.close()


# -- times --------------------------------------------------------------------------------

async def test_aware_datetimes_come_back_as_the_same_instant_in_utc(db: Database) -> None:
    given = datetime(2026, 3, 4, 15, 30, 45, 123456, tzinfo=ICT)
    d = await make_dossier(db, created_at=given)
    async with db.session() as s:  # a fresh session: the value is read from the database
        got = (await s.execute(select(Dossier.created_at).where(Dossier.id == d.id))).scalar_one()
    assert got == given
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)
    assert (got.hour, got.minute, got.second, got.microsecond) == (8, 30, 45, 123456)
    # Stored as naive UTC: what the database itself holds is 08:30, not 15:30.
    async with db.engine.connect() as conn:
        raw = (await conn.execute(
            text("SELECT created_at FROM dossiers WHERE id = :id"), {"id": d.id}
        )).scalar_one()
    assert str(raw).startswith("2026-03-04 08:30:45"), raw


async def test_times_compare_as_utc_in_queries(db: Database) -> None:
    early = await make_dossier(db, created_at=datetime(2026, 1, 1, 6, 0, tzinfo=ICT))  # 23:00Z
    late = await make_dossier(db, created_at=datetime(2026, 1, 1, 0, 30, tzinfo=UTC))
    cutoff = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    async with db.session() as s:
        after = (await s.execute(
            select(Dossier.id).where(Dossier.created_at > cutoff)
        )).scalars().all()
        ordered = (await s.execute(select(Dossier.id).order_by(Dossier.created_at))).scalars()
        assert list(ordered) == [early.id, late.id]
    assert after == [late.id]


async def test_naive_datetime_is_rejected(db: Database) -> None:
    async with db.session() as s:
        s.add(Dossier(title="t", phase="evaluation", created_at=datetime(2026, 1, 1, 12, 0)))
        with pytest.raises(StatementError, match="naive datetime"):
            await s.flush()
    async with db.session() as s:
        with pytest.raises(StatementError, match="naive datetime"):
            await s.execute(select(Dossier).where(Dossier.created_at > datetime(2026, 1, 1)))
    async with db.session() as s:
        assert (await s.execute(select(Dossier))).scalars().all() == []


# -- the audit log is append-only -----------------------------------------------------------

async def test_audit_events_refuse_update_and_delete(db: Database) -> None:
    async with db.session() as s:
        event = AuditEvent(kind="session.started", actor="user:x", session_id="s" * 32,
                           data={"note": "bằng chứng"})
        s.add(event)
        await s.commit()
        event_id = event.id

    statements = [
        ("UPDATE audit_events SET kind = 'forged' WHERE id = :id", {"id": event_id}),
        ("UPDATE audit_events SET actor = 'system'", {}),
        ("DELETE FROM audit_events WHERE id = :id", {"id": event_id}),
        ("DELETE FROM audit_events", {}),
    ]
    if db.engine.dialect.name == "postgresql":
        # Row triggers do not see TRUNCATE; migration 0002 adds a statement trigger.
        statements.append(("TRUNCATE audit_events", {}))
    for sql, params in statements:
        async with db.engine.connect() as conn:
            with pytest.raises(DBAPIError, match="append-only"):
                await conn.execute(text(sql), params)
                await conn.commit()
            await conn.rollback()

    # The ORM goes through the same SQL and is refused the same way.
    async with db.session() as s:
        row = await s.get(AuditEvent, event_id)
        assert row is not None
        row.kind = "forged"
        with pytest.raises(DBAPIError, match="append-only"):
            await s.commit()
    async with db.session() as s:
        row = await s.get(AuditEvent, event_id)
        assert row is not None
        await s.delete(row)
        with pytest.raises(DBAPIError, match="append-only"):
            await s.commit()

    async with db.session() as s:
        rows = (await s.execute(select(AuditEvent))).scalars().all()
    assert [(r.id, r.kind, r.actor, r.data) for r in rows] == [
        (event_id, "session.started", "user:x", {"note": "bằng chứng"})
    ]


async def test_audit_events_still_accept_inserts(db: Database) -> None:
    async with db.session() as s:
        s.add_all([AuditEvent(kind=f"k{i}", data={"i": i}) for i in range(3)])
        await s.commit()
    async with db.session() as s:
        rows = (await s.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars().all()
    assert [r.data for r in rows] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert all(r.actor == "" and r.at.tzinfo is not None for r in rows)


# -- the whole graph ------------------------------------------------------------------------

async def test_full_object_graph_round_trips(db: Database) -> None:
    started = datetime(2026, 5, 20, 9, 0, tzinfo=ICT)
    async with db.session() as s:
        user = User(username="thuky", display_name="Thư ký Hội đồng", role="secretary",
                    password_hash="argon2-hash")
        s.add(user)
        await s.flush()
        dossier = Dossier(title="Đánh giá ngoài CTĐT", institution="ĐH B", phase="appraisal",
                          created_by=user.id)
        s.add(dossier)
        await s.flush()
        session = MeetingSession(dossier_id=dossier.id, kind="council_meeting",
                                 title="Phiên họp 1", status=SessionStatus.ENDED,
                                 started_at=started, ended_at=started + timedelta(hours=2))
        s.add(session)
        await s.flush()
        participant = Participant(session_id=session.id, name="Nguyễn Văn Á", role="chair",
                                  email="a@example.edu.vn", consent_at=started,
                                  consent_text_sha256="c" * 64, consent_language="vi")
        s.add(participant)
        await s.flush()
        recording = Recording(session_id=session.id, participant_id=participant.id,
                              kind="audio", codec="opus", container="webm", status="stored",
                              started_at=started, ended_at=started + timedelta(minutes=90),
                              duration_s=5400.5, frames=270025, object_key="d/s/p/a.webm",
                              sha256="e" * 64, size=5 * 1024**3)
        transcript = Transcript(session_id=session.id, status="done", language="vi",
                                model="base", json_key="d/s/t.json", json_sha256="f" * 64)
        s.add_all([recording, transcript])
        await s.flush()
        s.add_all([
            TranscriptSegment(transcript_id=transcript.id, seq=1, participant_id=participant.id,
                              start_s=3.5, end_s=7.25, text="Tôi xin khai mạc phiên họp."),
            TranscriptSegment(transcript_id=transcript.id, seq=0, participant_id=participant.id,
                              start_s=0.0, end_s=3.5, text="Xin chào."),
            AuditEvent(kind="recording.stored", actor="system", dossier_id=dossier.id,
                       session_id=session.id, participant_id=participant.id,
                       data={"recording_id": recording.id, "size": 5 * 1024**3}),
        ])
        await s.commit()
        ids = (user.id, dossier.id, session.id, participant.id, recording.id, transcript.id)

    user_id, dossier_id, session_id, participant_id, recording_id, transcript_id = ids
    for value in ids:
        assert len(value) == 32 and int(value, 16) >= 0
    async with db.session() as s:
        got = (await s.execute(
            select(Dossier, User, MeetingSession)
            .join(User, User.id == Dossier.created_by)
            .join(MeetingSession, MeetingSession.dossier_id == Dossier.id)
            .where(Dossier.id == dossier_id)
        )).one()
        assert got.User.id == user_id
        assert got.User.username == "thuky" and got.User.active is True
        assert got.Dossier.title == "Đánh giá ngoài CTĐT"
        assert got.MeetingSession.id == session_id
        assert got.MeetingSession.started_at == started
        assert got.MeetingSession.mode == "online" and got.MeetingSession.language == "vi"

        rec, who = (await s.execute(
            select(Recording, Participant)
            .join(Participant, Participant.id == Recording.participant_id)
            .where(Recording.session_id == session_id)
        )).one()
        assert rec.id == recording_id and who.id == participant_id
        assert rec.size == 5 * 1024**3  # needs a 64-bit column
        assert rec.duration_s == 5400.5 and rec.frames == 270025
        assert who.name == "Nguyễn Văn Á" and who.consent_at == started

        lines = (await s.execute(
            select(TranscriptSegment.text)
            .join(Transcript, Transcript.id == TranscriptSegment.transcript_id)
            .where(Transcript.session_id == session_id).order_by(TranscriptSegment.seq)
        )).scalars().all()
        assert lines == ["Xin chào.", "Tôi xin khai mạc phiên họp."]
        t = await s.get(Transcript, transcript_id)
        assert t is not None and t.status == "done" and t.error_code is None
        assert t.created_at.tzinfo is not None

        event = (await s.execute(
            select(AuditEvent).where(AuditEvent.session_id == session_id)
        )).scalar_one()
        assert event.data == {"recording_id": recording_id, "size": 5 * 1024**3}
        assert event.participant_id == participant_id


# -- foreign keys ----------------------------------------------------------------------------

async def test_foreign_keys_are_enforced(db: Database) -> None:
    async with db.session() as s:
        s.add(Participant(session_id="0" * 32, name="Ma", role="member"))
        with pytest.raises(IntegrityError):
            await s.commit()
    async with db.session() as s:
        s.add(MeetingSession(dossier_id="0" * 32, kind="interview", title="x"))
        with pytest.raises(IntegrityError):
            await s.commit()
    async with db.session() as s:
        assert (await s.execute(select(Participant))).scalars().all() == []
        assert (await s.execute(select(MeetingSession))).scalars().all() == []


async def test_a_referenced_row_cannot_be_deleted(db: Database) -> None:
    d = await make_dossier(db)
    async with db.session() as s:
        s.add(MeetingSession(dossier_id=d.id, kind="interview", title="x"))
        await s.commit()
    async with db.engine.connect() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(text("DELETE FROM dossiers WHERE id = :id"), {"id": d.id})
            await conn.commit()


async def test_usernames_are_unique(db: Database) -> None:
    async with db.session() as s:
        s.add(User(username="u", display_name="U", role="admin", password_hash="h"))
        await s.commit()
    async with db.session() as s:
        s.add(User(username="u", display_name="U2", role="reviewer", password_hash="h"))
        with pytest.raises(IntegrityError):
            await s.commit()

"""Attendance reports: built from the record, rendered, stored when a session ends.

:func:`build_attendance` reads a session's rows and audit log and computes the report
(:mod:`server.attendance`); :func:`render` turns it into JSON, CSV or PDF (the PDF in a
thread). When a session ends, :func:`store_attendance` keeps all three, in the
interface's default language, in the object store under a new report id (write-once:
a later report never replaces an earlier one), with their SHA-256 in
``session_reports`` and an audit event ``report.stored``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from server import audit
from server.attendance import attendance_csv, attendance_report
from server.attendance_pdf import render_attendance_pdf
from server.database import Database
from server.i18n import t
from server.models import (
    AuditEvent,
    Dossier,
    MeetingSession,
    Participant,
    SessionReport,
    new_id,
    utcnow,
)
from storage import ObjectStore, session_prefix, validate_key

log = logging.getLogger(__name__)

FORMATS = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}


async def build_attendance(db: Database, session_id: str, language: str
                           ) -> dict[str, Any] | None:
    """The attendance report of ``session_id`` as of now; None: no such session."""
    async with db.session() as s:
        m = await s.get(MeetingSession, session_id)
        if m is None:
            return None
        dossier = await s.get(Dossier, m.dossier_id)
        people = (await s.execute(select(Participant).where(Participant.session_id == m.id)
                                  .order_by(Participant.created_at))).scalars().all()
        events = (await s.execute(select(AuditEvent).where(AuditEvent.session_id == m.id)
                                  .order_by(AuditEvent.id))).scalars().all()
    return attendance_report(m, dossier, people, events, now=utcnow(), language=language)


async def render(report: dict[str, Any], fmt: str) -> bytes:
    """``report`` as ``fmt`` (json, csv or pdf), in the report's language."""
    lang = report["language"]

    def text(key: str, params: Mapping[str, object] | None) -> str:
        return t(key, lang, params)

    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=1).encode()
    if fmt == "csv":
        return attendance_csv(report, text)
    return await asyncio.to_thread(render_attendance_pdf, report, text)


async def store_attendance(db: Database, store: ObjectStore, session_id: str,
                           language: str) -> list[SessionReport]:
    """Keep the ended session's attendance report (JSON, CSV, PDF); returns the rows."""
    report = await build_attendance(db, session_id, language)
    if report is None:
        return []
    async with db.session() as s:
        m = await s.get(MeetingSession, session_id)
        assert m is not None
        dossier_id = m.dossier_id
    report_id = new_id()
    prefix = session_prefix(dossier_id, session_id)
    rows = []
    for fmt, content_type in FORMATS.items():
        data = await render(report, fmt)
        key = validate_key(f"{prefix}reports/{report_id}/attendance-{language}.{fmt}")
        stored = await store.put_bytes(key, data, content_type)
        rows.append(SessionReport(session_id=session_id, kind="attendance", format=fmt,
                                  language=language, object_key=stored.key,
                                  sha256=stored.sha256, size=stored.size))
    async with db.session() as s:
        s.add_all(rows)
        audit.record(s, "report.stored", dossier_id=dossier_id, session_id=session_id,
                     data={"kind": "attendance", "report": report_id, "objects": [
                         {"format": r.format, "key": r.object_key, "sha256": r.sha256,
                          "size": r.size} for r in rows]})
        await s.commit()
    return rows


async def stored_attendance(db: Database, session_id: str, fmt: str, language: str
                            ) -> SessionReport | None:
    """The latest stored attendance report of ``session_id`` in ``fmt`` and ``language``."""
    async with db.session() as s:
        return (await s.execute(
            select(SessionReport).where(
                SessionReport.session_id == session_id, SessionReport.kind == "attendance",
                SessionReport.format == fmt, SessionReport.language == language)
            .order_by(SessionReport.created_at.desc()).limit(1))).scalar_one_or_none()

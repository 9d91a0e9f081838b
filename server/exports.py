"""Exports for the Ministry's QA software and the organisation, and the statistics page.

Four tables, each as JSON (a list of objects) or CSV (UTF-8, a header row of the column
names, one row per item), their columns declared once here and documented in
``docs/reports.md`` (a test keeps the two in step):

* ``dossiers``: one row per dossier;
* ``sessions``: one row per session, with its length and camera compliance;
* ``attendance``: one row per participant of an ended session, from the attendance
  report stored when the session ended (what the record says, not recomputed);
* ``interviews``: one row per interviewee of an interview session, with the stakeholder
  group they speak for.

Times are ISO 8601 in UTC; durations in seconds; names are the public ones (an
interviewee's pseudonym). :func:`statistics` gives the statistics page its figures.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Collection
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from server.database import Database
from server.models import (
    ArchivePackage,
    Dossier,
    DossierDocument,
    MeetingSession,
    Participant,
    Recording,
    SessionReport,
    Transcript,
    public_name,
)
from storage import ObjectStore

__all__ = ["COLUMNS", "statistics", "table", "to_csv"]

_VN = timezone(timedelta(hours=7))

COLUMNS: dict[str, tuple[str, ...]] = {
    "dossiers": ("dossier_id", "title", "institution", "phase", "created_at", "sessions",
                 "sessions_ended", "hours", "documents", "packages", "legal_hold"),
    "sessions": ("session_id", "dossier_id", "dossier_title", "institution", "kind", "title",
                 "mode", "status", "scheduled_at", "started_at", "ended_at", "length_s",
                 "participants", "recordings", "transcript_status", "camera_on_pct"),
    "attendance": ("session_id", "dossier_id", "participant_id", "name", "role",
                   "camera_required", "connected_s", "camera_on_s", "camera_on_pct",
                   "non_compliant_s", "warnings", "in_room_s"),
    "interviews": ("session_id", "dossier_id", "title", "started_at", "ended_at",
                   "participant_id", "interviewee", "stakeholder_group", "connected_s"),
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _length(m: MeetingSession) -> float | None:
    if m.started_at is None or m.ended_at is None:
        return None
    return round((m.ended_at - m.started_at).total_seconds(), 3)


async def _attendance_reports(db: Database, store: ObjectStore,
                              sessions: list[MeetingSession]) -> dict[str, dict[str, Any]]:
    """The stored JSON attendance report of each ended session (Vietnamese copy)."""
    out = {}
    async with db.session() as s:
        rows = (await s.execute(select(SessionReport).where(
            SessionReport.kind == "attendance", SessionReport.format == "json",
            SessionReport.language == "vi",
            SessionReport.session_id.in_([m.id for m in sessions]))
            .order_by(SessionReport.created_at))).scalars().all()
    for rep in rows:  # the newest last: it wins
        out[rep.session_id] = json.loads(await store.get_bytes(rep.object_key))
    return out


def _compliance(report: dict[str, Any] | None) -> float | None:
    """Camera-on time over connected time of those the rule applies to, in percent."""
    if not report:
        return None
    held = [p for p in report.get("participants", []) if p.get("camera_required")]
    connected = sum(p.get("connected_s") or 0 for p in held)
    if not connected:
        return None
    return float(round(100 * sum(p.get("camera_on_s") or 0 for p in held) / connected, 1))


async def table(db: Database, store: ObjectStore, name: str) -> list[dict[str, Any]]:
    """The rows of export ``name`` (a key of :data:`COLUMNS`)."""
    return (await tables(db, store, (name,)))[name]


async def tables(db: Database, store: ObjectStore, names: Collection[str]
                 ) -> dict[str, list[dict[str, Any]]]:
    """The rows of each export in ``names`` (keys of :data:`COLUMNS`; KeyError for
    another), from one read of the database and of the stored attendance reports."""
    unknown = set(names) - set(COLUMNS)
    if unknown:
        raise KeyError(sorted(unknown)[0])
    async with db.session() as s:
        dossiers = (await s.execute(select(Dossier).order_by(Dossier.created_at))).scalars().all()
        sessions = (await s.execute(select(MeetingSession)
                                    .order_by(MeetingSession.created_at))).scalars().all()
        people = (await s.execute(select(Participant)
                                  .order_by(Participant.created_at))).scalars().all()
        recordings = Counter((await s.execute(select(Recording.session_id).where(
            Recording.status == "stored"))).scalars())
        documents = Counter((await s.execute(select(DossierDocument.dossier_id).where(
            DossierDocument.deleted_at.is_(None)))).scalars())
        packages = Counter((await s.execute(select(ArchivePackage.dossier_id))).scalars())
        newest: dict[str, str] = {}
        for sid, status in (await s.execute(select(Transcript.session_id, Transcript.status)
                                            .order_by(Transcript.created_at))).all():
            newest[sid] = status
    by_dossier = {d.id: d for d in dossiers}
    ended = [m for m in sessions if m.ended_at is not None]
    reports = await _attendance_reports(db, store, ended) if set(names) & {
        "sessions", "attendance", "interviews"} else {}
    per_session = Counter(p.session_id for p in people)

    def build(name: str) -> list[dict[str, Any]]:
        if name == "dossiers":
            return [{
                "dossier_id": d.id, "title": d.title, "institution": d.institution,
                "phase": d.phase, "created_at": _iso(d.created_at),
                "sessions": sum(1 for m in sessions if m.dossier_id == d.id),
                "sessions_ended": sum(1 for m in ended if m.dossier_id == d.id),
                "hours": round(sum(_length(m) or 0 for m in ended if m.dossier_id == d.id)
                               / 3600, 2),
                "documents": documents.get(d.id, 0), "packages": packages.get(d.id, 0),
                "legal_hold": d.legal_hold} for d in dossiers]
        if name == "sessions":
            return [{
                "session_id": m.id, "dossier_id": m.dossier_id,
                "dossier_title": by_dossier[m.dossier_id].title,
                "institution": by_dossier[m.dossier_id].institution, "kind": m.kind,
                "title": m.title, "mode": m.mode, "status": m.status,
                "scheduled_at": _iso(m.scheduled_at), "started_at": _iso(m.started_at),
                "ended_at": _iso(m.ended_at), "length_s": _length(m),
                "participants": per_session.get(m.id, 0), "recordings": recordings.get(m.id, 0),
                "transcript_status": newest.get(m.id, "none"),
                "camera_on_pct": _compliance(reports.get(m.id))} for m in sessions]
        if name == "attendance":
            rows = []
            for m in ended:
                for p in (reports.get(m.id) or {}).get("participants", []):
                    rows.append({
                        "session_id": m.id, "dossier_id": m.dossier_id,
                        "participant_id": p.get("id"), "name": p.get("name"),
                        "role": p.get("role"), "camera_required": p.get("camera_required"),
                        "connected_s": p.get("connected_s"), "camera_on_s": p.get("camera_on_s"),
                        "camera_on_pct": p.get("camera_on_pct"),
                        "non_compliant_s": p.get("non_compliant_s"),
                        "warnings": p.get("warnings"), "in_room_s": p.get("in_room_s")})
            return rows
        if name == "interviews":
            kinds = {m.id: m for m in sessions if m.kind == "interview"}
            rows = []
            for p in people:
                held = kinds.get(p.session_id)
                if held is None or p.role != "interviewee":
                    continue
                mine: dict[str, Any] = next(
                    (x for x in (reports.get(held.id) or {}).get("participants", [])
                     if x.get("id") == p.id), {})
                rows.append({
                    "session_id": held.id, "dossier_id": held.dossier_id, "title": held.title,
                    "started_at": _iso(held.started_at), "ended_at": _iso(held.ended_at),
                    "participant_id": p.id, "interviewee": public_name(p),
                    "stakeholder_group": p.stakeholder_group or "",
                    "connected_s": mine.get("connected_s")})
            return rows
        raise KeyError(name)

    return {name: build(name) for name in names}


def to_csv(name: str, rows: list[dict[str, Any]]) -> bytes:
    """``rows`` as CSV with :data:`COLUMNS` ``[name]`` as the header (UTF-8 with BOM, so
    that spreadsheet programs read the Vietnamese letters right)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS[name])
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in COLUMNS[name]])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


async def statistics(db: Database, store: ObjectStore) -> dict[str, Any]:
    """The statistics page's figures: per month (Vietnam has one time zone; months are
    taken in UTC+7) sessions held and hours, camera compliance; interviews per
    stakeholder group; the transcription backlog."""
    both = await tables(db, store, ("sessions", "interviews"))
    sessions = both["sessions"]
    months: dict[str, dict[str, Any]] = {}
    for row in sessions:
        if not row["started_at"]:
            continue
        started = datetime.fromisoformat(row["started_at"])
        key = (started.astimezone(_VN)).strftime("%Y-%m")
        month = months.setdefault(key, {"period": key, "sessions": 0, "hours": 0.0,
                                        "compliance": []})
        month["sessions"] += 1
        month["hours"] = round(month["hours"] + (row["length_s"] or 0) / 3600, 2)
        if row["camera_on_pct"] is not None:
            month["compliance"].append(row["camera_on_pct"])
    periods = []
    for key in sorted(months):
        m = months[key]
        values = m.pop("compliance")
        m["camera_on_pct"] = round(sum(values) / len(values), 1) if values else None
        periods.append(m)
    interviews = Counter(r["stakeholder_group"] or "other"
                         for r in both["interviews"])
    async with db.session() as s:
        backlog = dict((await s.execute(select(Transcript.status, func.count()).where(
            Transcript.status.in_(("pending", "running", "failed")))
            .group_by(Transcript.status))).all())
    return {"periods": periods, "interviews_per_group": dict(sorted(interviews.items())),
            "transcription_backlog": {k: backlog.get(k, 0)
                                      for k in ("pending", "running", "failed")}}


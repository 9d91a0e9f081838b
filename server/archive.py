"""A session's archive package: every piece of its evidence in one BagIt zip.

:func:`build_session_package` gathers, from the database and the object store, the
session's recordings (each participant's tracks), the composite, the newest finished
transcript with all its exports, the stored reports (attendance), the participants with
their consent records, and the session's audit chain; checks every stored file against
the hash recorded when it was written (a mismatch stops the package: the evidence was
damaged in the store and must not be sealed as if it were whole); makes the bag with
its Merkle root (:mod:`storage.archive`), zips it, stores the zip write-once and records
it (``archive_packages``, audit ``package.created``). Heavy work runs in threads.

Layout of ``data/``::

    session.json                    dossier, session, participants (roles, consent)
    recordings/<participant>/<recording>-<kind>.webm
    composite/<composite>.webm
    transcripts/transcript.json, transcript.vtt, transcript.<srt|txt|docx|pdf>,
        speakers/<participant>/transcript.<vtt|srt>
    reports/<kind>.<lang>.<format>  (attendance)
    audit/events.jsonl, audit/chains.json
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from server import audit
from server.database import Database
from server.models import (
    ArchivePackage,
    AuditChain,
    AuditEvent,
    Composite,
    Dossier,
    MeetingSession,
    Participant,
    Recording,
    SessionReport,
    SessionStatus,
    Transcript,
    new_id,
    utcnow,
)
from storage import ObjectStore, session_prefix, sha256_file, validate_key
from storage.archive import AUDIT_CHAINS, AUDIT_EVENTS, make_package, zip_package
from storage.chain import format_time, session_chain

__all__ = ["ArchiveError", "build_session_package"]


class ArchiveError(Exception):
    """The package cannot be made; ``code`` is a catalogue key."""

    def __init__(self, code: str, message: str, **params: str) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


@dataclass(frozen=True, slots=True)
class _Item:
    key: str
    sha256: str | None
    path: str  # inside data/


def _iso(value: Any) -> str | None:
    return format_time(value) if value is not None else None


async def build_session_package(db: Database, store: ObjectStore, session_id: str, *,
                                actor: str) -> ArchivePackage:
    """Make, store and record the package of ``session_id`` (which must have ended).

    Raises:
        ArchiveError: ``archive.session_not_ended``, or ``archive.evidence_damaged`` (a
            stored file no longer matches its recorded hash; named in ``params``).
    """
    async with db.session() as s:
        m = await s.get(MeetingSession, session_id)
        assert m is not None
        if m.status not in (SessionStatus.ENDED, SessionStatus.ARCHIVED):
            raise ArchiveError("archive.session_not_ended", f"session {m.id} is {m.status}")
        dossier = await s.get(Dossier, m.dossier_id)
        assert dossier is not None
        people = list((await s.execute(select(Participant).where(
            Participant.session_id == m.id).order_by(Participant.created_at))).scalars())
        recordings = list((await s.execute(select(Recording).where(
            Recording.session_id == m.id, Recording.status == "stored")
            .order_by(Recording.started_at))).scalars())
        composites = list((await s.execute(select(Composite).where(
            Composite.session_id == m.id, Composite.status == "done"))).scalars())
        transcript = (await s.execute(select(Transcript).where(
            Transcript.session_id == m.id, Transcript.status == "done")
            .order_by(Transcript.created_at.desc()).limit(1))).scalar_one_or_none()
        reports = list((await s.execute(select(SessionReport).where(
            SessionReport.session_id == m.id))).scalars())
        chain = session_chain(m.id)
        events = list((await s.execute(select(AuditEvent).where(AuditEvent.chain == chain)
                                       .order_by(AuditEvent.seq))).scalars())
        head = await s.get(AuditChain, chain)

    items: list[_Item] = []
    for r in recordings:
        assert r.object_key is not None
        items.append(_Item(r.object_key, r.sha256,
                           f"recordings/{r.participant_id}/{r.id}-{r.kind}.webm"))
    for c in composites:
        assert c.object_key is not None
        items.append(_Item(c.object_key, c.sha256, f"composite/{c.id}.webm"))
    if transcript is not None:
        if transcript.json_key:
            items.append(_Item(transcript.json_key, transcript.json_sha256,
                               "transcripts/transcript.json"))
        if transcript.vtt_key:
            items.append(_Item(transcript.vtt_key, transcript.vtt_sha256,
                               "transcripts/transcript.vtt"))
        for name, obj in sorted((transcript.exports or {}).items()):
            if name.startswith("speaker-"):
                pid, _, fmt = name[len("speaker-"):].partition(".")
                rel = f"transcripts/speakers/{pid}/transcript.{fmt}"
            else:
                rel = f"transcripts/transcript.{name}"
            items.append(_Item(obj["key"], obj.get("sha256"), rel))
    for rep in reports:
        items.append(_Item(rep.object_key, rep.sha256,
                           f"reports/{rep.kind}.{rep.language}.{rep.format}"))

    metadata = {
        "format": "hoidong-package/1",
        "dossier": {"id": dossier.id, "title": dossier.title,
                    "institution": dossier.institution, "phase": dossier.phase},
        "session": {"id": m.id, "kind": m.kind, "title": m.title, "mode": m.mode,
                    "language": m.language, "status": m.status, "policy": m.policy,
                    "scheduled_at": _iso(m.scheduled_at), "started_at": _iso(m.started_at),
                    "ended_at": _iso(m.ended_at)},
        # The name shown in the archive is the public one (an interviewee's pseudonym);
        # real names of pseudonymous interviewees stay with the staff, not the package.
        "participants": [{"id": p.id, "name": p.pseudonym or p.name, "role": p.role,
                          "pseudonymous": bool(p.pseudonym),
                          "consent_at": _iso(p.consent_at),
                          "consent_language": p.consent_language,
                          "admitted_at": _iso(p.admitted_at),
                          "removed_at": _iso(p.removed_at)} for p in people],
        "packaged_at": format_time(utcnow()),
        "packaged_by": actor,
    }
    event_lines = [json.dumps({**audit.hashed_fields(e), "hash": e.hash, "id": e.id},
                              ensure_ascii=False) for e in events]
    chains = {chain: {"seq": head.seq, "head": head.head}} if head is not None else {}
    info = {"Source-Organization": dossier.institution or "-",
            "External-Identifier": m.id, "Bag-Group-Identifier": dossier.id,
            "External-Description": f"{dossier.title} — {m.title}",
            "Hoidong-Session-Kind": m.kind, "Hoidong-Dossier-Phase": dossier.phase}

    with tempfile.TemporaryDirectory(prefix="hoidong-package-") as tmp:
        folder = Path(tmp) / f"hoidong-session-{m.id}"
        for item in items:
            target = folder / item.path
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
            await store.download(item.key, target)
            digest, _ = await asyncio.to_thread(sha256_file, target)
            if item.sha256 and digest != item.sha256:
                raise ArchiveError("archive.evidence_damaged",
                                   f"{item.key}: stored {digest}, recorded {item.sha256}",
                                   key=item.key)

        def write_texts() -> None:
            (folder / "session.json").write_text(
                json.dumps(metadata, ensure_ascii=False, indent=1), encoding="utf-8")
            events_file = folder / AUDIT_EVENTS.removeprefix("data/")
            events_file.parent.mkdir(parents=True, exist_ok=True)
            events_file.write_text("".join(line + "\n" for line in event_lines),
                                   encoding="utf-8")
            (folder / AUDIT_CHAINS.removeprefix("data/")).write_text(
                json.dumps(chains, ensure_ascii=False, indent=1), encoding="utf-8")

        await asyncio.to_thread(write_texts)
        root = await asyncio.to_thread(make_package, folder, info)
        files = len(items) + 3
        zipped = Path(tmp) / f"{folder.name}.zip"
        await asyncio.to_thread(zip_package, folder, zipped)
        package = ArchivePackage(id=new_id(), dossier_id=m.dossier_id, session_id=m.id,
                                 object_key="", sha256="", size=0, merkle_root=root,
                                 files=files, created_by=actor)
        key = validate_key(f"{session_prefix(m.dossier_id, m.id)}packages/{package.id}.zip")
        obj = await store.put_file(key, zipped, "application/zip")
    package.object_key, package.sha256, package.size = key, obj.sha256, obj.size
    async with db.session() as s:
        s.add(package)
        audit.record(s, "package.created", actor=actor, dossier_id=m.dossier_id,
                     session_id=m.id, data={"package": package.id, "key": key,
                                            "sha256": obj.sha256, "size": obj.size,
                                            "merkle_root": root, "files": files})
        await s.commit()
    return package

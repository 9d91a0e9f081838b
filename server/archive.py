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

:func:`build_dossier_package` makes the dossier's: ``dossier.json`` (dossier, documents,
sessions included and not yet ended), ``documents/<code>/<document>-document.<ext>``,
each ended session as above under ``sessions/<id>/``, and the dossier's audit chain with
every included session's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import Awaitable, Callable
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
    DossierDocument,
    MeetingSession,
    MinutesFinal,
    MinutesResponse,
    MinutesSignature,
    MinutesVersion,
    Participant,
    Recording,
    SessionReport,
    SessionStatus,
    new_id,
    newest_transcript,
    utcnow,
)
from storage import ObjectStore, session_prefix, sha256_file, validate_key
from storage.archive import (
    AUDIT_CHAINS,
    AUDIT_EVENTS,
    add_tag_file,
    make_package,
    zip_package,
)
from storage.chain import dossier_chain, format_time, session_chain
from storage.timestamp import TOKEN_FILE, TimestampCheck, TimestampError, check_token

__all__ = ["ArchiveError", "Stamper", "build_dossier_package", "build_session_package"]

log = logging.getLogger(__name__)
# Given a package's Merkle root, an RFC 3161 token for it (server.tsa.stamp, bound to a TSA).
Stamper = Callable[[str], Awaitable[bytes]]


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


@dataclass
class _Parts:
    """What one session contributes to a package: the stored files to fetch, its
    metadata (``session.json``), its audit chain's events and head."""

    session: MeetingSession
    items: list[_Item]
    metadata: dict[str, Any]
    chain: str
    events: list[AuditEvent]
    head: AuditChain | None


def _ended(m: MeetingSession) -> bool:
    return m.status in (SessionStatus.ENDED, SessionStatus.ARCHIVED)


async def _session_parts(db: Database, m: MeetingSession, dossier: Dossier, prefix: str,
                         actor: str) -> _Parts:
    """Gather ``m``'s evidence, each file placed under ``prefix`` inside ``data/``."""
    async with db.session() as s:
        people = list((await s.execute(select(Participant).where(
            Participant.session_id == m.id).order_by(Participant.created_at))).scalars())
        recordings = list((await s.execute(select(Recording).where(
            Recording.session_id == m.id, Recording.status == "stored")
            .order_by(Recording.started_at))).scalars())
        composites = list((await s.execute(select(Composite).where(
            Composite.session_id == m.id, Composite.status == "done"))).scalars())
        transcript = await newest_transcript(s, m.id)
        reports = list((await s.execute(select(SessionReport).where(
            SessionReport.session_id == m.id))).scalars())
        chain = session_chain(m.id)
        events, head = await _chain_events(s, chain)
        final = await s.get(MinutesFinal, m.id)
        versions = list((await s.execute(select(MinutesVersion).where(
            MinutesVersion.session_id == m.id).order_by(MinutesVersion.number))).scalars())
        responses = list((await s.execute(select(MinutesResponse).where(
            MinutesResponse.session_id == m.id).order_by(MinutesResponse.created_at))).scalars())
        signatures = list((await s.execute(select(MinutesSignature).where(
            MinutesSignature.session_id == m.id))).scalars())

    items: list[_Item] = []
    if final is not None:
        items.append(_Item(final.pdf_key, final.pdf_sha256, f"{prefix}minutes/minutes.pdf"))
        items.append(_Item(final.docx_key, final.docx_sha256, f"{prefix}minutes/minutes.docx"))
        for sig in signatures:
            items.append(_Item(sig.object_key, sig.sha256,
                               f"{prefix}minutes/signatures/{sig.participant_id}-{sig.id}.p7s"))
    for r in recordings:
        assert r.object_key is not None
        items.append(_Item(r.object_key, r.sha256,
                           f"{prefix}recordings/{r.participant_id}/{r.id}-{r.kind}.webm"))
    for c in composites:
        assert c.object_key is not None
        items.append(_Item(c.object_key, c.sha256, f"{prefix}composite/{c.id}.webm"))
    if transcript is not None:
        if transcript.json_key:
            items.append(_Item(transcript.json_key, transcript.json_sha256,
                               f"{prefix}transcripts/transcript.json"))
        if transcript.vtt_key:
            items.append(_Item(transcript.vtt_key, transcript.vtt_sha256,
                               f"{prefix}transcripts/transcript.vtt"))
        for name, obj in sorted((transcript.exports or {}).items()):
            if name.startswith("speaker-"):
                pid, _, fmt = name[len("speaker-"):].partition(".")
                rel = f"{prefix}transcripts/speakers/{pid}/transcript.{fmt}"
            else:
                rel = f"{prefix}transcripts/transcript.{name}"
            items.append(_Item(obj["key"], obj.get("sha256"), rel))
    for rep in reports:
        items.append(_Item(rep.object_key, rep.sha256,
                           f"{prefix}reports/{rep.kind}.{rep.language}.{rep.format}"))

    metadata = {
        "format": "hoidong-package/1",
        "dossier": _dossier_meta(dossier),
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
        # Every version of the minutes (the text each party saw) and every response.
        "minutes": {
            "locked": final is not None,
            "final_version": final.version_number if final else None,
            "versions": [{"number": v.number, "sha256": v.sha256, "content": v.content,
                          "created_by": v.created_by, "created_at": _iso(v.created_at)}
                         for v in versions],
            "responses": [{"version": r.version_number, "sha256": r.version_sha256,
                           "participant_id": r.participant_id, "decision": r.decision,
                           "comment": r.comment, "at": _iso(r.created_at)}
                          for r in responses],
        },
        "packaged_at": format_time(utcnow()),
        "packaged_by": actor,
    }
    return _Parts(m, items, metadata, chain, events, head)


def _dossier_meta(d: Dossier) -> dict[str, Any]:
    return {"id": d.id, "title": d.title, "institution": d.institution, "phase": d.phase}


async def _chain_events(s: Any, chain: str) -> tuple[list[AuditEvent], AuditChain | None]:
    events = list((await s.execute(select(AuditEvent).where(AuditEvent.chain == chain)
                                   .order_by(AuditEvent.seq))).scalars())
    return events, await s.get(AuditChain, chain)


async def build_session_package(db: Database, store: ObjectStore, session_id: str, *,
                                actor: str, stamper: Stamper | None = None) -> ArchivePackage:
    """Make, store and record the package of ``session_id`` (which must have ended).

    Raises:
        ArchiveError: ``archive.session_not_ended``, or ``archive.evidence_damaged`` (a
            stored file no longer matches its recorded hash; named in ``params``).
    """
    async with db.session() as s:
        m = await s.get(MeetingSession, session_id)
        assert m is not None
        if not _ended(m):
            raise ArchiveError("archive.session_not_ended", f"session {m.id} is {m.status}")
        dossier = await s.get(Dossier, m.dossier_id)
        assert dossier is not None
    parts = await _session_parts(db, m, dossier, "", actor)
    info = {"Source-Organization": dossier.institution or "-",
            "External-Identifier": m.id, "Bag-Group-Identifier": dossier.id,
            "External-Description": f"{dossier.title} — {m.title}",
            "Hoidong-Session-Kind": m.kind, "Hoidong-Dossier-Phase": dossier.phase}
    return await _seal(db, store, f"hoidong-session-{m.id}", parts.items,
                       {"session.json": parts.metadata},
                       [(parts.chain, parts.events, parts.head)], info, dossier_id=dossier.id,
                       session_id=m.id, prefix=session_prefix(dossier.id, m.id), actor=actor,
                       stamper=stamper)


async def build_dossier_package(db: Database, store: ObjectStore, dossier_id: str, *,
                                actor: str, stamper: Stamper | None = None) -> ArchivePackage:
    """Make, store and record the package of a whole dossier: its documents (minh
    chứng), every ended session's evidence under ``sessions/<id>/``, the dossier's own
    audit chain and every included session's. Sessions not ended yet are listed in
    ``dossier.json`` as left out. Raises :class:`ArchiveError` like the session
    package (``archive.evidence_damaged``)."""
    async with db.session() as s:
        dossier = await s.get(Dossier, dossier_id)
        assert dossier is not None
        sessions = list((await s.execute(select(MeetingSession).where(
            MeetingSession.dossier_id == dossier.id)
            .order_by(MeetingSession.created_at))).scalars())
        documents = list((await s.execute(select(DossierDocument).where(
            DossierDocument.dossier_id == dossier.id, DossierDocument.deleted_at.is_(None))
            .order_by(DossierDocument.code, DossierDocument.created_at))).scalars())
        own_chain = dossier_chain(dossier.id)
        own_events, own_head = await _chain_events(s, own_chain)
    items = [_Item(d.object_key, d.sha256, f"documents/{d.code}/{d.id}-{_stored_name(d)}")
             for d in documents]
    texts: dict[str, Any] = {}
    chains = [(own_chain, own_events, own_head)]
    included, left_out = [], []
    for m in sessions:
        if not _ended(m):
            left_out.append({"id": m.id, "title": m.title, "status": m.status})
            continue
        parts = await _session_parts(db, m, dossier, f"sessions/{m.id}/", actor)
        items += parts.items
        texts[f"sessions/{m.id}/session.json"] = parts.metadata
        chains.append((parts.chain, parts.events, parts.head))
        included.append({"id": m.id, "kind": m.kind, "title": m.title,
                         "started_at": _iso(m.started_at), "ended_at": _iso(m.ended_at)})
    texts["dossier.json"] = {
        "format": "hoidong-dossier-package/1",
        "dossier": _dossier_meta(dossier),
        "documents": [{"id": d.id, "code": d.code, "title": d.title,
                       "description": d.description, "filename": d.filename,
                       "type": d.file_type, "sha256": d.sha256, "size": d.size,
                       "uploaded_by": d.uploaded_by, "uploaded_at": _iso(d.created_at),
                       "path": f"data/documents/{d.code}/{d.id}-{_stored_name(d)}"}
                      for d in documents],
        "sessions": included,
        "sessions_not_ended": left_out,
        "packaged_at": format_time(utcnow()),
        "packaged_by": actor,
    }
    info = {"Source-Organization": dossier.institution or "-",
            "External-Identifier": dossier.id, "Bag-Group-Identifier": dossier.id,
            "External-Description": dossier.title,
            "Hoidong-Dossier-Phase": dossier.phase,
            "Hoidong-Documents": str(len(documents)), "Hoidong-Sessions": str(len(included))}
    return await _seal(db, store, f"hoidong-dossier-{dossier.id}", items, texts, chains,
                       info, dossier_id=dossier.id, session_id=None,
                       prefix=f"dossiers/{dossier.id}/", actor=actor, stamper=stamper)


def _stored_name(d: DossierDocument) -> str:
    return d.object_key.rsplit("/", 1)[-1]


async def _seal(db: Database, store: ObjectStore, name: str, items: list[_Item],
                texts: dict[str, Any],
                chains: list[tuple[str, list[AuditEvent], AuditChain | None]],
                info: dict[str, str], *, dossier_id: str, session_id: str | None,
                prefix: str, actor: str, stamper: Stamper | None) -> ArchivePackage:
    """Fetch and check every item, write the texts and the audit chains, make the bag,
    have its root time-stamped (``stamper``, if any: a TSA that fails leaves the package
    without a stamp, and the record says why), zip it, store it under
    ``prefix``packages/ and record it."""
    event_lines = [json.dumps({**audit.hashed_fields(e), "hash": e.hash, "id": e.id},
                              ensure_ascii=False) for _, events, _ in chains for e in events]
    heads = {chain: {"seq": head.seq, "head": head.head}
             for chain, _, head in chains if head is not None}
    with tempfile.TemporaryDirectory(prefix="hoidong-package-") as tmp:
        folder = Path(tmp) / name
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
            for rel, value in texts.items():
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(value, ensure_ascii=False, indent=1),
                                encoding="utf-8")
            events_file = folder / AUDIT_EVENTS.removeprefix("data/")
            events_file.parent.mkdir(parents=True, exist_ok=True)
            events_file.write_text("".join(line + "\n" for line in event_lines),
                                   encoding="utf-8")
            (folder / AUDIT_CHAINS.removeprefix("data/")).write_text(
                json.dumps(heads, ensure_ascii=False, indent=1), encoding="utf-8")

        await asyncio.to_thread(write_texts)
        root = await asyncio.to_thread(make_package, folder, info)
        files = len(items) + len(texts) + 2
        stamped: TimestampCheck | None = None
        stamp_note: dict[str, str] = {}
        if stamper is not None:
            try:
                token = await stamper(root)
                stamped = check_token(token, root)
                await asyncio.to_thread(add_tag_file, folder, TOKEN_FILE, token)
                stamp_note = {"at": format_time(stamped.gen_time), "tsa": stamped.tsa}
            except TimestampError as exc:
                log.warning("package of %s made without a time-stamp: %s",
                            session_id or dossier_id, exc)
                stamp_note = {"failed": exc.code, "why": str(exc)[:300]}
        zipped = Path(tmp) / f"{folder.name}.zip"
        await asyncio.to_thread(zip_package, folder, zipped)
        package = ArchivePackage(id=new_id(), dossier_id=dossier_id, session_id=session_id,
                                 object_key="", sha256="", size=0, merkle_root=root,
                                 files=files, created_by=actor,
                                 timestamped_at=stamped.gen_time if stamped else None,
                                 timestamp_tsa=stamped.tsa[:500] if stamped else None)
        key = validate_key(f"{prefix}packages/{package.id}.zip")
        obj = await store.put_file(key, zipped, "application/zip")
    package.object_key, package.sha256, package.size = key, obj.sha256, obj.size
    async with db.session() as s:
        s.add(package)
        audit.record(s, "package.created", actor=actor, dossier_id=dossier_id,
                     session_id=session_id, data={"package": package.id, "key": key,
                                                  "sha256": obj.sha256, "size": obj.size,
                                                  "merkle_root": root, "files": files,
                                                  **({"timestamp": stamp_note}
                                                     if stamp_note else {})})
        await s.commit()
    return package

"""Archive packages over HTTP: make one for an ended session, list them, download one
(the download is itself evidence: an ``access.downloaded`` event in the access chain),
and check a stored one the way ``hoidong verify`` does."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, StringConstraints
from sqlalchemy import select

from server import audit
from server.api.framework import ApiRegistry, Query
from server.api.schemas import Strict
from server.api.staff import get_or_404, session_from_path
from server.archive import (
    ArchiveError,
    Stamper,
    build_dossier_package,
    build_session_package,
)
from server.errors import ApiError
from server.i18n import both
from server.models import ArchivePackage, Dossier, SessionKind, utcnow
from server.policy import require
from server.retention import delete_expired, overview, retain_until
from server.search import search_lines
from server.settings import Settings
from server.state import DB, SETTINGS, STORE
from server.tsa import stamp
from storage.archive import PackageError, verify_package

api = ApiRegistry()


class PackageOut(BaseModel):
    id: str
    dossier_id: str
    session_id: str | None
    sha256: str
    size: int
    merkle_root: str
    files: int
    created_by: str
    created_at: datetime
    retain_until: datetime | None
    timestamped_at: datetime | None
    timestamp_tsa: str | None
    download_url: str


class ProblemOut(BaseModel):
    code: str
    params: dict[str, str]
    message: dict[str, str]


class PackageCheckOut(BaseModel):
    package_id: str
    ok: bool
    merkle_root: str
    recorded_root: str
    root_matches_database: bool
    files: int
    bytes: int
    chains: int
    events: int
    timestamped_at: datetime | None
    timestamp_tsa: str | None
    problems: list[ProblemOut]


def package_out(p: ArchivePackage, settings: Settings) -> PackageOut:
    return PackageOut(id=p.id, dossier_id=p.dossier_id, session_id=p.session_id,
                      sha256=p.sha256, size=p.size, merkle_root=p.merkle_root, files=p.files,
                      created_by=p.created_by, created_at=p.created_at,
                      retain_until=retain_until(p.created_at, settings.retention_years),
                      timestamped_at=p.timestamped_at, timestamp_tsa=p.timestamp_tsa,
                      download_url=f"/api/packages/{p.id}/download")


def stamper_for(settings: Settings) -> Stamper | None:
    """The configured TSA as a :data:`server.archive.Stamper`, or None."""
    if not settings.tsa_url:
        return None
    url, timeout_s = settings.tsa_url, settings.tsa_timeout_s

    async def stamper(root: str) -> bytes:
        return await stamp(url, root, timeout_s=timeout_s)

    return stamper


@api.route("POST", "/api/sessions/{session_id}/packages", summary="Make the session's "
           "archive package (BagIt zip with a Merkle root; the session must have ended)",
           response=PackageOut, status=201)
async def create_package(request: web.Request) -> PackageOut:
    who = require(request, "archive.create")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
    try:
        package = await build_session_package(request.app[DB], request.app[STORE], m.id,
                                              actor=who.actor,
                                              stamper=stamper_for(request.app[SETTINGS]))
    except ArchiveError as exc:
        raise ApiError(409, exc.code, dict(exc.params)) from exc
    return package_out(package, request.app[SETTINGS])


@api.route("GET", "/api/sessions/{session_id}/packages", summary="The session's archive "
           "packages, newest first", response=list[PackageOut])
async def list_packages(request: web.Request) -> list[PackageOut]:
    require(request, "archive.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        rows = (await s.execute(select(ArchivePackage).where(ArchivePackage.session_id == m.id)
                                .order_by(ArchivePackage.created_at.desc()))).scalars()
        return [package_out(p, request.app[SETTINGS]) for p in rows]


@api.route("POST", "/api/dossiers/{dossier_id}/packages", summary="Make the dossier's "
           "archive package: its documents, every ended session's evidence and the audit "
           "chains (BagIt zip with a Merkle root)", response=PackageOut, status=201)
async def create_dossier_package(request: web.Request) -> PackageOut:
    who = require(request, "archive.create")
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
    try:
        package = await build_dossier_package(request.app[DB], request.app[STORE], d.id,
                                              actor=who.actor,
                                              stamper=stamper_for(request.app[SETTINGS]))
    except ArchiveError as exc:
        raise ApiError(409, exc.code, dict(exc.params)) from exc
    return package_out(package, request.app[SETTINGS])


@api.route("GET", "/api/dossiers/{dossier_id}/packages", summary="The dossier's own "
           "archive packages (not its sessions'), newest first", response=list[PackageOut])
async def list_dossier_packages(request: web.Request) -> list[PackageOut]:
    require(request, "archive.read")
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
        rows = (await s.execute(select(ArchivePackage).where(
            ArchivePackage.dossier_id == d.id, ArchivePackage.session_id.is_(None))
            .order_by(ArchivePackage.created_at.desc()))).scalars()
        return [package_out(p, request.app[SETTINGS]) for p in rows]


class RetainedOut(BaseModel):
    key: str
    retain_until: datetime | None
    legal_hold: bool
    expired: bool


class RetentionOut(BaseModel):
    dossier_id: str
    retention_years: int
    legal_hold: bool
    objects: list[RetainedOut]
    earliest: datetime | None
    latest: datetime | None


class RetentionActionIn(Strict):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10,
                                             max_length=1000)]
    confirm_dossier_id: str


class RetentionActionOut(BaseModel):
    deleted: list[str]
    kept: int
    next_expiry: datetime | None


@api.route("GET", "/api/dossiers/{dossier_id}/retention", summary="Every stored object of "
           "the dossier with its retention date and legal hold, as the store holds them",
           response=RetentionOut)
async def dossier_retention(request: web.Request) -> RetentionOut:
    require(request, "retention.read")
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
    kept = await overview(request.app[STORE], d.id)
    now = utcnow()
    dates = [k.until for k in kept if k.until is not None]
    return RetentionOut(
        dossier_id=d.id, retention_years=request.app[SETTINGS].retention_years,
        legal_hold=d.legal_hold, earliest=min(dates, default=None),
        latest=max(dates, default=None),
        objects=[RetainedOut(key=k.key, retain_until=k.until, legal_hold=k.legal_hold,
                             expired=k.expired(now)) for k in kept])


@api.route("POST", "/api/dossiers/{dossier_id}/retention/delete", summary="The retention "
           "action: delete the dossier's objects whose retention date has passed (never "
           "one still retained or on legal hold); admins only, with a reason, audited",
           body=RetentionActionIn, response=RetentionActionOut)
async def apply_retention(request: web.Request, body: RetentionActionIn) -> RetentionActionOut:
    who = require(request, "retention.delete")
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
    if body.confirm_dossier_id != d.id:
        raise ApiError(400, "retention.not_confirmed")
    if d.legal_hold:
        raise ApiError(409, "retention.legal_hold")
    done = await delete_expired(request.app[DB], request.app[STORE], d.id, actor=who.actor,
                                reason=body.reason)
    dates = [k.until for k in done.kept if k.until is not None]
    return RetentionActionOut(deleted=done.deleted, kept=len(done.kept),
                              next_expiry=min(dates, default=None))


@api.route("GET", "/api/packages/{package_id}/download", summary="The package's zip "
           "(recorded in the access chain)", response=None,
           response_content_type="application/zip")
async def download_package(request: web.Request) -> web.StreamResponse:
    who = require(request, "archive.read")
    async with request.app[DB].session() as s:
        p = await get_or_404(s, ArchivePackage, request.match_info["package_id"],
                             "package.not_found")
        audit.record(s, "access.downloaded", actor=who.actor, dossier_id=p.dossier_id,
                     session_id=p.session_id,
                     data={"package": p.id, "sha256": p.sha256, "size": p.size})
        await s.commit()
    resp = web.StreamResponse(headers={
        "Content-Type": "application/zip", "Content-Length": str(p.size),
        "Content-Disposition": f'attachment; filename="hoidong-package-{p.id}.zip"',
        "ETag": f'"{p.sha256}"'})
    await resp.prepare(request)
    async for chunk in request.app[STORE].iter_chunks(p.object_key):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


@api.route("POST", "/api/packages/{package_id}/verify", summary="Check a stored package "
           "as `hoidong verify` does, and its Merkle root against the database's",
           response=PackageCheckOut, errors=[422])
async def check_package(request: web.Request) -> PackageCheckOut:
    who = require(request, "archive.read")
    async with request.app[DB].session() as s:
        p = await get_or_404(s, ArchivePackage, request.match_info["package_id"],
                             "package.not_found")
        audit.record(s, "access.verified", actor=who.actor, dossier_id=p.dossier_id,
                     session_id=p.session_id, data={"package": p.id})
        await s.commit()
    with tempfile.TemporaryDirectory(prefix="hoidong-check-") as tmp:
        local = Path(tmp) / "package.zip"
        await request.app[STORE].download(p.object_key, local)
        try:
            report = await asyncio.to_thread(verify_package, local)
        except PackageError as exc:
            raise ApiError(422, exc.code, dict(exc.params)) from exc
    problems = [ProblemOut(code=x.code, params=x.params, message=both(x.code, x.params))
                for x in report.problems]
    return PackageCheckOut(
        package_id=p.id, ok=report.ok and report.merkle_root == p.merkle_root,
        merkle_root=report.merkle_root, recorded_root=report.recorded_root,
        root_matches_database=report.merkle_root == p.merkle_root, files=report.files,
        bytes=report.bytes, chains=report.chains, events=report.events,
        timestamped_at=report.timestamp.gen_time if report.timestamp else None,
        timestamp_tsa=report.timestamp.tsa if report.timestamp else None, problems=problems)


# -- the archivist's search and views -------------------------------------------------

class SearchHitOut(BaseModel):
    session_id: str
    session_title: str
    session_kind: str
    started_at: datetime | None
    dossier_id: str
    dossier_title: str
    institution: str
    participant_id: str
    speaker: str
    start: float
    end: float
    text: str
    player_url: str


def _query_date(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "search.bad_date", {"param": name, "value": raw[:40]}) from None
    # Without an offset (a bare date, say) the time is UTC, as every time on the wire;
    # a naive datetime would not reach the database (found by tests/test_schemathesis.py).
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@api.route("GET", "/api/search", summary="Transcript lines containing every word of `q`, "
           "diacritics-insensitive (\"kiem dinh\" finds \"kiểm định\"); filters: "
           "`dossier_id`, `institution`, `kind`, `since`/`until` (session start, ISO date), "
           "`participant` (speaker name)", response=list[SearchHitOut], query=[
               Query("q", {"type": "string", "minLength": 2, "maxLength": 200},
                     "The words to find (2 to 200 characters)", required=True),
               Query("dossier_id", {"type": "string"}, "Only this dossier's sessions"),
               Query("institution", {"type": "string"}, "Only dossiers of this institution"),
               Query("kind", {"type": "string", "enum": [k.value for k in SessionKind]},
                     "Only sessions of this kind"),
               Query("since", {"type": "string"}, "Sessions started from (ISO 8601; "
                     "UTC without an offset)"),
               Query("until", {"type": "string"}, "Sessions started before (ISO 8601; "
                     "UTC without an offset)"),
               Query("participant", {"type": "string"}, "Only lines of this speaker"),
           ], errors=[400])
async def search(request: web.Request) -> list[SearchHitOut]:
    require(request, "archive.read")
    q = request.query.get("q", "").strip()
    if not 2 <= len(q) <= 200:
        raise ApiError(400, "search.bad_query", {"min": 2, "max": 200})
    kind = request.query.get("kind") or None
    if kind is not None and kind not in {k.value for k in SessionKind}:
        raise ApiError(400, "search.bad_kind", {"value": kind[:40]})
    hits = await search_lines(
        request.app[DB], q, dossier_id=request.query.get("dossier_id") or None,
        institution=request.query.get("institution") or None, kind=kind,
        since=_query_date(request, "since"), until=_query_date(request, "until"),
        participant=request.query.get("participant") or None)
    return [SearchHitOut(**{f: getattr(h, f) for f in h.__dataclass_fields__},
                         player_url=f"/staff/sessions/{h.session_id}/player?t={h.start:.1f}")
            for h in hits]


class AccessIn(Strict):
    what: Literal["player", "session"]
    note: Annotated[str, StringConstraints(max_length=200)] = ""


class AccessOut(BaseModel):
    recorded: bool
    seq: int


@api.route("POST", "/api/sessions/{session_id}/access", summary="Record that the caller "
           "opened the session's evidence (the player, the session page) in the access "
           "chain", body=AccessIn, response=AccessOut, status=201)
async def record_access(request: web.Request, body: AccessIn) -> AccessOut:
    who = require(request, "transcript.read")
    async with request.app[DB].session() as s:
        m = await session_from_path(s, request)
        event = audit.record(s, "access.viewed", actor=who.actor, dossier_id=m.dossier_id,
                             session_id=m.id, data={"what": body.what, "note": body.note})
        await s.commit()
        return AccessOut(recorded=True, seq=event.seq)

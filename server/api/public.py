"""The public verification page's API (no login): anyone holding a package can check
it against the root hoidong recorded — by the package's id, or by its payload manifest
(``manifest-sha256.txt``, whose Merkle root is computed here and looked up). What is
shown is what a package's holder already has: the package id, its Merkle root and
hash, when it was made and time-stamped, the session's kind and date; no names."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, StringConstraints
from sqlalchemy import select

from server import audit
from server.api.framework import ApiRegistry
from server.api.schemas import Strict
from server.errors import ApiError
from server.models import ArchivePackage, MeetingSession, plausible_id
from server.state import DB
from storage.archive import manifest_root

api = ApiRegistry()


class PublicCheckIn(Strict):
    package_id: Annotated[str, StringConstraints(max_length=64)] = ""
    manifest: Annotated[str, StringConstraints(max_length=200_000)] = ""


class PublicCheckOut(BaseModel):
    found: bool
    merkle_root: str
    package_id: str | None = None
    sha256: str | None = None
    files: int | None = None
    created_at: datetime | None = None
    timestamped_at: datetime | None = None
    scope: str | None = None  # "session" or "dossier"
    session_kind: str | None = None
    session_started_at: datetime | None = None


@api.route("POST", "/api/public/verify", summary="Check a package against the recorded "
           "Merkle root, by its id or by its payload manifest (no login)",
           body=PublicCheckIn, response=PublicCheckOut, auth="none")
async def public_verify(request: web.Request, body: PublicCheckIn) -> PublicCheckOut:
    root = ""
    if body.manifest.strip():
        try:
            root = manifest_root(body.manifest)
        except ValueError:
            raise ApiError(400, "public.bad_manifest") from None
    elif not body.package_id:
        raise ApiError(400, "public.nothing_to_check")
    async with request.app[DB].session() as s:
        if root:
            p = (await s.execute(select(ArchivePackage).where(
                ArchivePackage.merkle_root == root).limit(1))).scalar_one_or_none()
        else:
            p = (await s.get(ArchivePackage, body.package_id)
                 if plausible_id(body.package_id) else None)
        if p is None:
            return PublicCheckOut(found=False, merkle_root=root)
        m = await s.get(MeetingSession, p.session_id) if p.session_id else None
        audit.record(s, "access.verified", actor="public", dossier_id=p.dossier_id,
                     session_id=p.session_id, data={"package": p.id, "public": True,
                                                    "by": "manifest" if root else "id"})
        await s.commit()
        return PublicCheckOut(
            found=True, merkle_root=p.merkle_root, package_id=p.id, sha256=p.sha256,
            files=p.files, created_at=p.created_at, timestamped_at=p.timestamped_at,
            scope="session" if p.session_id else "dossier",
            session_kind=m.kind if m else None,
            session_started_at=m.started_at if m else None)

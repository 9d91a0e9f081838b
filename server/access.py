"""Every view or download of evidence by anyone goes into the access chain.

Handlers that hand out evidence (recordings, the composite, transcript files and
exports, attendance reports, documents, packages) call :func:`log_access` once they
know what they serve and before they serve it. A media player fetches a file in many
range requests: only the one that starts a viewing (no ``Range``, or one from byte 0)
is recorded, so each opening is one event, not one per seek.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web

from server import audit
from server.auth import Identity
from server.state import DB

__all__ = ["log_access", "starts_viewing"]


def starts_viewing(request: web.Request) -> bool:
    """True unless the request continues a viewing (a range not from byte 0)."""
    wanted = request.headers.get("Range", "")
    return not wanted or wanted.replace(" ", "").startswith("bytes=0-")


async def log_access(request: web.Request, who: Identity | str,
                     kind: Literal["viewed", "downloaded"], *, dossier_id: str | None,
                     session_id: str | None, what: str, **data: Any) -> None:
    """Record ``access.viewed`` (shown inline: media, documents) or
    ``access.downloaded`` (handed out as a file) for what ``who`` (a staff identity, or
    an actor such as ``participant:<id>``) is being served."""
    if not starts_viewing(request):
        return
    actor = who if isinstance(who, str) else who.actor
    async with request.app[DB].session() as s:
        if kind == "viewed":
            audit.record(s, "access.viewed", actor=actor, dossier_id=dossier_id,
                         session_id=session_id, data={"what": what, **data})
        else:
            audit.record(s, "access.downloaded", actor=actor, dossier_id=dossier_id,
                         session_id=session_id, data={"what": what, **data})
        await s.commit()

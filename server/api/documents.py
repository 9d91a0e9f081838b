"""Dossier documents API (minh chứng): upload, list, view.

Uploads are ``multipart/form-data`` with the fields ``code``, ``title``, ``description``
(optional) and then ``file``. The file is streamed into the upload space under the spool
and cut off at ``document_max_mb`` (413); its temporary file is removed whatever the
outcome, and nothing is stored unless every check passed (:mod:`server.documents`).
Viewing a document is recorded in the access chain.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel
from sqlalchemy import select

from server.access import log_access
from server.api.framework import ApiRegistry
from server.api.staff import get_or_404
from server.api.streaming import stream_object
from server.documents import DocumentError, Upload, clean_filename, keep_document, upload_space
from server.errors import ApiError
from server.models import Dossier, DossierDocument
from server.policy import require
from server.retention import retain_until
from server.settings import Settings
from server.state import DB, SETTINGS, STORE
from storage.filetype import DOCUMENT_TYPES

api = ApiRegistry()
MAX_FIELD_BYTES = 16 * 1024
CHUNK = 256 * 1024


class DocumentOut(BaseModel):
    id: str
    dossier_id: str
    code: str
    title: str
    description: str
    filename: str
    file_type: str
    content_type: str
    sha256: str
    size: int
    uploaded_by: str
    created_at: datetime
    retain_until: datetime | None
    deleted_at: datetime | None
    content_url: str | None


def document_out(d: DossierDocument, settings: Settings) -> DocumentOut:
    """The API's view of a document; ``retain_until`` is the retention date the store
    was given when it was uploaded (none when retention is off)."""
    until = retain_until(d.created_at, settings.retention_years)
    return DocumentOut(
        id=d.id, dossier_id=d.dossier_id, code=d.code, title=d.title,
        description=d.description, filename=d.filename, file_type=d.file_type,
        content_type=d.content_type, sha256=d.sha256, size=d.size, uploaded_by=d.uploaded_by,
        created_at=d.created_at, retain_until=until, deleted_at=d.deleted_at,
        content_url=None if d.deleted_at else f"/api/documents/{d.id}/content")


@api.route("POST", "/api/dossiers/{dossier_id}/documents", summary="Upload an evidence "
           "item (minh chứng) of the dossier: multipart form with code (e.g. H1.01.01.01), "
           "title, description and file (PDF, image or office document; its content must "
           "match its extension)", response=DocumentOut, status=201, errors=[415],
           upload={"required": True, "content": {"multipart/form-data": {"schema": {
               "type": "object", "required": ["code", "title", "file"], "properties": {
                   "code": {"type": "string", "description": "Evidence code, e.g. "
                            "H1.01.01.01"},
                   "title": {"type": "string"},
                   "description": {"type": "string"},
                   "file": {"type": "string", "format": "binary"}}}}}})
async def upload_document(request: web.Request) -> DocumentOut:
    who = require(request, "document.upload")
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
    settings = request.app[SETTINGS]
    limit = int(settings.document_max_mb * 1024 * 1024)
    if request.content_length is not None and request.content_length > limit + MAX_FIELD_BYTES:
        raise ApiError(413, "document.too_large", {"limit": f"{settings.document_max_mb:g}"})
    space = await asyncio.to_thread(upload_space, settings.spool_dir)
    fd, name = tempfile.mkstemp(prefix="upload-", dir=space)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            upload = await _receive(request, out, path, limit, settings.document_max_mb)
        try:
            doc = await keep_document(request.app[DB], request.app[STORE], d.id, upload,
                                      actor=who.actor)
        except DocumentError as exc:
            raise ApiError(exc.status, exc.code, exc.params) from None
    finally:
        await asyncio.to_thread(path.unlink, True)
    return document_out(doc, settings)


async def _receive(request: web.Request, out: IO[bytes], path: Path, limit: int,
                   limit_mb: float) -> Upload:
    """Read the multipart form: the small fields, then the file into ``out``."""
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(400, "document.bad_upload")
    fields: dict[str, str] = {}
    filename, size = "", 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "document.bad_upload")
            if part.name == "file":
                if filename:
                    raise ApiError(400, "document.bad_upload")  # one file per upload
                # Browsers percent-encode '"' and line breaks in the name, aiohttp's
                # client every non-ASCII byte: decoded either way.
                filename = clean_filename(unquote(part.filename or ""))
                while chunk := await part.read_chunk(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise ApiError(413, "document.too_large", {"limit": f"{limit_mb:g}"})
                    await asyncio.to_thread(out.write, chunk)
            elif part.name in ("code", "title", "description"):
                raw = await part.read_chunk(MAX_FIELD_BYTES + 1)
                if len(raw) > MAX_FIELD_BYTES or await part.read_chunk(1):
                    raise ApiError(400, "http.invalid_field", {"field": part.name})
                try:
                    fields[part.name] = raw.decode("utf-8").strip()
                except UnicodeDecodeError:
                    raise ApiError(400, "http.invalid_field", {"field": part.name}) from None
            else:
                raise ApiError(400, "http.invalid_field", {"field": part.name or "-"})
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError):
        # aiohttp's multipart reader raises these on a malformed body (the last on a
        # part's header it cannot parse, e.g. a field name with control characters:
        # found by tests/test_schemathesis.py).
        raise ApiError(400, "document.bad_upload") from None
    if any("\x00" in v for v in fields.values()):
        raise ApiError(400, "http.bad_request")
    out.flush()
    return Upload(path=path, size=size, filename=filename, code=fields.get("code", ""),
                  title=fields.get("title", ""), description=fields.get("description", ""))


@api.route("GET", "/api/dossiers/{dossier_id}/documents", summary="The dossier's "
           "evidence items, by evidence code", response=list[DocumentOut])
async def list_documents(request: web.Request) -> list[DocumentOut]:
    require(request, "document.read")
    async with request.app[DB].session() as s:
        d = await get_or_404(s, Dossier, request.match_info["dossier_id"], "dossier.not_found")
        rows = (await s.execute(select(DossierDocument).where(
            DossierDocument.dossier_id == d.id)
            .order_by(DossierDocument.code, DossierDocument.created_at))).scalars()
        return [document_out(r, request.app[SETTINGS]) for r in rows]


@api.route("GET", "/api/documents/{document_id}/content", summary="An evidence item's "
           "bytes as uploaded (viewing is recorded in the access chain)",
           response_content_type=tuple(sorted({t.content_type
                                               for t in DOCUMENT_TYPES.values()})),
           errors=[410], ranges=True)
async def document_content(request: web.Request) -> web.StreamResponse:
    who = require(request, "document.read")
    async with request.app[DB].session() as s:
        doc = await get_or_404(s, DossierDocument, request.match_info["document_id"],
                               "document.not_found")
        if doc.deleted_at is not None:
            raise ApiError(410, "document.deleted")
    await log_access(request, who, "viewed", dossier_id=doc.dossier_id, session_id=None,
                     what="document", document=doc.id, code=doc.code, sha256=doc.sha256)
    return await stream_object(request, doc.object_key, doc.size, doc.sha256,
                               doc.content_type, {
                                   "X-Content-SHA256": doc.sha256,
                                   "X-Content-Type-Options": "nosniff",
                                   "Content-Disposition":
                                       f"inline; filename*=UTF-8''{quote(doc.filename)}"})

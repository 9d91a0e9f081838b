"""Dossier documents (minh chứng): evidence items uploaded by staff, kept write-once.

An upload arrives as a file in the upload space (:func:`upload_space`, under the spool)
with its evidence code, title and description. :func:`keep_document` checks what the
file is from its bytes (:func:`storage.filetype.check_document`: PDF, images, office
documents; a lying extension is refused), hashes it, stores it write-once under the
dossier (``dossiers/<dossier>/documents/<document>/document.<ext>``; the original name
stays in the database, keys are ASCII), records the row and the audit event
``document.uploaded`` in the dossier's chain. The caller owns the temporary file and
removes it whatever happens; nothing else is written until every check has passed.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from server import audit
from server.database import Database
from server.models import DossierDocument, new_id
from storage import ObjectStore, sha256_file, validate_key
from storage.filetype import DocumentTypeError, check_document

__all__ = ["EVIDENCE_CODE", "DocumentError", "Upload", "clean_filename", "keep_document",
           "upload_space"]

# The Ministry's evidence codes: box, standard, criterion, number — "H1.01.01.01";
# other schemes (programme accreditation) use letters and fewer levels.
EVIDENCE_CODE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,7}(?:[.\-][A-Za-z0-9]{1,6}){0,6}")
MAX_FILENAME = 200


class DocumentError(Exception):
    """``status`` (HTTP) and ``code`` (catalogue key) of a refused upload."""

    def __init__(self, status: int, code: str, params: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.params = status, code, params or {}


@dataclass(frozen=True, slots=True)
class Upload:
    """A received upload: ``path`` (in the upload space, owned by the caller), ``size``
    in bytes, and the fields as sent (already trimmed)."""

    path: Path
    size: int
    filename: str
    code: str
    title: str
    description: str


def upload_space(spool_dir: Path) -> Path:
    """Where uploads are received before they are checked (created if missing)."""
    space = spool_dir / "uploads"
    space.mkdir(parents=True, exist_ok=True)
    return space


def clean_filename(name: str) -> str:
    """The file name as kept for display: its last path part (a browser may send
    ``C:\\fakepath\\x.pdf``), NFC, no control characters, at most MAX_FILENAME."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base)
                   if unicodedata.category(ch)[0] != "C").strip()
    if len(base) > MAX_FILENAME:
        stem, dot, ext = base.rpartition(".")
        base = (stem[:MAX_FILENAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 \
            else base[:MAX_FILENAME]
    return base


def check_fields(upload: Upload) -> None:
    """Refuse a missing or malformed evidence code, title or file name (400)."""
    if not EVIDENCE_CODE.fullmatch(upload.code):
        raise DocumentError(400, "document.bad_code", {"code": upload.code[:40] or "-"})
    if not upload.title or len(upload.title) > 500:
        raise DocumentError(400, "http.invalid_field", {"field": "title"})
    if len(upload.description) > 5000:
        raise DocumentError(400, "http.invalid_field", {"field": "description"})
    if not upload.filename:
        raise DocumentError(400, "http.invalid_field", {"field": "file"})
    if upload.size == 0:
        raise DocumentError(400, "document.empty")


async def keep_document(db: Database, store: ObjectStore, dossier_id: str, upload: Upload,
                        *, actor: str) -> DossierDocument:
    """Check, store and record ``upload`` as a document of ``dossier_id``.

    Raises :class:`DocumentError` (400 for fields, 415 for the file's type) before
    anything is stored; storage errors propagate (the middleware maps them)."""
    check_fields(upload)
    try:
        kind = await asyncio.to_thread(check_document, upload.path, upload.filename)
    except DocumentTypeError as exc:
        raise DocumentError(415, exc.code, exc.params) from None
    digest, size = await asyncio.to_thread(sha256_file, upload.path)
    doc_id = new_id()
    ext = upload.filename.rsplit(".", 1)[-1].lower()
    key = validate_key(f"dossiers/{dossier_id}/documents/{doc_id}/document.{ext}")
    obj = await store.put_file(key, upload.path, kind.content_type)
    if obj.sha256 != digest:  # the file changed under us: nothing of it is kept as read
        raise DocumentError(409, "document.changed")
    doc = DossierDocument(id=doc_id, dossier_id=dossier_id, code=upload.code,
                          title=upload.title, description=upload.description,
                          filename=upload.filename, file_type=kind.name,
                          content_type=kind.content_type, object_key=key, sha256=digest,
                          size=size, uploaded_by=actor)
    async with db.session() as s:
        s.add(doc)
        audit.record(s, "document.uploaded", actor=actor, dossier_id=dossier_id,
                     data={"document": doc_id, "code": upload.code, "title": upload.title,
                           "filename": upload.filename, "type": kind.name, "key": key,
                           "sha256": digest, "size": size})
        await s.commit()
    return doc

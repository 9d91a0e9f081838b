"""What a document file really is, from its bytes: the evidence items (minh chứng) staff
upload are PDFs, images and office documents, and a file whose name says one thing and
whose content another (``report.pdf`` that is an executable) is refused.

:func:`sniff` reads the first bytes (and, for zip-based office formats, the zip's list
of names — never its contents) and returns the :class:`FileType`, or ``None`` for
anything not on the list. :func:`check_document` compares it with the file name's
extension. Both block (file I/O): run them in a thread.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCUMENT_TYPES", "DocumentTypeError", "FileType", "check_document", "sniff"]


@dataclass(frozen=True, slots=True)
class FileType:
    """``name``: a short code (``pdf``, ``docx``…); ``content_type``: the MIME type it is
    served with; ``extensions``: the file name endings that may carry it."""

    name: str
    content_type: str
    extensions: tuple[str, ...]


_TYPES = [
    FileType("pdf", "application/pdf", ("pdf",)),
    FileType("png", "image/png", ("png",)),
    FileType("jpeg", "image/jpeg", ("jpg", "jpeg")),
    FileType("gif", "image/gif", ("gif",)),
    FileType("webp", "image/webp", ("webp",)),
    FileType("tiff", "image/tiff", ("tif", "tiff")),
    FileType("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             ("docx",)),
    FileType("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             ("xlsx",)),
    FileType("pptx",
             "application/vnd.openxmlformats-officedocument.presentationml.presentation",
             ("pptx",)),
    # Word 97–2003, Excel, PowerPoint: one container format (OLE2); any of the three.
    FileType("ole2", "application/octet-stream", ("doc", "xls", "ppt")),
    FileType("odt", "application/vnd.oasis.opendocument.text", ("odt",)),
    FileType("ods", "application/vnd.oasis.opendocument.spreadsheet", ("ods",)),
    FileType("odp", "application/vnd.oasis.opendocument.presentation", ("odp",)),
]
DOCUMENT_TYPES: dict[str, FileType] = {t.name: t for t in _TYPES}
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OOXML = {"word/": "docx", "xl/": "xlsx", "ppt/": "pptx"}
_ODF = {b"application/vnd.oasis.opendocument." + k.encode(): v
        for k, v in (("text", "odt"), ("spreadsheet", "ods"), ("presentation", "odp"))}
_MAX_ZIP_NAMES = 100_000  # an office document has hundreds; more is not one


class DocumentTypeError(Exception):
    """``code``: ``document.type_unsupported`` (not a document hoidong keeps) or
    ``document.type_mismatch`` (the name's extension says another type); ``params``
    for the catalogue message."""

    def __init__(self, code: str, **params: str) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def sniff(path: Path) -> FileType | None:
    """The file's type from its content, or None."""
    with path.open("rb") as f:
        head = f.read(64)
    if head.startswith(b"%PDF-"):
        return DOCUMENT_TYPES["pdf"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DOCUMENT_TYPES["png"]
    if head.startswith(b"\xff\xd8\xff"):
        return DOCUMENT_TYPES["jpeg"]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return DOCUMENT_TYPES["gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return DOCUMENT_TYPES["webp"]
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return DOCUMENT_TYPES["tiff"]
    if head.startswith(_OLE2):
        return DOCUMENT_TYPES["ole2"]
    if head.startswith(b"PK\x03\x04"):
        return _zip_type(path, head)
    return None


def _zip_type(path: Path, head: bytes) -> FileType | None:
    # ODF stores an uncompressed "mimetype" member first: its bytes sit right after the
    # 30-byte local header and the 8-byte name.
    if head[30:38] == b"mimetype":
        name = _ODF.get(_odf_mimetype(path) or b"")
        if name is not None:
            return DOCUMENT_TYPES[name]
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > _MAX_ZIP_NAMES:
                return None
            names = [i.filename for i in infos]
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    for prefix, name in _OOXML.items():
        if any(n.startswith(prefix) for n in names):
            return DOCUMENT_TYPES[name]
    return None


def _odf_mimetype(path: Path) -> bytes | None:
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("mimetype")
            if info.file_size > 100:
                return None
            return z.read(info).strip()
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return None


def check_document(path: Path, filename: str) -> FileType:
    """The type of an uploaded document whose name is ``filename``; raises
    :class:`DocumentTypeError` if it is not a kept type or the extension lies."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    found = sniff(path)
    if found is None:
        raise DocumentTypeError("document.type_unsupported", extension=ext or "-")
    if ext not in found.extensions:
        raise DocumentTypeError("document.type_mismatch", extension=ext or "-",
                                found=found.extensions[0])
    return found

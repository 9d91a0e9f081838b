"""Archive packages: BagIt bags (RFC 8493) with a Merkle root, and their offline check.

A package is a bag whose payload (``data/``) holds a session's or a dossier's evidence,
with a SHA-256 payload manifest, a tag manifest, and in ``bag-info.txt`` the dossier's
metadata and ``Hoidong-Merkle-Root``: the RFC 6962 tree hash
(:func:`storage.merkle.merkle_root`) over the payload manifest's lines
``"<sha256>  <path>\\n"`` sorted by path. The audit events go in
``data/audit/events.jsonl`` (one JSON object per line, in chain order) with the chains'
heads in ``data/audit/chains.json``; :func:`verify_package` checks them with
:func:`storage.chain.verify_chain`.

:func:`verify_package` needs nothing but the package (a bag directory or a zip of one):
every file against the manifests, no file missing or added, the Merkle root, the audit
chains. A zip is read in place, never unpacked to disk, and refused if it holds absolute
or ``..`` names or links, or expands beyond its limits (zip bombs).
"""

from __future__ import annotations

import hashlib
import json
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from storage.chain import verify_chain
from storage.signature import MAX_SIGNATURE, SignatureError, check_detached
from storage.timestamp import TOKEN_FILE, TimestampCheck, TimestampError, check_token

if TYPE_CHECKING:
    from cryptography import x509
from storage.merkle import merkle_root

__all__ = ["AUDIT_CHAINS", "AUDIT_EVENTS", "MERKLE_FIELD", "PackageError", "PackageReport",
           "Problem", "add_tag_file", "make_package", "manifest_leaves", "manifest_root",
           "verify_package", "zip_package"]

MERKLE_FIELD = "Hoidong-Merkle-Root"
AUDIT_EVENTS = "data/audit/events.jsonl"
AUDIT_CHAINS = "data/audit/chains.json"
MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
MAX_UNPACKED_BYTES = 64 << 30  # what a zip may expand to
MAX_RATIO = 200  # compressed to uncompressed, per member (media barely compresses)
MAX_MEMBERS = 200_000
MAX_TAG_BYTES = 256 << 20  # a manifest or bag-info read into memory


class PackageError(Exception):
    """The package cannot be checked at all (not a bag, unsafe zip). ``code`` is a
    catalogue key; ``params`` fill its message."""

    def __init__(self, code: str, message: str, **params: str) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a package: ``code`` (catalogue key) and what it names
    (``path`` of a file, or ``chain``/``seq`` of an audit event)."""

    code: str
    params: dict[str, str]


@dataclass(slots=True)
class PackageReport:
    merkle_root: str = ""
    recorded_root: str = ""
    files: int = 0
    bytes: int = 0
    chains: int = 0
    events: int = 0
    info: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    timestamp: TimestampCheck | None = None  # an RFC 3161 stamp of the root, checked
    signatures: list[tuple[str, str]] = field(default_factory=list)  # (path, signer) checked

    @property
    def ok(self) -> bool:
        return not self.problems


def manifest_root(manifest: str) -> str:
    """The Merkle root of a payload manifest's text (``manifest-sha256.txt``); raises
    ``ValueError`` for text that is not a manifest."""
    for line in manifest.splitlines():
        if line.strip():
            digest, _, path = line.strip().partition(" ")
            if len(digest) != 64 or not path.strip() or any(
                    c not in "0123456789abcdefABCDEF" for c in digest):
                raise ValueError("not a sha256 manifest line")
    leaves = _leaves(manifest)
    if not leaves:
        raise ValueError("an empty manifest")
    return merkle_root(leaves)


def manifest_leaves(bag_dir: Path) -> list[bytes]:
    """The Merkle tree's leaves: the payload manifest's lines, normalised to
    ``"<sha256>  <path>\\n"`` and sorted by path."""
    return _leaves((bag_dir / MANIFEST).read_text(encoding="utf-8"))


def _leaves(manifest: str) -> list[bytes]:
    entries = []
    for line in manifest.splitlines():
        if not line.strip():
            continue
        fields = line.split(None, 1)
        if len(fields) != 2:
            continue  # reported by the manifest check (package.manifest_malformed)
        digest, path = fields
        entries.append((path.strip(), digest.lower()))
    return [f"{d}  {p}\n".encode() for p, d in sorted(entries)]


def _tag_value(value: str) -> str:
    """``value`` as one line of ``bag-info.txt``: a title may hold line breaks (any that
    ``str.splitlines`` knows: a reader could take each for a new, malformed tag), which
    become spaces. Found by tests/test_schemathesis.py: a dossier titled "a\\nb" could
    not be packaged."""
    return " ".join(part.strip() for part in value.splitlines() if part.strip())


def make_package(folder: Path, info: Mapping[str, str]) -> str:
    """Turn ``folder`` (its files become the payload) into a bag in place, with ``info``
    in ``bag-info.txt`` and the Merkle root; returns the root. Blocking."""
    import bagit

    bag = bagit.make_bag(str(folder), {k: _tag_value(v) for k, v in info.items()},
                         checksums=["sha256"])
    root = merkle_root(manifest_leaves(folder))
    bag.info[MERKLE_FIELD] = root
    bag.save()  # rewrites bag-info.txt and the tag manifest over it
    return root


def add_tag_file(folder: Path, name: str, data: bytes) -> None:
    """Put the tag file ``name`` (outside the payload, e.g. the root's time-stamp token)
    into the bag ``folder`` and cover it by the tag manifest. Blocking."""
    import bagit

    (folder / name).write_bytes(data)
    bagit.Bag(str(folder)).save()  # the tag manifest is rewritten over every tag file


def zip_package(folder: Path, out: Path) -> None:
    """Zip the bag ``folder`` into ``out`` (stored, not deflated: media does not
    compress), entries under the folder's name. Blocking."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")


def verify_package(path: Path, anchors: list[x509.Certificate] | None = None
                   ) -> PackageReport:
    """Check the package at ``path`` (bag directory or zip). Problems are listed in the
    report, first found first; raises :class:`PackageError` only when there is nothing
    that can be checked. A zip is read in place — never unpacked to disk — after its
    names and sizes pass the safety checks. A time-stamp of the root, if the bag has
    one, is checked too (against ``anchors``, trusted TSA certificates, when given).
    Blocking (hashes every file)."""
    if path.is_dir():
        return _verify(_DirSource(path), anchors)
    if not path.is_file():
        raise PackageError("package.no_such_file", f"{path} does not exist", path=str(path))
    if not zipfile.is_zipfile(path):
        raise PackageError("package.not_a_bag", f"{path} is neither a bag nor a zip")
    with zipfile.ZipFile(path) as z:
        return _verify(_ZipSource(z), anchors)


class _DirSource:
    """A bag directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def files(self) -> dict[str, int]:
        return {p.relative_to(self.root).as_posix(): p.stat().st_size
                for p in self.root.rglob("*") if p.is_file()}

    def open(self, rel: str) -> IO[bytes]:
        return (self.root / rel).open("rb")


class _ZipSource:
    """A zip holding one bag, at its root or in one top-level folder."""

    def __init__(self, z: zipfile.ZipFile) -> None:
        self.z = z
        members = z.infolist()
        if len(members) > MAX_MEMBERS:
            raise PackageError("package.too_large", f"{len(members)} entries",
                               limit=str(MAX_MEMBERS))
        total = 0
        for m in members:
            _check_member(m)
            total += m.file_size
            if total > MAX_UNPACKED_BYTES:
                raise PackageError("package.too_large", "the zip expands too far",
                                   limit=str(MAX_UNPACKED_BYTES))
        names = [m.filename for m in members if not m.is_dir()]
        tops = {n.split("/", 1)[0] for n in names if "/" in n}
        self.prefix = ""
        if "bagit.txt" not in names and len(tops) == 1:
            self.prefix = tops.pop() + "/"
        self.members = {m.filename[len(self.prefix):]: m for m in members
                        if not m.is_dir() and m.filename.startswith(self.prefix)}

    def files(self) -> dict[str, int]:
        return {rel: m.file_size for rel, m in self.members.items()}

    def open(self, rel: str) -> IO[bytes]:
        return self.z.open(self.members[rel])


def _check_member(m: zipfile.ZipInfo) -> None:
    name = PurePosixPath(m.filename)
    if (m.filename.startswith(("/", "\\")) or ".." in name.parts or "\\" in m.filename
            or (len(name.parts) and ":" in name.parts[0])):
        raise PackageError("package.unsafe_path", f"unsafe name {m.filename!r}",
                           name=m.filename)
    if stat.S_ISLNK(m.external_attr >> 16):
        raise PackageError("package.unsafe_path", f"link {m.filename!r}", name=m.filename)
    if (m.compress_size and m.file_size > (1 << 20)
            and m.file_size / m.compress_size > MAX_RATIO):
        raise PackageError("package.too_large", f"{m.filename!r} expands too far",
                           limit=f"{MAX_RATIO}:1")


def _text(src: _DirSource | _ZipSource, rel: str) -> str:
    with src.open(rel) as f:
        data: bytes = f.read(MAX_TAG_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # BagIt tag files are UTF-8 (found by tests/test_fuzz.py)
        raise PackageError("package.not_utf8", f"{rel} is not UTF-8", path=rel) from None


def _bag_info(text: str) -> dict[str, str]:
    """``bag-info.txt``: ``Label: value`` lines, continued on lines that start with
    whitespace (RFC 8493 §2.2.2)."""
    info: dict[str, str] = {}
    label = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and label:
            info[label] += " " + line.strip()
        elif ":" in line:
            label, _, value = line.partition(":")
            label = label.strip()
            info[label] = value.strip()
    return info


def _verify(src: _DirSource | _ZipSource, anchors: list[x509.Certificate] | None
            ) -> PackageReport:
    files = src.files()
    if "bagit.txt" not in files:
        raise PackageError("package.not_a_bag", "no bagit.txt")
    if MANIFEST not in files:
        raise PackageError("package.no_manifest", f"no {MANIFEST}")
    report = PackageReport()
    if "bag-info.txt" in files:
        report.info = _bag_info(_text(src, "bag-info.txt"))
    payload = sorted(rel for rel in files if rel.startswith("data/"))
    report.files = len(payload)
    report.bytes = sum(files[rel] for rel in payload)
    manifest = _text(src, MANIFEST)
    listed = _check_manifest(src, files, manifest, report)
    for rel in payload:
        if rel not in listed:
            report.problems.append(Problem("package.file_unexpected", {"path": rel}))
    # The tag files (bag-info.txt with the Merkle root, the payload manifest) are
    # covered by the tag manifest.
    if TAG_MANIFEST in files:
        _check_manifest(src, files, _text(src, TAG_MANIFEST), report)
    else:
        report.problems.append(Problem("package.file_missing", {"path": TAG_MANIFEST}))
    report.recorded_root = report.info.get(MERKLE_FIELD, "")
    report.merkle_root = merkle_root(_leaves(manifest))
    if report.recorded_root != report.merkle_root:
        report.problems.append(Problem("package.merkle_mismatch", {
            "recorded": report.recorded_root or "-", "computed": report.merkle_root}))
    _check_audit(src, files, report)
    if TOKEN_FILE in files:
        _check_timestamp(src, files, report, anchors)
    _check_signatures(src, files, report)
    return report


def _check_signatures(src: _DirSource | _ZipSource, files: dict[str, int],
                      report: PackageReport) -> None:
    """Each ``…/minutes/signatures/*.p7s`` must be a valid signature of the
    ``…/minutes/minutes.pdf`` beside it (the locked minutes)."""
    for rel in sorted(files):
        parts = rel.split("/")
        if not (rel.startswith("data/") and rel.endswith(".p7s") and len(parts) >= 4
                and parts[-3:-1] == ["minutes", "signatures"]):
            continue
        pdf = "/".join(parts[:-2]) + "/minutes.pdf"
        if pdf not in files or files[rel] > MAX_SIGNATURE or files[pdf] > MAX_TAG_BYTES:
            report.problems.append(Problem("signature.invalid", {"path": rel}))
            continue
        with src.open(rel) as f:
            signature = f.read()
        with src.open(pdf) as f:
            content = f.read()
        try:
            report.signatures.append((rel, check_detached(signature, content).subject))
        except SignatureError as exc:
            report.problems.append(Problem(exc.code, {"path": rel}))


def _check_timestamp(src: _DirSource | _ZipSource, files: dict[str, int],
                     report: PackageReport, anchors: list[x509.Certificate] | None) -> None:
    if files[TOKEN_FILE] > 1 << 20:
        report.problems.append(Problem("timestamp.bad_token", {"path": TOKEN_FILE}))
        return
    with src.open(TOKEN_FILE) as f:
        token = f.read()
    try:
        report.timestamp = check_token(token, report.recorded_root, anchors)
    except TimestampError as exc:
        report.problems.append(Problem(exc.code, {"path": TOKEN_FILE}))


def _check_manifest(src: _DirSource | _ZipSource, files: dict[str, int], manifest: str,
                    report: PackageReport) -> set[str]:
    """Hash every file ``manifest`` lists against it; returns the listed paths."""
    listed: set[str] = set()
    for line in manifest.splitlines():
        if not line.strip():
            continue
        fields = line.split(None, 1)
        if len(fields) != 2:  # found by tests/test_fuzz.py: it used to raise
            report.problems.append(Problem("package.manifest_malformed",
                                           {"line": line.strip()[:80]}))
            continue
        digest, rel = fields
        rel = rel.strip()
        listed.add(rel)
        if ".." in PurePosixPath(rel).parts or rel.startswith("/"):
            report.problems.append(Problem("package.unsafe_path", {"name": rel}))
        elif rel not in files:
            report.problems.append(Problem("package.file_missing", {"path": rel}))
        else:
            try:
                with src.open(rel) as f:
                    found = _sha256(f)
            except (zipfile.BadZipFile, OSError) as exc:  # a CRC or size the zip lies about
                report.problems.append(Problem("package.invalid", {"detail": str(exc)}))
                continue
            if found != digest.lower():
                report.problems.append(Problem("package.hash_mismatch", {"path": rel}))
    return listed


def _sha256(f: IO[bytes]) -> str:
    digest = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while n := f.readinto(view):  # type: ignore[attr-defined]
        digest.update(view[:n])
    return digest.hexdigest()


def _check_audit(src: _DirSource | _ZipSource, files: dict[str, int],
                 report: PackageReport) -> None:
    if AUDIT_EVENTS not in files or AUDIT_CHAINS not in files:
        report.problems.append(Problem("package.audit_missing", {"path": AUDIT_EVENTS}))
        return
    try:
        heads: dict[str, Any] = json.loads(_text(src, AUDIT_CHAINS))
        by_chain: dict[str, list[dict[str, Any]]] = {}
        with src.open(AUDIT_EVENTS) as f:
            for raw in f:
                if raw.strip():
                    ev = json.loads(raw)
                    by_chain.setdefault(str(ev["chain"]), []).append(ev)
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(Problem("package.audit_unreadable", {"detail": str(exc)}))
        return
    for chain in sorted(set(heads) | set(by_chain)):
        head = heads.get(chain) or {}
        events = by_chain.get(chain, [])
        report.chains += 1
        report.events += len(events)
        try:
            check = verify_chain(chain, events, head=head.get("head"),
                                 head_seq=head.get("seq"))
        except (KeyError, TypeError) as exc:
            report.problems.append(Problem("package.audit_unreadable", {"detail": str(exc)}))
            continue
        if check.broken is not None:
            b = check.broken
            report.problems.append(Problem(b.code, {"chain": chain, "seq": str(b.seq)}))

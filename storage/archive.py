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
chains. A zip is unpacked into a temporary directory first, refusing absolute or ``..``
names, links, and archives that expand beyond their limits (zip bombs).
"""

from __future__ import annotations

import hashlib
import json
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from storage.chain import verify_chain
from storage.merkle import merkle_root

__all__ = ["AUDIT_CHAINS", "AUDIT_EVENTS", "MERKLE_FIELD", "PackageError", "PackageReport",
           "Problem", "make_package", "manifest_leaves", "verify_package", "zip_package"]

MERKLE_FIELD = "Hoidong-Merkle-Root"
AUDIT_EVENTS = "data/audit/events.jsonl"
AUDIT_CHAINS = "data/audit/chains.json"
MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
MAX_UNPACKED_BYTES = 64 << 30  # what a zip may expand to
MAX_RATIO = 200  # compressed to uncompressed, per member (media barely compresses)
MAX_MEMBERS = 200_000


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

    @property
    def ok(self) -> bool:
        return not self.problems


def manifest_leaves(bag_dir: Path) -> list[bytes]:
    """The Merkle tree's leaves: the payload manifest's lines, normalised to
    ``"<sha256>  <path>\\n"`` and sorted by path."""
    entries = []
    for line in (bag_dir / MANIFEST).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, path = line.split(None, 1)
        entries.append((path.strip(), digest.lower()))
    return [f"{d}  {p}\n".encode() for p, d in sorted(entries)]


def make_package(folder: Path, info: Mapping[str, str]) -> str:
    """Turn ``folder`` (its files become the payload) into a bag in place, with ``info``
    in ``bag-info.txt`` and the Merkle root; returns the root. Blocking."""
    import bagit

    bag = bagit.make_bag(str(folder), dict(info), checksums=["sha256"])
    root = merkle_root(manifest_leaves(folder))
    bag.info[MERKLE_FIELD] = root
    bag.save()  # rewrites bag-info.txt and the tag manifest over it
    return root


def zip_package(folder: Path, out: Path) -> None:
    """Zip the bag ``folder`` into ``out`` (stored, not deflated: media does not
    compress), entries under the folder's name. Blocking."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")


def verify_package(path: Path) -> PackageReport:
    """Check the package at ``path`` (bag directory or zip). Problems are listed in the
    report, first found first; raises :class:`PackageError` only when there is nothing
    that can be checked. Blocking (hashes every file)."""
    with _unpacked(path) as bag_dir:
        return _verify_bag(bag_dir)


def _verify_bag(bag_dir: Path) -> PackageReport:
    import bagit

    if not (bag_dir / "bagit.txt").is_file():
        raise PackageError("package.not_a_bag", f"{bag_dir} is not a BagIt bag")
    if not (bag_dir / MANIFEST).is_file():
        raise PackageError("package.no_manifest", f"{bag_dir} has no {MANIFEST}")
    report = PackageReport()
    try:
        bag = bagit.Bag(str(bag_dir))
    except bagit.BagError as exc:
        raise PackageError("package.not_a_bag", str(exc)) from exc
    report.info = {str(k): str(v) for k, v in bag.info.items()}
    payload = [p for p in (bag_dir / "data").rglob("*") if p.is_file()]
    report.files = len(payload)
    report.bytes = sum(p.stat().st_size for p in payload)
    listed = _check_manifest(bag_dir, MANIFEST, report)
    for p in sorted(payload):
        rel = p.relative_to(bag_dir).as_posix()
        if rel not in listed:
            report.problems.append(Problem("package.file_unexpected", {"path": rel}))
    # The tag files (bag-info.txt with the Merkle root, the payload manifest) are
    # covered by the tag manifest.
    if (bag_dir / TAG_MANIFEST).is_file():
        _check_manifest(bag_dir, TAG_MANIFEST, report)
    else:
        report.problems.append(Problem("package.file_missing", {"path": TAG_MANIFEST}))
    report.recorded_root = str(bag.info.get(MERKLE_FIELD, ""))
    report.merkle_root = merkle_root(manifest_leaves(bag_dir))
    if report.recorded_root != report.merkle_root:
        report.problems.append(Problem("package.merkle_mismatch", {
            "recorded": report.recorded_root or "-", "computed": report.merkle_root}))
    _check_audit(bag_dir, report)
    return report


def _check_manifest(bag_dir: Path, name: str, report: PackageReport) -> set[str]:
    """Hash every file ``name`` lists against it; returns the listed paths."""
    listed: set[str] = set()
    for line in (bag_dir / name).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, rel = line.split(None, 1)
        rel = rel.strip()
        listed.add(rel)
        target = bag_dir / rel
        if ".." in PurePosixPath(rel).parts or rel.startswith("/"):
            report.problems.append(Problem("package.unsafe_path", {"name": rel}))
        elif not target.is_file():
            report.problems.append(Problem("package.file_missing", {"path": rel}))
        else:
            with target.open("rb") as f:
                found = hashlib.file_digest(f, "sha256").hexdigest()
            if found != digest.lower():
                report.problems.append(Problem("package.hash_mismatch", {"path": rel}))
    return listed


def _check_audit(bag_dir: Path, report: PackageReport) -> None:
    events_file, chains_file = bag_dir / AUDIT_EVENTS, bag_dir / AUDIT_CHAINS
    if not events_file.is_file() or not chains_file.is_file():
        report.problems.append(Problem("package.audit_missing", {"path": AUDIT_EVENTS}))
        return
    try:
        heads: dict[str, Any] = json.loads(chains_file.read_text(encoding="utf-8"))
        by_chain: dict[str, list[dict[str, Any]]] = {}
        for line in events_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                ev = json.loads(line)
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


@contextmanager
def _unpacked(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise PackageError("package.no_such_file", f"{path} does not exist", path=str(path))
    if not zipfile.is_zipfile(path):
        raise PackageError("package.not_a_bag", f"{path} is neither a bag nor a zip")
    with tempfile.TemporaryDirectory(prefix="hoidong-verify-") as tmp:
        root = Path(tmp)
        _safe_extract(path, root)
        entries = [p for p in root.iterdir()]
        bag_dir = entries[0] if len(entries) == 1 and entries[0].is_dir() else root
        yield bag_dir


def _safe_extract(path: Path, dest: Path) -> None:
    with zipfile.ZipFile(path) as z:
        members = z.infolist()
        if len(members) > MAX_MEMBERS:
            raise PackageError("package.too_large", f"{len(members)} entries",
                               limit=str(MAX_MEMBERS))
        total = 0
        for m in members:
            name = PurePosixPath(m.filename)
            mode = m.external_attr >> 16
            if (m.filename.startswith(("/", "\\")) or ".." in name.parts or "\\" in m.filename
                    or (len(name.parts) and ":" in name.parts[0])):
                raise PackageError("package.unsafe_path", f"unsafe name {m.filename!r}",
                                   name=m.filename)
            if stat.S_ISLNK(mode):
                raise PackageError("package.unsafe_path", f"link {m.filename!r}",
                                   name=m.filename)
            total += m.file_size
            if total > MAX_UNPACKED_BYTES or (
                    m.compress_size and m.file_size / m.compress_size > MAX_RATIO
                    and m.file_size > (1 << 20)):
                raise PackageError("package.too_large", f"{m.filename!r} expands too far",
                                   limit=str(MAX_UNPACKED_BYTES))
        for m in members:
            target = dest / m.filename
            if m.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with z.open(m) as src, target.open("wb") as out:
                # The header's size is the zip's claim: count what actually comes out.
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > m.file_size:
                        raise PackageError("package.too_large",
                                           f"{m.filename!r} is larger than it says",
                                           limit=str(m.file_size))
                    out.write(chunk)

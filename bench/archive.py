"""Archive benchmark: making and checking a package of ~1 GB of media, against
``sha256sum`` on the same files in the same run.

The payload is ``--mb`` megabytes of random bytes (media does not compress) in files of
``--file-mb``, plus a small audit chain. Timed, each ``--repeat`` times (medians):

- ``sha256sum``: GNU coreutils hashing every payload file (the baseline);
- **export**: :func:`storage.archive.make_package` (hash every file, write the manifests
  and the Merkle root) and :func:`storage.archive.zip_package` (the stored zip);
- **verify (zip)**: :func:`storage.archive.verify_package` on the zip, read in place —
  what ``hoidong verify package.zip`` does; **verify (bag)** on the unpacked directory.

The files are read once before timing so every method reads from the page cache.

    python -m bench.archive [--mb 1024] [--file-mb 64] [--repeat 3]

Writes bench/results/archive.json (``verify_mb_s``, ``sha256sum_mb_s``, ``export_mb_s``,
``verify_bag_mb_s``, ``verify_ratio``) and prints a table. Target (issue 7): verify >= 80 %
of ``sha256sum``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from storage.archive import make_package, verify_package, zip_package
from storage.chain import GENESIS, event_hash

RESULTS = Path(__file__).parent / "results" / "archive.json"
TARGET_RATIO = 0.8


def _payload(folder: Path, mb: int, file_mb: int) -> list[Path]:
    files = []
    for i in range(max(1, mb // file_mb)):
        path = folder / "recordings" / f"p{i % 8}" / f"track-{i}.webm"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            for _ in range(file_mb):
                f.write(os.urandom(1 << 20))
        files.append(path)
    prev, lines = GENESIS, []
    for seq in range(1, 501):
        ev = {"chain": "session:bench", "seq": seq, "prev": prev,
              "at": "2026-12-01T09:00:00.000000Z", "kind": "recording.segment_closed",
              "actor": "system", "dossier_id": "d", "session_id": "bench",
              "participant_id": None, "data": {"seq": seq}}
        ev["hash"] = event_hash(ev)
        prev = ev["hash"]
        lines.append(json.dumps(ev))
    (folder / "audit").mkdir()
    (folder / "audit" / "events.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "audit" / "chains.json").write_text(
        json.dumps({"session:bench": {"seq": 500, "head": prev}}))
    return files


def _warm(paths: list[Path]) -> None:
    for p in paths:
        with p.open("rb") as f:
            while f.read(8 << 20):
                pass


def _one_run(tmp: Path, source: Path, run: int, sha256sum: str) -> dict[str, float]:
    bag = tmp / f"bag{run}"
    shutil.copytree(source, bag)
    payload = list(bag.rglob("*.webm"))
    zipped = tmp / f"bag{run}.zip"
    out: dict[str, float] = {}
    _warm(payload)
    t = time.perf_counter()
    subprocess.run([sha256sum, *map(str, payload)], check=True, stdout=subprocess.DEVNULL)
    out["sha256sum"] = time.perf_counter() - t
    t = time.perf_counter()
    make_package(bag, {"Source-Organization": "bench"})
    zip_package(bag, zipped)
    out["export"] = time.perf_counter() - t
    _warm([zipped])
    t = time.perf_counter()
    report = verify_package(zipped)
    out["verify_zip"] = time.perf_counter() - t
    assert report.ok, report.problems
    _warm([p for p in bag.rglob("*") if p.is_file()])
    t = time.perf_counter()
    report = verify_package(bag)
    out["verify_bag"] = time.perf_counter() - t
    assert report.ok, report.problems
    shutil.rmtree(bag)
    zipped.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=1024, help="payload size in MB (MiB)")
    ap.add_argument("--file-mb", type=int, default=64, help="size of each payload file")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method (medians)")
    args = ap.parse_args()
    sha256sum = shutil.which("sha256sum")
    assert sha256sum, "sha256sum (coreutils) is needed for the baseline"
    times: dict[str, list[float]] = {"sha256sum": [], "export": [], "verify_zip": [],
                                     "verify_bag": []}
    with tempfile.TemporaryDirectory(prefix="hoidong-bench-archive-") as tmp_s:
        tmp = Path(tmp_s)
        source = tmp / "source"
        files = _payload(source, args.mb, args.file_mb)
        size = sum(p.stat().st_size for p in files)
        for run in range(args.repeat):
            for name, seconds in _one_run(tmp, source, run, sha256sum).items():
                times[name].append(seconds)
    mb = size / 1e6
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "payload_mb": round(mb, 1), "files": len(files), "repeat": args.repeat,
        "sha256sum_mb_s": round(mb / med["sha256sum"], 1),
        "export_mb_s": round(mb / med["export"], 1),
        "verify_mb_s": round(mb / med["verify_zip"], 1),
        "verify_bag_mb_s": round(mb / med["verify_bag"], 1),
        "runs_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }
    result["verify_ratio"] = round(result["verify_mb_s"] / result["sha256sum_mb_s"], 3)
    result["target_ratio"] = TARGET_RATIO
    result["target_met"] = result["verify_ratio"] >= TARGET_RATIO
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print("| method | MB/s (median) | ratio to sha256sum |")
    print("|---|---|---|")
    for name, key in (("sha256sum", "sha256sum_mb_s"), ("export (bag + zip)", "export_mb_s"),
                      ("verify (zip, in place)", "verify_mb_s"),
                      ("verify (bag directory)", "verify_bag_mb_s")):
        print(f"| {name} | {result[key]} | "
              f"{result[key] / result['sha256sum_mb_s']:.2f} |")
    print(f"payload {mb:.0f} MB in {len(files)} files, {args.repeat} runs; target: verify >= "
          f"{TARGET_RATIO:.0%} of sha256sum: {result['verify_ratio']:.0%} "
          f"({'met' if result['target_met'] else 'not met'})")


if __name__ == "__main__":
    main()

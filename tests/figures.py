"""Figures that tests produce for ``docs/reliability.md`` (issue 10).

With ``HOIDONG_WRITE_RESULTS=1`` a test writes what it measured to
``bench/results/reliability/<part>.json``; ``python -m bench.reliability`` gathers the
parts into ``bench/results/reliability.json``. Without it nothing is written, so CI
leaves the tree clean.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PARTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "reliability"


def wanted() -> bool:
    return os.environ.get("HOIDONG_WRITE_RESULTS") == "1"


def record(part: str, data: dict[str, Any]) -> None:
    """Write ``data`` as part ``part`` (merged into what the part already holds)."""
    if not wanted():
        return
    PARTS.mkdir(parents=True, exist_ok=True)
    path = PARTS / f"{part}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **data}, indent=1, ensure_ascii=False) + "\n")

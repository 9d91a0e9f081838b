"""Gather the reliability figures (issue 10) into ``bench/results/reliability.json``.

The figures come from the tests that show each property, run with
``HOIDONG_WRITE_RESULTS=1`` (each writes ``bench/results/reliability/<part>.json``,
see ``tests/figures.py``), and from the soak benchmark (``bench/results/soak.json``).
``make bench-reliability`` runs those tests and then this module, which prints a table
and fails (exit 1) when a part is missing or a figure misses its target.

    python -m bench.reliability
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
PARTS = RESULTS / "reliability"
OUT = RESULTS / "reliability.json"


def _part(name: str) -> dict[str, Any] | None:
    path = PARTS / f"{name}.json" if name != "soak" else RESULTS / "soak.json"
    return json.loads(path.read_text()) if path.exists() else None


def gather() -> tuple[dict[str, Any], list[str]]:
    """(the figures, what is missing or off target)."""
    problems: list[str] = []
    parts = {name: _part(name) for name in
             ("fuzz", "schemathesis", "access", "storage_outage", "sigkill", "pg_restart",
              "soak")}
    for name, data in parts.items():
        if data is None:
            problems.append(f"missing part: {name}")
    got = {name: data or {} for name, data in parts.items()}
    fuzz, schema, access = got["fuzz"], got["schemathesis"], got["access"]
    outage, sigkill, pg, soak = (got["storage_outage"], got["sigkill"], got["pg_restart"],
                                 got["soak"])
    out: dict[str, Any] = {
        "fuzz": {"executions": fuzz.get("executions"), "crashes": fuzz.get("crashes"),
                 "crashes_found_and_fixed": fuzz.get("crashes_found_and_fixed"),
                 "targets": fuzz.get("targets"), "command": fuzz.get("command")},
        "schemathesis": {k: schema.get(k) for k in ("operations", "cases", "failures",
                                                    "command")},
        "access": access,
        "faults": {
            "lost_segments_storage_outage": outage.get("lost_segments"),
            "storage_outage": outage,
            "sigkill": sigkill,
            "pg_restart": {
                "lost_acknowledged_writes": pg.get("lost_acknowledged_writes"),
                "failed_5xx_other": (pg.get("requests") or {}).get("failed_5xx_other"),
                "recovery_s": [x.get("recovery_s") for x in pg.get("restarts", [])],
                "command": pg.get("command"),
            },
        },
        "soak": {k: soak.get(k) for k in (
            "participants", "minutes", "rss_growth_pct", "rss_mb_start", "rss_mb_end",
            "lost_segments", "lost_by_cause", "stuck_jobs", "rate_limited_hellos",
            "rate_limited_messages", "delivered_pct", "complete", "command")},
    }
    checks = [
        ("fuzz.crashes", out["fuzz"]["crashes"], lambda v: v == 0),
        ("schemathesis.failures", out["schemathesis"]["failures"], lambda v: v == 0),
        ("access.mismatches", access.get("mismatches"), lambda v: v == 0),
        ("faults.lost_segments_storage_outage", outage.get("lost_segments"), lambda v: v == 0),
        ("faults.sigkill.max_lost_s_per_track", sigkill.get("max_lost_s_per_track"),
         lambda v: v <= sigkill.get("segment_s", 0) + 1.0),
        ("faults.pg_restart.lost_acknowledged_writes", pg.get("lost_acknowledged_writes"),
         lambda v: v == 0),
        ("soak.rss_growth_pct", soak.get("rss_growth_pct"), lambda v: v < 10),
        ("soak.lost_segments", soak.get("lost_segments"), lambda v: v == 0),
        ("soak.stuck_jobs", soak.get("stuck_jobs"), lambda v: v == 0),
        # A soak stopped before its jobs ended has not checked segments and jobs.
        ("soak.complete", soak.get("complete"), lambda v: v is True),
    ]
    for name, value, ok in checks:
        if value is not None and not ok(value):
            problems.append(f"off target: {name} = {value}")
    return out, problems


def table(out: dict[str, Any]) -> str:
    f, s, a, faults, soak = (out["fuzz"], out["schemathesis"], out["access"], out["faults"],
                             out["soak"])
    rows = [
        ("fuzzing", f"{f['executions']} executions, {len(f['targets'] or {})} targets",
         f"{f['crashes']} crashes ({f['crashes_found_and_fixed']} found and fixed before)"),
        ("schemathesis", f"{s['operations']} operations, {s['cases']} cases",
         f"{s['failures']} failures"),
        ("access control", f"{a.get('role_cells')} role cells, "
         f"{a.get('bad_credential_cells')} bad-credential cells", f"{a.get('mismatches')} "
         "mismatches"),
        ("object store down 60 s", f"{faults['storage_outage'].get('segments')} segments",
         f"{faults['lost_segments_storage_outage']} lost"),
        ("server SIGKILL", f"{faults['sigkill'].get('tracks')} tracks",
         f"≤ {faults['sigkill'].get('max_lost_s_per_track')} s lost per track"),
        ("PostgreSQL restarted", f"recovery {faults['pg_restart']['recovery_s']} s",
         f"{faults['pg_restart']['lost_acknowledged_writes']} acknowledged writes lost, "
         f"{faults['pg_restart']['failed_5xx_other']} 5xx other than 503"),
        ("soak", f"{soak['participants']} participants × {soak['minutes']} min",
         f"RSS {soak['rss_growth_pct']} % growth, {soak['lost_segments']} lost segments, "
         f"{soak['stuck_jobs']} stuck jobs"),
    ]
    lines = ["| what | size | result |", "|---|---|---|"]
    lines += [f"| {a_} | {b} | {c} |" for a_, b, c in rows]
    return "\n".join(lines)


def main() -> int:
    out, problems = gather()
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(table(out))
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

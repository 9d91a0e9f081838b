"""CPU and memory of processes, from /proc (Linux), for the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (e.g. the server's send workers)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def cpu_seconds(pid: int | None = None, *, with_children: bool = False) -> float:
    """User + system CPU seconds used so far by ``pid`` (default: this process), and
    with ``with_children`` by its live child processes too."""
    pid = pid or os.getpid()
    fields = _stat(pid)
    total = (int(fields[11]) + int(fields[12])) / _TICKS
    if with_children:
        for child in children(pid):
            try:
                total += cpu_seconds(child)
            except OSError:
                pass  # ended meanwhile
    return total


def rss_mb(pid: int, *, with_children: bool = False) -> float:
    """Resident memory of ``pid`` (and its live children) in MiB."""
    total = 0.0
    for p in [pid, *(children(pid) if with_children else [])]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, in ticks (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return float(sum(fields) - idle), float(sum(fields))


def interrupt_ticks() -> float:
    """Hard and soft interrupt time of the whole machine so far, in ticks: the kernel's
    packet processing (on loopback, every datagram's delivery) is counted there and
    charged to no process."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return float(fields[5] + fields[6]) if len(fields) > 6 else 0.0

"""server/allocator.py on this machine's glibc: a trim gives freed memory back, a fixed
mmap threshold returns big blocks as they are freed, and the Trimmer counts what it did.

Each case runs in its own interpreter: glibc's thresholds are process-wide and only
rise, and the resident size of a process that ran other tests says little."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

from server import allocator
from server.settings import Settings, SettingsError

pytestmark = pytest.mark.skipif(not allocator.available(), reason="glibc only")

MiB = 2**20


def run(body: str) -> dict[str, float]:
    """Run ``body`` (which sets ``out``) in a fresh interpreter; its ``out`` back."""
    code = "import json\nfrom server import allocator\nout = {}\n" + textwrap.dedent(body) \
        + "\nprint(json.dumps(out))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# Small blocks (under any mmap threshold) freed in the middle of the heap: a pinned block
# at the top keeps glibc from shrinking the heap by itself.
MIDDLE_OF_THE_HEAP = """
blocks = [bytearray(1000) for _ in range(120_000)]
pin = bytearray(3000)  # a size no block freed so far fits: from the heap's top
del blocks
before = allocator.resident_bytes()
out["kept"] = before
{action}
out["after"] = allocator.resident_bytes()
out["returned"] = before - out["after"]
"""


def test_a_trim_gives_freed_heap_memory_back() -> None:
    untrimmed = run(MIDDLE_OF_THE_HEAP.format(action="pass"))
    trimmed = run(MIDDLE_OF_THE_HEAP.format(action="out['trim'] = allocator.trim()"))
    assert untrimmed["returned"] < 10 * MiB  # glibc keeps it by itself
    assert trimmed["trim"] is True
    assert trimmed["returned"] > 80 * MiB  # ~120 MB of 1-KB blocks were freed


# Big blocks (300 KiB) each followed by a small one that stays: freed big blocks give
# memory back only if they had their own mapping. glibc's threshold has already risen
# past them (a 4 MiB block allocated and freed), as in a server that ran for a while.
BIG_BLOCKS = """
raised = bytearray(4 * 2**20)
del raised
{fix}
big, pins = [], []
for i in range(300):
    big.append(bytearray(300 * 1024))
    pins.append(bytes(2000))
before = allocator.resident_bytes()
del big
out["returned"] = before - allocator.resident_bytes()
"""


def test_a_fixed_mmap_threshold_returns_big_blocks_as_they_are_freed() -> None:
    risen = run(BIG_BLOCKS.format(fix=""))
    fixed = run(BIG_BLOCKS.format(fix="out['fixed'] = allocator.fix_thresholds(256)"))
    assert fixed["fixed"] is True
    assert fixed["returned"] > 60 * MiB  # 300 x 300 KiB, unmapped on free
    assert risen["returned"] < 20 * MiB  # the same blocks kept in the heap


def test_zero_leaves_glibc_defaults() -> None:
    assert allocator.fix_thresholds(0) is False


async def test_the_trimmer_trims_on_its_period_and_counts() -> None:
    trimmer = allocator.Trimmer(0.05)
    async with trimmer.running():
        await asyncio.sleep(0.5)
    assert trimmer.trims >= 3
    assert 0 < trimmer.longest_s <= trimmer.seconds
    assert trimmer.returned_bytes >= 0
    done = trimmer.trims
    await asyncio.sleep(0.2)
    assert trimmer.trims == done  # stopped with its block


async def test_a_zero_period_never_trims() -> None:
    trimmer = allocator.Trimmer(0)
    async with trimmer.running():
        await asyncio.sleep(0.2)
    assert trimmer.trims == 0


def test_negative_settings_are_refused() -> None:
    for name in ("malloc_trim_s", "malloc_mmap_threshold_kb"):
        with pytest.raises(SettingsError, match=f"HOIDONG_{name.upper()}"):
            Settings.load({f"HOIDONG_{name.upper()}": "-1"})
    with pytest.raises(SettingsError, match="HOIDONG_MALLOC_MMAP_THRESHOLD_KB"):
        Settings.load({"HOIDONG_MALLOC_MMAP_THRESHOLD_KB": "40000"})
    assert Settings.load({"HOIDONG_MALLOC_MMAP_THRESHOLD_KB": "32768"}) \
        .malloc_mmap_threshold_kb == 32768

"""Giving freed memory back to the operating system (glibc's allocator).

A meeting server frees most of what it allocates within seconds (frames, packets,
segment files read for hashing and upload), but glibc keeps freed memory for reuse
instead of returning it: at the top of a heap only past a threshold that rises with the
largest block ever freed (up to 64 MiB), and in the middle of a heap or a thread's
arena (every recorder, camera-check and database thread may take one) never, unless
asked. After a wave of connections cut and joined again the resident size then stays at
the wave's high-water mark. In the 20-participant soak (docs/reliability.md) one
``malloc_trim(0)`` gave back 250 MiB of 810, and the resident size kept rising between
waves with nothing alive to show for it.

So the server, on glibc:

- fixes glibc's mmap threshold at ``malloc_mmap_threshold_kb`` (a block that large gets
  its own mapping, unmapped as soon as it is freed) and the heap-top trim threshold at
  twice that, instead of letting both rise;
- calls ``malloc_trim(0)`` every ``malloc_trim_s`` seconds in a thread (ctypes releases
  the GIL; the event loop only waits if it needs the main arena's lock while that
  arena is trimmed — :class:`Trimmer` keeps the longest trim, for ``/metrics``).

Elsewhere (musl, macOS) there is no ``malloc_trim``: both are skipped and said once in
the log. Nothing here frees anything still in use; it only returns pages glibc already
holds as free.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from media.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _glibc() -> ctypes.CDLL | None:
    """The C library, if it is glibc (it has ``malloc_trim`` and ``mallopt``)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def available() -> bool:
    """Whether this process's allocator can be tuned and trimmed (glibc)."""
    return _LIBC is not None


def resident_bytes() -> int:
    """This process's resident set size, in bytes (0 where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def fix_thresholds(mmap_threshold_kb: int) -> bool:
    """Fix the mmap threshold at ``mmap_threshold_kb`` KiB and the trim threshold at
    twice that (module doc). 0 leaves glibc's defaults. False where not glibc or glibc
    refused a value."""
    if _LIBC is None or mmap_threshold_kb <= 0:
        return False
    size = mmap_threshold_kb * 1024
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, size)) and bool(
        _LIBC.mallopt(M_TRIM_THRESHOLD, 2 * size))


def trim() -> bool:
    """``malloc_trim(0)``: give every arena's free pages back. Blocking (call it in a
    thread). True if glibc gave any memory back; False also where not glibc."""
    return bool(_LIBC.malloc_trim(0)) if _LIBC is not None else False


class Trimmer:
    """Trims every ``period_s`` seconds while :meth:`running` (module doc), and counts:
    ``trims``, ``returned_bytes`` (resident size before minus after, summed; a trim that
    returned nothing adds 0), ``seconds`` (time spent trimming) and ``longest_s``."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.trims = 0
        self.returned_bytes = 0
        self.seconds = 0.0
        self.longest_s = 0.0

    def trim_now(self) -> int:
        """One trim, counted; the bytes it returned. Blocking (call it in a thread)."""
        before, began = resident_bytes(), time.perf_counter()
        trim()
        took = time.perf_counter() - began
        returned = max(0, before - resident_bytes())
        self.trims += 1
        self.returned_bytes += returned
        self.seconds += took
        self.longest_s = max(self.longest_s, took)
        return returned

    async def run(self) -> None:
        """Trim every ``period_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.period_s)
            returned = await asyncio.to_thread(self.trim_now)
            log.debug("malloc_trim returned %.1f MiB", returned / 2**20)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Trimmer]:
        """Trim while the block runs (for ``cleanup_ctx``); does nothing where the
        allocator is not glibc or ``period_s`` is 0."""
        if _LIBC is None or self.period_s <= 0:
            if _LIBC is None and self.period_s > 0:
                log.info("not glibc: freed memory is not trimmed (malloc_trim_s ignored)")
            yield self
            return
        task = asyncio.create_task(self.run(), name="malloc-trim")
        try:
            yield self
        finally:
            await cancel_and_wait(task, name="malloc trim")

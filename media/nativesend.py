"""The native send path: SRTP-protect and send a batch of forwarded packets in one call.

Forwarding's per-packet cost in Python is mostly the layers around two C calls: the
SRTP protect (libsrtp, through cffi) and the ``sendto`` system call (through asyncio's
transport). A batch of packets, one forwarded frame to every subscriber, goes to C here
in one call: each packet is copied into a buffer, protected in place with the slot's
own libsrtp session and sent with ``sendmmsg`` (consecutive packets of a slot in one
system call). The GIL is released for the call, so the recorders' threads run meanwhile.

The C part is compiled with the system's C compiler on first use (cffi, a few seconds)
into a cache folder (``$XDG_CACHE_HOME/hoidong`` or ``~/.cache/hoidong``, else a
temporary folder), keyed by the source and the Python version, so later starts load it
at once. No compiler, or any build error: :func:`load` returns None, the failure is
logged once, and forwarding keeps its Python path (same packets, more CPU).

libsrtp is not linked again: the function pointer of ``srtp_protect`` is taken from
pylibsrtp's own binding (the library aiortc already uses), and each slot's session is
the ``srtp_t`` of a live :class:`pylibsrtp.Session`, which the caller keeps alive for
as long as the slot is registered.

A batch is bytes: repeated ``slot u32, length u16, packet`` (big-endian), the format the
send workers' ``D`` message carries (:mod:`media.sendworker`). Nothing is retried: a
packet that cannot be protected or sent (socket full, closed) is lost like a lost UDP
datagram, and counted.
"""

from __future__ import annotations

import hashlib
import heapq
import importlib.util
import logging
import os
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

CDEF = """
int hd_init(uintptr_t protect_fn);
int hd_add(uint32_t slot, uintptr_t srtp, int fd, const char *host, int port);
void hd_remove(uint32_t slot);
int hd_send(const unsigned char *batch, size_t length, int *dropped);
"""

SOURCE = r"""
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

typedef int (*hd_protect_fn)(void *ctx, void *rtp, int *length);

#define HD_BATCH 32      /* packets per sendmmsg call */
#define HD_BUF 1500      /* a packet and its SRTP trailer */
#define HD_TRAILER 144   /* SRTP_MAX_TRAILER_LEN in libsrtp 2 */

typedef struct {
    void *srtp;
    int fd;
    socklen_t addr_len;
    struct sockaddr_storage addr;
} hd_slot;

static hd_protect_fn hd_protect;
static hd_slot *hd_slots;
static uint32_t hd_capacity;

int hd_init(uintptr_t protect_fn) {
    hd_protect = (hd_protect_fn)protect_fn;
    return 0;
}

int hd_add(uint32_t slot, uintptr_t srtp, int fd, const char *host, int port) {
    if (slot >= hd_capacity) {
        uint32_t capacity = hd_capacity ? hd_capacity : 64;
        while (capacity <= slot) capacity *= 2;
        hd_slot *grown = realloc(hd_slots, capacity * sizeof(hd_slot));
        if (grown == NULL) return -1;
        memset(grown + hd_capacity, 0, (capacity - hd_capacity) * sizeof(hd_slot));
        hd_slots = grown;
        hd_capacity = capacity;
    }
    hd_slot *s = &hd_slots[slot];
    memset(s, 0, sizeof(*s));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&s->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&s->addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        s->addr_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        s->addr_len = sizeof(*v6);
    } else {
        return -2;
    }
    s->fd = fd;
    s->srtp = (void *)srtp;
    return 0;
}

void hd_remove(uint32_t slot) {
    if (slot < hd_capacity) memset(&hd_slots[slot], 0, sizeof(hd_slot));
}

static int hd_flush(int fd, struct mmsghdr *msgs, int count, int *dropped) {
    int done = 0;
    while (done < count) {
        int n = sendmmsg(fd, msgs + done, (unsigned int)(count - done), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;  /* full or closed: the rest is lost, as UDP loses it */
        }
        done += n;
    }
    *dropped += count - done;
    return done;
}

int hd_send(const unsigned char *batch, size_t length, int *dropped) {
    unsigned char buffers[HD_BATCH][HD_BUF];
    struct iovec iov[HD_BATCH];
    struct mmsghdr msgs[HD_BATCH];
    hd_slot *current = NULL;
    int count = 0, sent = 0;
    size_t pos = 0;
    *dropped = 0;
    if (hd_protect == NULL) return -1;
    while (pos + 6 <= length) {
        uint32_t slot = ((uint32_t)batch[pos] << 24) | ((uint32_t)batch[pos + 1] << 16)
                        | ((uint32_t)batch[pos + 2] << 8) | batch[pos + 3];
        size_t size = ((size_t)batch[pos + 4] << 8) | batch[pos + 5];
        pos += 6;
        if (pos + size > length) break;  /* a cut batch: its tail is not a packet */
        hd_slot *s = slot < hd_capacity && hd_slots[slot].srtp ? &hd_slots[slot] : NULL;
        if (s == NULL || size < 12 || size > HD_BUF - HD_TRAILER) {
            if (s != NULL) (*dropped)++;
            pos += size;
            continue;
        }
        if (count && (s != current || count == HD_BATCH)) {
            sent += hd_flush(current->fd, msgs, count, dropped);
            count = 0;
        }
        current = s;
        memcpy(buffers[count], batch + pos, size);
        int out = (int)size;
        pos += size;
        if (hd_protect(s->srtp, buffers[count], &out) != 0) {
            (*dropped)++;  /* e.g. a replayed sequence number */
            continue;
        }
        iov[count].iov_base = buffers[count];
        iov[count].iov_len = (size_t)out;
        memset(&msgs[count], 0, sizeof(msgs[count]));
        msgs[count].msg_hdr.msg_name = &s->addr;
        msgs[count].msg_hdr.msg_namelen = s->addr_len;
        msgs[count].msg_hdr.msg_iov = &iov[count];
        msgs[count].msg_hdr.msg_iovlen = 1;
        count++;
    }
    if (count) sent += hd_flush(current->fd, msgs, count, dropped);
    return sent;
}
"""

_MODULE = "_hoidong_nativesend"
_lock = threading.Lock()
_loaded: ModuleType | None = None
_failed = False


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hoidong"


def _key() -> str:
    text = "\0".join((CDEF, SOURCE, sys.version, sysconfig.get_platform()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(_MODULE, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(target: Path) -> None:
    """Compile the module to ``target`` (atomically: two processes may race)."""
    from cffi import FFI  # type: ignore[import-untyped]

    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(_MODULE, SOURCE, extra_compile_args=["-O2"])
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(ffi.compile(tmpdir=tmp, verbose=False))
        os.replace(built, target)


def load() -> Any | None:
    """The compiled module's ``lib`` (initialised), or None where it cannot be built."""
    global _loaded, _failed
    with _lock:
        if _loaded is not None:
            return _loaded.lib
        if _failed:
            return None
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        candidates = [_cache_dir(), Path(tempfile.gettempdir()) / "hoidong-native"]
        for folder in candidates:
            target = folder / _key() / f"{_MODULE}{suffix}"
            try:
                if not target.exists():
                    _build(target)
                module = _import(target)
                break
            except Exception as exc:  # no compiler, no headers, a read-only folder
                log.debug("native send path not built in %s: %s", folder, exc)
        else:
            _failed = True
            log.warning("native send path unavailable (no C compiler?); forwarding uses "
                        "the Python path")
            return None
        from pylibsrtp._binding import ffi as srtp_ffi  # type: ignore[import-not-found]
        from pylibsrtp._binding import lib as srtp_lib

        protect = int(srtp_ffi.cast("uintptr_t", srtp_ffi.addressof(srtp_lib, "srtp_protect")))
        module.lib.hd_init(protect)
        _loaded = module
        return module.lib


def session_pointer(session: Any) -> int:
    """The ``srtp_t`` of a :class:`pylibsrtp.Session`, as an integer for :func:`add`."""
    from pylibsrtp._binding import ffi as srtp_ffi

    return int(srtp_ffi.cast("uintptr_t", session._srtp[0]))


class NativeSlots:
    """This process's native slot table. Slot numbers index a C array, so they are
    kept small: :meth:`allocate` gives the smallest free one. Each registered slot's
    SRTP session (and ``keep``, e.g. its socket) is held here until :meth:`remove`, so
    the C side never sees a freed session."""

    def __init__(self, lib: Any) -> None:
        assert _loaded is not None
        self._lib = lib
        self._free: list[int] = []
        self._next = 0
        self._held: dict[int, tuple[Any, Any]] = {}
        self._dropped = _loaded.ffi.new("int *")

    def allocate(self) -> int:
        """A slot number not in use (registered by :meth:`add`, or given back)."""
        if self._free:
            return heapq.heappop(self._free)
        self._next += 1
        return self._next - 1

    def add(self, slot: int, session: Any, fd: int, addr: tuple[str, int],
            keep: Any = None) -> bool:
        """Register ``slot`` sending on socket ``fd`` to ``addr`` with ``session`` (a
        :class:`pylibsrtp.Session`); False when the address is not an IP address."""
        if slot >= self._next:
            self._next = slot + 1
        if self._lib.hd_add(slot, session_pointer(session), fd, addr[0].encode("ascii"),
                            int(addr[1])) != 0:
            return False
        self._held[slot] = (session, keep)
        return True

    def remove(self, slot: int) -> Any:
        """Unregister ``slot``; returns what was kept with it (None if not registered)."""
        held = self._held.pop(slot, None)
        self._lib.hd_remove(slot)
        if slot not in self._free and slot < self._next:
            heapq.heappush(self._free, slot)
        return None if held is None else held[1]

    def send(self, batch: bytes | memoryview) -> tuple[int, int]:
        """Protect and send ``batch`` (slot u32, length u16, packet; repeated); returns
        (packets sent, packets lost). Packets for unregistered slots are skipped."""
        assert _loaded is not None
        data = batch if isinstance(batch, bytes) else _loaded.ffi.from_buffer(batch)
        sent = self._lib.hd_send(data, len(batch), self._dropped)
        return int(sent), int(self._dropped[0])

"""The native send path: one forwarded frame to every subscriber in one C call.

Forwarding's per-packet cost in Python is mostly the layers around two C calls: the
SRTP protect (libsrtp, through cffi) and the ``sendto`` system call (through asyncio's
transport), and the bytes built for each packet of each subscriber. Here a published
frame's payload bodies go to C once, with a plan of 4 words per subscriber's slot
(slot, first sequence number, RTP timestamp, VP8 picture id); C writes each packet
from the slot's RTP header template (registered once per connection), protects it in
place with the slot's own libsrtp session and sends the slot's packets with one
``sendmmsg``. The GIL is released for the call, so the recorders' threads run meanwhile.

The C part is compiled with the system's C compiler on first use (cffi, a few seconds)
into a cache folder (``$XDG_CACHE_HOME/hoidong`` or ``~/.cache/hoidong``, else a
temporary folder), keyed by the source and the Python version, so later starts load it
at once. No compiler, or any build error: :func:`load` returns None, the failure is
logged once, and forwarding keeps its Python path (same packets, more CPU).

libsrtp is not linked again: the function pointer of ``srtp_protect`` is taken from
pylibsrtp's own binding (the library aiortc already uses), and each slot's session is
the ``srtp_t`` of a live :class:`pylibsrtp.Session`, held by :class:`NativeSender` for
as long as the slot is registered.

Nothing is retried: a packet that cannot be protected or sent (socket full or closed,
a replayed sequence number) is lost like a lost UDP datagram, and counted.
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
from array import array
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

CDEF = """
int hd_init(uintptr_t protect_fn);
int hd_add(uint32_t slot, uintptr_t srtp, int fd, const char *host, int port);
void hd_remove(uint32_t slot);
int hd_template(uint32_t slot, const unsigned char *header, int length, int abs_at, int pt);
int hd_forward(const unsigned char *data, const uint16_t *sizes, int chunks, int video,
               const uint32_t *plan, int slots, uint32_t abs24, int *dropped);
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

#define HD_HEADER 64     /* an RTP header template: 12 bytes and the extensions */

typedef struct {
    void *srtp;
    int fd;
    socklen_t addr_len;
    struct sockaddr_storage addr;
    int header_len;      /* 0: no template, hd_forward skips the slot */
    int abs_at;          /* offset of abs-send-time in the header, or -1 */
    int pt;
    unsigned char header[HD_HEADER];
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

int hd_template(uint32_t slot, const unsigned char *header, int length, int abs_at, int pt) {
    if (slot >= hd_capacity || hd_slots[slot].srtp == NULL) return -1;
    if (length < 12 || length > HD_HEADER || abs_at > length - 3) return -2;
    hd_slot *s = &hd_slots[slot];
    memcpy(s->header, header, (size_t)length);
    s->header_len = length;
    s->abs_at = abs_at;
    s->pt = pt & 0x7f;
    return 0;
}

/* One published frame to many slots. ``data`` holds the frame's payload bodies back to
   back (``sizes``: each body's length); ``plan`` is 4 words per slot: slot, first
   sequence number, RTP timestamp, VP8 picture id. A video packet's payload is the VP8
   descriptor (S bit on the first, picture id) and its body; an audio frame is one
   packet, the body as it is. The marker is set on a frame's last packet. */
int hd_forward(const unsigned char *data, const uint16_t *sizes, int chunks, int video,
               const uint32_t *plan, int slots, uint32_t abs24, int *dropped) {
    unsigned char buffers[HD_BATCH][HD_BUF];
    struct iovec iov[HD_BATCH];
    struct mmsghdr msgs[HD_BATCH];
    int sent = 0;
    *dropped = 0;
    if (hd_protect == NULL || chunks <= 0) return -1;
    for (int k = 0; k < slots; k++) {
        uint32_t slot = plan[4 * k];
        hd_slot *s = slot < hd_capacity && hd_slots[slot].srtp && hd_slots[slot].header_len
                     ? &hd_slots[slot] : NULL;
        if (s == NULL) {
            *dropped += chunks;
            continue;
        }
        uint32_t seq = plan[4 * k + 1], ts = plan[4 * k + 2], pid = plan[4 * k + 3];
        int count = 0;
        size_t offset = 0;
        for (int i = 0; i < chunks; i++) {
            size_t size = sizes[i];
            const unsigned char *body = data + offset;
            offset += size;
            size_t total = (size_t)s->header_len + (video ? 4 : 0) + size;
            if (total > HD_BUF - HD_TRAILER) {
                (*dropped)++;
                continue;
            }
            unsigned char *b = buffers[count];
            memcpy(b, s->header, (size_t)s->header_len);
            b[1] = (unsigned char)(s->pt | (i == chunks - 1 ? 0x80 : 0));
            uint32_t q = (seq + (uint32_t)i) & 0xffff;
            b[2] = (unsigned char)(q >> 8);
            b[3] = (unsigned char)q;
            b[4] = (unsigned char)(ts >> 24);
            b[5] = (unsigned char)(ts >> 16);
            b[6] = (unsigned char)(ts >> 8);
            b[7] = (unsigned char)ts;
            if (s->abs_at >= 0) {
                b[s->abs_at] = (unsigned char)(abs24 >> 16);
                b[s->abs_at + 1] = (unsigned char)(abs24 >> 8);
                b[s->abs_at + 2] = (unsigned char)abs24;
            }
            unsigned char *p = b + s->header_len;
            if (video) {
                p[0] = i == 0 ? 0x90 : 0x80;
                p[1] = 0x80;
                p[2] = (unsigned char)(0x80 | ((pid >> 8) & 0x7f));
                p[3] = (unsigned char)pid;
                p += 4;
            }
            memcpy(p, body, size);
            int out = (int)total;
            if (hd_protect(s->srtp, b, &out) != 0) {
                (*dropped)++;
                continue;
            }
            iov[count].iov_base = b;
            iov[count].iov_len = (size_t)out;
            memset(&msgs[count], 0, sizeof(msgs[count]));
            msgs[count].msg_hdr.msg_name = &s->addr;
            msgs[count].msg_hdr.msg_namelen = s->addr_len;
            msgs[count].msg_hdr.msg_iov = &iov[count];
            msgs[count].msg_hdr.msg_iovlen = 1;
            if (++count == HD_BATCH) {
                sent += hd_flush(s->fd, msgs, count, dropped);
                count = 0;
            }
        }
        if (count) sent += hd_flush(s->fd, msgs, count, dropped);
    }
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


class NativeSender:
    """This process's native slots, and the frame being forwarded.

    Slot numbers index a C array, so they are kept small: :meth:`allocate` gives the
    smallest free one. Each registered slot's SRTP session (and ``keep``) is held here
    until :meth:`remove`, so the C side never sees a freed session.

    Per published frame: :meth:`begin` (its bodies), :meth:`plan` once per slot (the
    slot's sequence numbers, timestamp and picture id), :meth:`flush` (one C call)."""

    def __init__(self, lib: Any) -> None:
        assert _loaded is not None
        self._lib = lib
        self._ffi = _loaded.ffi
        self._free: list[int] = []
        self._next = 0
        self._held: dict[int, tuple[Any, Any]] = {}
        self._dropped = self._ffi.new("int *")
        self._bodies: list[bytes] = []
        self._video = False
        self._abs24 = 0
        self.ntp = 0
        self._plan = array("I")
        self.sent = 0
        self.lost = 0

    def allocate(self) -> int:
        """A slot number not in use (registered by :meth:`add`, or given back)."""
        if self._free:
            return heapq.heappop(self._free)
        self._next += 1
        return self._next - 1

    def add(self, slot: int, session: Any, fd: int, addr: tuple[str, int], header: bytes,
            abs_at: int, pt: int, keep: Any = None) -> bool:
        """Register ``slot``: sends on socket ``fd`` to ``addr`` with ``session`` (a
        :class:`pylibsrtp.Session`) and the RTP ``header`` template (sequence number,
        timestamp and marker are written per packet, the 3-byte abs-send-time at
        ``abs_at`` unless it is -1). False (and nothing registered) when the address is
        not an IP address or the header does not fit."""
        if self._lib.hd_add(slot, session_pointer(session), fd, addr[0].encode("ascii"),
                            int(addr[1])) != 0:
            return False
        if self._lib.hd_template(slot, header, len(header), abs_at, pt) != 0:
            self._lib.hd_remove(slot)
            return False
        self._held[slot] = (session, keep)
        return True

    def remove(self, slot: int) -> Any:
        """Unregister ``slot`` and free its number; returns what was kept with it."""
        held = self._held.pop(slot, None)
        self._lib.hd_remove(slot)
        if slot not in self._free and slot < self._next:
            heapq.heappush(self._free, slot)
        return None if held is None else held[1]

    def begin(self, bodies: list[bytes], video: bool, ntp: int) -> None:
        """Start a frame: its payload bodies (one for audio, each ≤ 65 535 bytes) and
        its send time (64-bit NTP: every packet carries it as abs-send-time, and the
        slots' sender reports use it)."""
        self._bodies = bodies
        self._video = video
        self.ntp = ntp
        self._abs24 = (ntp >> 14) & 0xFFFFFF
        del self._plan[:]

    def plan(self, slot: int, seq: int, ts: int, picture_id: int) -> None:
        """Send the current frame on ``slot`` from sequence number ``seq``."""
        self._plan.extend((slot, seq, ts, picture_id))

    def flush(self) -> None:
        """Protect and send the current frame on every planned slot (one C call; the
        GIL is released meanwhile). Lost packets (socket full or closed, a replayed
        sequence number) are counted in :attr:`lost`."""
        plan = self._plan
        if not plan:
            return
        bodies = self._bodies
        sizes = self._ffi.new("uint16_t[]", [len(b) for b in bodies])
        sent = self._lib.hd_forward(b"".join(bodies), sizes, len(bodies), int(self._video),
                                    self._ffi.from_buffer("uint32_t[]", plan),
                                    len(plan) // 4, self._abs24, self._dropped)
        del plan[:]
        self.sent += int(sent)
        self.lost += int(self._dropped[0])

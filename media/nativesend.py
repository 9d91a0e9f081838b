"""The native send path: one forwarded frame to every subscriber in one C call.

Forwarding's per-packet cost in Python is mostly the layers around two C calls: the
SRTP protect (libsrtp, through cffi) and the ``sendto`` system call (through asyncio's
transport), and the bytes built for each packet of each subscriber. Here each
subscriber slot's stream lives in C: its RTP header template, SRTP session, socket and
address (registered once per connection), its next sequence number and VP8 picture id,
its timestamp offset and last timestamp, its counters, and which frames carried which
sequence numbers. A published frame's payload bodies go to C once, with the array of
the publisher's armed slots; C writes each slot's packets, protects them in place with
the slot's own libsrtp session and sends them with one ``sendmmsg`` per slot. No Python
runs per subscriber, and the GIL is released for the call, so the recorders' threads run
meanwhile. The bodies of the last frames are kept once (not per slot) for
retransmission.

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
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

CDEF = """
int hd_init(uintptr_t protect_fn);
int hd_add(uint32_t slot, uintptr_t srtp, int fd, const char *host, int port);
void hd_remove(uint32_t slot);
int hd_template(uint32_t slot, const unsigned char *header, int length, int abs_at, int pt);
int hd_start(uint32_t slot, uint32_t seq, uint32_t picture_id, uint32_t ts_origin);
int hd_arm(uint32_t slot, uint32_t rtp_ts, uint32_t step);
void hd_disarm(uint32_t slot);
int hd_state(uint32_t slot, uint64_t *out);
int hd_lookup(uint32_t slot, uint32_t seq, uint32_t *out);
int hd_forward(const unsigned char *data, const uint16_t *sizes, int chunks, int video,
               const uint32_t *slots, int count, uint32_t rtp_ts, uint64_t ntp,
               uint32_t frame, int *dropped);
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
#define HD_RING 256      /* frames remembered per slot, for retransmission */

typedef struct {         /* one frame as a slot sent it */
    uint32_t frame;      /* the sender's frame number (NativeSender keeps the bodies) */
    uint32_t ts;
    uint16_t first;      /* first sequence number */
    uint16_t count;      /* packets */
    uint16_t pid;
    uint16_t used;
} hd_sent;

typedef struct {
    void *srtp;
    int fd;
    socklen_t addr_len;
    struct sockaddr_storage addr;
    int header_len;      /* 0: no template, hd_forward skips the slot */
    int abs_at;          /* offset of abs-send-time in the header, or -1 */
    int pt;
    unsigned char header[HD_HEADER];
    /* The slot's stream, kept here so that a frame's fan-out needs no Python per slot. */
    int armed;           /* hd_forward sends on it (after hd_arm) */
    int started;         /* last_ts holds the last timestamp sent */
    uint16_t seq;        /* next sequence number */
    uint16_t pid;        /* next VP8 picture id (15 bits) */
    uint32_t ts_origin;  /* the stream's first timestamp */
    uint32_t offset;     /* outgoing timestamp = incoming + offset (mod 2^32) */
    uint32_t last_ts;
    uint64_t last_ntp;   /* send time of the frame of last_ts (for sender reports) */
    uint64_t packets, octets, frames, errors;
    uint32_t ring_at;
    hd_sent ring[HD_RING];
} hd_slot;

static hd_protect_fn hd_protect;
static hd_slot *hd_slots;
static uint32_t hd_capacity;

int hd_init(uintptr_t protect_fn) {
    hd_protect = (hd_protect_fn)protect_fn;
    return 0;
}

static hd_slot *hd_get(uint32_t slot) {
    return slot < hd_capacity && hd_slots[slot].srtp ? &hd_slots[slot] : NULL;
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

int hd_template(uint32_t slot, const unsigned char *header, int length, int abs_at, int pt) {
    hd_slot *s = hd_get(slot);
    if (s == NULL) return -1;
    if (length < 12 || length > HD_HEADER || abs_at > length - 3) return -2;
    memcpy(s->header, header, (size_t)length);
    s->header_len = length;
    s->abs_at = abs_at;
    s->pt = pt & 0x7f;
    return 0;
}

/* The stream's starting point: first sequence number, picture id and timestamp. */
int hd_start(uint32_t slot, uint32_t seq, uint32_t picture_id, uint32_t ts_origin) {
    hd_slot *s = hd_get(slot);
    if (s == NULL) return -1;
    s->seq = (uint16_t)seq;
    s->pid = (uint16_t)(picture_id & 0x7fff);
    s->ts_origin = ts_origin;
    return 0;
}

/* Send from now on, starting with a frame whose incoming timestamp is ``rtp_ts``: it
   goes out ``step`` after the last frame sent (a new source continues the slot's
   timeline), or at the stream's origin when nothing was sent yet. */
int hd_arm(uint32_t slot, uint32_t rtp_ts, uint32_t step) {
    hd_slot *s = hd_get(slot);
    if (s == NULL || !s->header_len) return -1;
    uint32_t first = s->started ? s->last_ts + step : s->ts_origin;
    s->offset = first - rtp_ts;
    s->armed = 1;
    return 0;
}

void hd_disarm(uint32_t slot) {
    hd_slot *s = hd_get(slot);
    if (s != NULL) s->armed = 0;
}

int hd_state(uint32_t slot, uint64_t *out) {
    hd_slot *s = hd_get(slot);
    if (s == NULL) return -1;
    out[0] = s->seq;
    out[1] = s->pid;
    out[2] = s->last_ts;
    out[3] = (uint64_t)s->started;
    out[4] = s->packets;
    out[5] = s->octets;
    out[6] = s->frames;
    out[7] = s->last_ntp;
    out[8] = s->errors;
    out[9] = (uint64_t)s->armed;
    return 0;
}

/* Which remembered frame carried sequence number ``seq``: out = frame number, packet
   index in the frame, packets, timestamp, picture id. -1 when no longer remembered. */
int hd_lookup(uint32_t slot, uint32_t seq, uint32_t *out) {
    hd_slot *s = hd_get(slot);
    if (s == NULL) return -1;
    for (int k = 0; k < HD_RING; k++) {
        hd_sent *f = &s->ring[k];
        uint16_t index = (uint16_t)((uint16_t)seq - f->first);
        if (!f->used || index >= f->count) continue;
        out[0] = f->frame;
        out[1] = index;
        out[2] = f->count;
        out[3] = f->ts;
        out[4] = f->pid;
        return 0;
    }
    return -1;
}

static int hd_flush(hd_slot *s, struct mmsghdr *msgs, int count, int *dropped) {
    int done = 0;
    while (done < count) {
        int n = sendmmsg(s->fd, msgs + done, (unsigned int)(count - done), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            s->errors++;
            break;  /* full or closed: the rest is lost, as UDP loses it */
        }
        done += n;
    }
    *dropped += count - done;
    return done;
}

/* One published frame to every armed slot in ``slots``. ``data`` holds the frame's
   payload bodies back to back (``sizes``: each body's length); ``rtp_ts`` is its
   incoming timestamp, ``ntp`` its send time (64-bit NTP; abs-send-time is its middle 24
   bits) and ``frame`` the sender's number for it. Each slot writes its packets from its
   header template, with its own sequence numbers, timestamp (never going backwards)
   and picture id: a video packet's payload is the VP8 descriptor (S bit on the first,
   picture id) and its body; an audio frame is one packet, the body as it is. The
   marker is set on a frame's last packet. Returns the packets sent; the others (slot
   not armed, body too big, protect refused, socket full or closed) are in *dropped. */
int hd_forward(const unsigned char *data, const uint16_t *sizes, int chunks, int video,
               const uint32_t *slots, int count, uint32_t rtp_ts, uint64_t ntp,
               uint32_t frame, int *dropped) {
    unsigned char buffers[HD_BATCH][HD_BUF];
    struct iovec iov[HD_BATCH];
    struct mmsghdr msgs[HD_BATCH];
    uint32_t abs24 = (uint32_t)(ntp >> 14) & 0xffffff;
    size_t length = 0;
    int sent = 0;
    *dropped = 0;
    if (hd_protect == NULL || chunks <= 0) return -1;
    for (int i = 0; i < chunks; i++) length += sizes[i];
    for (int k = 0; k < count; k++) {
        hd_slot *s = hd_get(slots[k]);
        if (s == NULL || !s->armed || !s->header_len) {
            *dropped += chunks;
            continue;
        }
        uint32_t ts = rtp_ts + s->offset;
        if (s->started && (int32_t)(ts - s->last_ts) <= 0) ts = s->last_ts + 1;
        uint16_t seq = s->seq;
        uint16_t pid = s->pid;
        s->seq = (uint16_t)(seq + chunks);
        if (video) s->pid = (uint16_t)((pid + 1) & 0x7fff);
        s->last_ts = ts;
        s->last_ntp = ntp;
        s->started = 1;
        s->frames++;
        s->packets += (uint64_t)chunks;
        s->octets += length + (video ? 4u * (size_t)chunks : 0);
        hd_sent *f = &s->ring[s->ring_at];
        s->ring_at = (s->ring_at + 1) % HD_RING;
        f->frame = frame;
        f->ts = ts;
        f->first = seq;
        f->count = (uint16_t)chunks;
        f->pid = pid;
        f->used = 1;
        int batch = 0;
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
            unsigned char *b = buffers[batch];
            memcpy(b, s->header, (size_t)s->header_len);
            b[1] = (unsigned char)(s->pt | (i == chunks - 1 ? 0x80 : 0));
            uint16_t q = (uint16_t)(seq + i);
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
            iov[batch].iov_base = b;
            iov[batch].iov_len = (size_t)out;
            memset(&msgs[batch], 0, sizeof(msgs[batch]));
            msgs[batch].msg_hdr.msg_name = &s->addr;
            msgs[batch].msg_hdr.msg_namelen = s->addr_len;
            msgs[batch].msg_hdr.msg_iov = &iov[batch];
            msgs[batch].msg_hdr.msg_iovlen = 1;
            if (++batch == HD_BATCH) {
                sent += hd_flush(s, msgs, batch, dropped);
                batch = 0;
            }
        }
        if (batch) sent += hd_flush(s, msgs, batch, dropped);
    }
    return sent;
}
"""

_MODULE = "_hoidong_nativesend"
_lock = threading.Lock()
_loaded: ModuleType | None = None
_failed = False
# Slot numbers of the process's one C table (see NativeSender.allocate).
_slots_lock = threading.Lock()
_free_slots: list[int] = []
_next_slot = 0


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


@dataclass(frozen=True)
class SlotState:
    """A native slot's stream as C last left it (see :meth:`NativeSender.state`)."""

    seq: int  # next sequence number
    picture_id: int  # next VP8 picture id
    last_ts: int | None  # RTP timestamp of the last frame sent (None: none yet)
    packets: int
    octets: int  # payload bytes (RTP header and SRTP trailer not counted)
    frames: int
    last_ntp: int  # 64-bit NTP send time of the last frame
    errors: int  # failed sendmmsg calls (socket full or closed)
    armed: bool


@dataclass(frozen=True)
class SentPacket:
    """Where a sequence number went: packet ``index`` of ``count`` of a kept frame."""

    bodies: list[bytes]
    video: bool
    index: int
    count: int
    ts: int
    picture_id: int


class NativeSender:
    """This process's native slots, and the frames forwarded through them.

    Slot numbers index a C array, so they are kept small: :meth:`allocate` gives the
    smallest free one. Each registered slot's SRTP session (and ``keep``) is held here
    until :meth:`remove`, so the C side never sees a freed session.

    Each slot's stream (next sequence number and picture id, timestamp offset, counters,
    which frames carried which sequence numbers) lives in C: a published frame reaches
    every armed slot in one :meth:`forward` call, with no Python per slot. Per published
    frame: :meth:`begin` (its bodies, kept for retransmission), then :meth:`forward`.
    A slot starts sending after :meth:`arm` and stops at :meth:`disarm`."""

    def __init__(self, lib: Any, kept_frames: int = 8192) -> None:
        assert _loaded is not None
        self._lib = lib
        self._ffi = _loaded.ffi
        self._allocated: set[int] = set()
        self._held: dict[int, tuple[Any, Any]] = {}
        self._dropped = self._ffi.new("int *")
        self._state = self._ffi.new("uint64_t[10]")
        self._found = self._ffi.new("uint32_t[5]")
        # Bodies of the last frames, by frame number, for retransmission (all slots
        # share them: a frame is kept once, not once per subscriber).
        self._kept: list[tuple[int, list[bytes], bool] | None] = [None] * kept_frames
        self._frame = 0
        self._data = b""
        self._sizes: Any = None
        self._chunks = 0
        self._video = False
        self.ntp = 0
        self.sent = 0
        self.lost = 0

    def allocate(self) -> int:
        """A slot number not in use (registered by :meth:`add`, or given back).

        The C table is one per process, so numbers are given out process-wide: two
        senders in one process (two apps in a test) never share a slot."""
        with _slots_lock:
            if _free_slots:
                number = heapq.heappop(_free_slots)
            else:
                global _next_slot
                number = _next_slot
                _next_slot += 1
            self._allocated.add(number)
            return number

    def add(self, slot: int, session: Any, fd: int, addr: tuple[str, int], header: bytes,
            abs_at: int, pt: int, keep: Any = None, *, seq: int = 0, picture_id: int = 0,
            ts_origin: int = 0) -> bool:
        """Register ``slot``: sends on socket ``fd`` to ``addr`` with ``session`` (a
        :class:`pylibsrtp.Session`) and the RTP ``header`` template (sequence number,
        timestamp and marker are written per packet, the 3-byte abs-send-time at
        ``abs_at`` unless it is -1). Its stream starts at sequence number ``seq``,
        ``picture_id`` and timestamp ``ts_origin``. False (and nothing registered) when
        the address is not an IP address or the header does not fit, or ``slot`` was
        not given by :meth:`allocate`."""
        if slot not in self._allocated:
            return False
        if self._lib.hd_add(slot, session_pointer(session), fd, addr[0].encode("ascii"),
                            int(addr[1])) != 0:
            return False
        if self._lib.hd_template(slot, header, len(header), abs_at, pt) != 0:
            self._lib.hd_remove(slot)
            return False
        self._lib.hd_start(slot, seq & 0xFFFF, picture_id & 0x7FFF, ts_origin & 0xFFFFFFFF)
        self._held[slot] = (session, keep)
        return True

    def remove(self, slot: int) -> Any:
        """Unregister ``slot`` and free its number; returns what was kept with it."""
        held = self._held.pop(slot, None)
        if slot not in self._allocated:
            return None  # not ours (or given back already): leave it alone
        self._allocated.discard(slot)
        self._lib.hd_remove(slot)
        with _slots_lock:
            heapq.heappush(_free_slots, slot)
        return None if held is None else held[1]

    def arm(self, slot: int, rtp_ts: int, step: int) -> bool:
        """Send on ``slot`` from the next :meth:`forward` on, whose frame (incoming
        timestamp ``rtp_ts``) goes out ``step`` ticks after the last one sent (or at the
        stream's origin). False when the slot is not registered."""
        return bool(self._lib.hd_arm(slot, rtp_ts & 0xFFFFFFFF, step & 0xFFFFFFFF) == 0)

    def disarm(self, slot: int) -> None:
        """Stop sending on ``slot`` (its stream continues from where it was at the next
        :meth:`arm`)."""
        self._lib.hd_disarm(slot)

    def state(self, slot: int) -> SlotState | None:
        """The slot's stream and counters, or None when it is not registered."""
        out = self._state
        if self._lib.hd_state(slot, out) != 0:
            return None
        return SlotState(seq=int(out[0]), picture_id=int(out[1]),
                         last_ts=int(out[2]) if out[3] else None, packets=int(out[4]),
                         octets=int(out[5]), frames=int(out[6]), last_ntp=int(out[7]),
                         errors=int(out[8]), armed=bool(out[9]))

    def sent_packet(self, slot: int, seq: int) -> SentPacket | None:
        """What ``slot`` sent with sequence number ``seq``, while its frame is kept."""
        out = self._found
        if self._lib.hd_lookup(slot, seq & 0xFFFF, out) != 0:
            return None
        kept = self._kept[int(out[0]) % len(self._kept)]
        if kept is None or kept[0] != int(out[0]):
            return None
        return SentPacket(bodies=kept[1], video=kept[2], index=int(out[1]),
                          count=int(out[2]), ts=int(out[3]), picture_id=int(out[4]))

    def begin(self, bodies: list[bytes], video: bool, ntp: int) -> None:
        """Start a frame: its payload bodies (one for audio, each ≤ 65 535 bytes) and
        its send time (64-bit NTP: every packet carries it as abs-send-time, and the
        slots' sender reports use it)."""
        self._frame = (self._frame + 1) & 0xFFFFFFFF
        self._kept[self._frame % len(self._kept)] = (self._frame, bodies, video)
        self._data = bodies[0] if len(bodies) == 1 else b"".join(bodies)
        self._sizes = self._ffi.new("uint16_t[]", [len(b) for b in bodies])
        self._chunks = len(bodies)
        self._video = video
        self.ntp = ntp

    def forward(self, slots: array[int], rtp_ts: int) -> int:
        """Protect and send the current frame (incoming timestamp ``rtp_ts``) on every
        armed slot of ``slots`` (one C call; the GIL is released meanwhile). Returns
        the packets sent; lost ones (slot not armed, socket full or closed, a replayed
        sequence number) are counted in :attr:`lost`."""
        if not slots or not self._chunks:
            return 0
        sent = int(self._lib.hd_forward(
            self._data, self._sizes, self._chunks, int(self._video),
            self._ffi.from_buffer("uint32_t[]", slots), len(slots), rtp_ts & 0xFFFFFFFF,
            self.ntp, self._frame, self._dropped))
        self.sent += sent
        self.lost += int(self._dropped[0])
        return sent

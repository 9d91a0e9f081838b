"""Forwarding's hot path: a frame goes out to a subscriber as SRTP in the same call.

aiortc's ``RTCRtpSender`` runs one task per outgoing track: each frame wakes it,
is packed into ``RtpPacket`` objects, serialised and sent through four layers of
coroutines. With 20 people that is ~30 000 task wake-ups and ~40 000 such packets a
second, more than a core of Python. :class:`FastPath` sends a slot's frames directly
from :meth:`media.forwarder.Forwarder.publish`: it patches a prepared RTP header
(sequence number, timestamp, marker, abs-send-time), protects it with the sender's own
SRTP session and hands it to the ICE pair's UDP transport, with no task and no objects
per packet. With the native send path (:mod:`media.nativesend`) the slot's stream is
handed to C once it is ready (:meth:`FastPath.arm`): the forwarder then sends each
published frame to all such slots in one C call, and :meth:`FastPath.sync` brings the
counters back for aiortc's sender reports.

aiortc's sender stays in charge of everything else: it sends RTCP sender reports from
counters this module keeps up to date, receives NACK/PLI/FIR, and answers a NACK
through :meth:`FastPath.retransmit` (rebound onto the sender) from the packets kept
here. Its own RTP task waits on a track that never yields. A path that cannot be used
(a TURN-relayed pair, a closed transport, an internal that moved) reports not ready;
the slot then drops frames rather than send them by two routes.

This reaches into aiortc and aioice internals (pinned versions; covered by
``tests/test_fastpath.py`` and every forwarding test).
"""

from __future__ import annotations

import logging
import random
import struct
import time
from collections.abc import Callable
from typing import Any

from aioice.ice import StunProtocol
from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import State
from aiortc.rtp import RtpPacket, wrap_rtx
from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]

from media.nativesend import NativeSender
from media.sendworker import SendWorkers

log = logging.getLogger(__name__)

PACKET_MAX = 1200  # payload bytes per RTP packet, like aiortc (room for SRTP and TURN)
_HISTORY = 512  # packets kept per slot for retransmission (~0.5 s of 500 kbps video)
_ABS_MARK = b"\xab\xcd\xef"
_NTP_EPOCH = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
_SRTP_TRAILER = 16 + 128  # SRTP_MAX_TRAILER_LEN in libsrtp 2


def ntp_now() -> int:
    """The current time as a 64-bit NTP timestamp (aiortc's own goes through datetime)."""
    return int((time.time() + _NTP_EPOCH) * 4294967296.0)


def _tx_key(dtls: Any) -> tuple[int, bytes]:
    """(libsrtp profile, key + salt) of ``dtls``'s sending direction, derived as aiortc's
    ``_setup_srtp`` does (RFC 5764 keying material; the DTLS server's half is second)."""
    selected = dtls._ssl.get_selected_srtp_profile()
    profile = next(p for p in dtls._srtp_profiles if p.openssl_profile == selected)
    view = dtls._ssl.export_keying_material(
        b"EXTRACTOR-dtls_srtp", 2 * (profile.key_length + profile.salt_length)
    )
    key = profile.get_key_and_salt(view, 1 if dtls._role == "server" else 0)
    return int(profile.libsrtp_profile), bytes(key)


def vp8_chunks(data: bytes) -> list[bytes]:
    """A VP8 frame cut into RTP payload bodies (the descriptor is added per slot)."""
    step = PACKET_MAX - 4
    return [data[i:i + step] for i in range(0, len(data), step)] or [b""]


class FastPath:
    """Sends one slot's frames on its transceiver's connection (see the module doc)."""

    def __init__(self, transceiver: RTCRtpTransceiver, kind: str,
                 workers: SendWorkers | None = None) -> None:
        self.kind = kind
        self._workers = workers
        self._worker: tuple[int, int] | None = None  # (worker, slot) when one sends for us
        self._local: int | None = None  # our slot in the in-process native table
        self._via_worker = False
        self._transceiver = transceiver
        self._sender: RTCRtpSender = transceiver.sender
        self._ready = False
        self._broken = False
        self._srtp: Any = None
        self._sendto: Callable[[bytes, Any], None] | None = None
        self._dgram: Any = None
        self._addr: Any = None
        self._template = bytearray()
        self._abs_at = -1
        self._pt = 0
        self._rtx_pt: int | None = None
        self._ext_map: Any = None
        self._seq = random.getrandbits(16)
        self._rtx_seq = random.getrandbits(16)
        self._ts_origin = random.getrandbits(32)
        self._picture_id = random.getrandbits(15)
        self._history: list[bytes | None] = [None] * _HISTORY
        self._synced_frames = 0
        # Set by the forwarder while the slot is in a native fan-out: takes it out.
        self.release: Callable[[], None] | None = None
        self.packets = 0
        self.octets = 0
        self.retransmitted = 0

    @property
    def broken(self) -> bool:
        """This path cannot be used for the connection (the slot falls back to aiortc's
        sender) or was closed."""
        return self._broken

    def ready(self) -> bool:
        """Whether frames can be sent now (resolves the connection on first success)."""
        if self._ready:
            if self._dgram.is_closing():
                self._ready = False
                self._broken = True
            return self._ready
        if self._broken:
            return False
        try:
            return self._resolve()
        except Exception:
            log.exception("fast forwarding unavailable; this slot stays idle")
            self._broken = True
            return False

    def _resolve(self) -> bool:
        sender = self._sender
        dtls: Any = sender.transport
        if not getattr(sender, "_RTCRtpSender__started", False) or dtls._state != State.CONNECTED:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return False
        if type(pair.protocol) is not StunProtocol:
            # A relayed pair sends through TURN: not on this path.
            raise RuntimeError(f"unsupported ICE pair protocol {type(pair.protocol).__name__}")
        codecs = self._transceiver._codecs
        main = codecs[0]
        if main.payloadType is None:
            raise RuntimeError("the negotiated codec has no payload type")
        self._pt = main.payloadType
        for codec in codecs:
            if codec.mimeType.lower().endswith("/rtx") and str(
                codec.parameters.get("apt")
            ) == str(main.payloadType):
                self._rtx_pt = codec.payloadType
        self._ext_map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        probe = RtpPacket(payload_type=self._pt, sequence_number=0, timestamp=0,
                          ssrc=sender._ssrc)
        probe.extensions.mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        probe.extensions.abs_send_time = int.from_bytes(_ABS_MARK, "big")
        self._template = bytearray(probe.serialize(self._ext_map))
        self._abs_at = self._template.find(_ABS_MARK)
        self._srtp = dtls._tx_srtp
        # libsrtp is called directly on a buffer of our own: pylibsrtp's protect()
        # allocates and copies twice per packet.
        self._srtp_ctx = self._srtp._srtp[0]
        self._cbuf = ffi.new("char[]", PACKET_MAX + 200 + _SRTP_TRAILER)
        self._buf = ffi.buffer(self._cbuf)
        self._len = ffi.new("int *")
        self._dgram = pair.protocol.transport
        self._sendto = self._dgram.sendto
        self._addr = pair.remote_addr
        sender._retransmit = self.retransmit  # type: ignore[method-assign]
        local = self._native_sender()
        if local is not None:
            slot = local.allocate()
            sock = self._dgram.get_extra_info("socket")
            if sock is not None and local.add(
                    slot, self._srtp, sock.fileno(), self._addr, bytes(self._template),
                    self._abs_at, self._pt, seq=self._seq, picture_id=self._picture_id,
                    ts_origin=self._ts_origin):
                self._local = slot
            else:
                local.remove(slot)
        if self._workers:
            self._worker = self._workers.add(
                self._dgram.get_extra_info("socket"), self._addr, *_tx_key(dtls)
            )
        self._ready = True
        return True

    def _native_sender(self) -> NativeSender | None:
        return self._workers.local if self._workers is not None else None

    @property
    def native(self) -> int | None:
        """The slot's number in the native sender (its stream lives in C), if it has one."""
        return self._local

    def arm(self, rtp_timestamp: int, step: int) -> int | None:
        """Native slots: send every frame the forwarder forwards from now on, the first
        (incoming timestamp ``rtp_timestamp``) ``step`` ticks after the last one sent.
        Returns the native slot number, or None (not native: :meth:`send` frames)."""
        local = self._native_sender()
        if self._local is None or local is None or not local.arm(self._local, rtp_timestamp,
                                                                  step):
            return None
        return self._local

    def disarm(self) -> None:
        """Native slots: stop sending (the stream resumes where it was at :meth:`arm`).
        The caller syncs, so that the frames sent before it are counted once."""
        local = self._native_sender()
        if self._local is not None and local is not None:
            local.disarm(self._local)

    def sync(self) -> int:
        """Native slots: bring this path's counters, and those aiortc's sender reports
        (RTCP sender reports, ``getStats``), up to date with what C sent. Returns the
        frames sent since the last sync (0 for a slot that is not native)."""
        local = self._native_sender()
        if self._local is None or local is None:
            return 0
        state = local.state(self._local)
        if state is None:
            return 0
        frames, self._synced_frames = state.frames - self._synced_frames, state.frames
        self._seq = state.seq
        self._picture_id = state.picture_id
        self.packets = state.packets
        self.octets = state.octets
        if state.last_ts is not None:
            sender: Any = self._sender
            sender._RTCRtpSender__ntp_timestamp = state.last_ntp
            sender._RTCRtpSender__rtp_timestamp = state.last_ts
            sender._RTCRtpSender__octet_count = state.octets
            sender._RTCRtpSender__packet_count = state.packets
        return frames

    def close(self) -> None:
        """The slot's connection is closing: its worker lets go of the socket."""
        if self.release is not None:
            self.release()  # out of the forwarder's native fan-out before the number goes
            self.release = None
        if self._worker is not None and self._workers:
            self._workers.remove(*self._worker)
        if self._local is not None and self._workers is not None and self._workers.local:
            self._workers.local.remove(self._local)
        self._worker = None
        self._local = None
        self._ready = False
        self._broken = True

    def send(self, data: bytes, rtp_timestamp: int, chunks: list[bytes] | None = None,
             via_worker: bool = False) -> None:
        """Send one frame (``rtp_timestamp`` in the codec clock, the slot's timeline).

        ``chunks`` is :func:`vp8_chunks` of ``data`` when the caller has it already
        (one cut per published frame, shared by every subscriber). With ``via_worker``
        the packets go to this slot's send worker (the caller flushes), otherwise they
        are encrypted and sent here. Both may alternate: they use different sequence
        numbers of the same stream, so no SRTP keystream is ever used twice.
        """
        ts = (self._ts_origin + rtp_timestamp) & 0xFFFFFFFF
        self._via_worker = via_worker and self._worker is not None
        template = self._template
        ntp = ntp_now()
        if self._abs_at >= 0:
            template[self._abs_at:self._abs_at + 3] = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        if self.kind == "video":
            bodies = chunks if chunks is not None else vp8_chunks(data)
            pid = self._picture_id
            self._picture_id = (pid + 1) & 0x7FFF
            tail = bytes((0x80, 0x80 | (pid >> 8), pid & 0xFF))
            last = len(bodies) - 1
            for i, body in enumerate(bodies):
                self._packet(template, ts, i == last,
                             (b"\x90" if i == 0 else b"\x80") + tail + body)
        else:
            self._packet(template, ts, True, data)
        sender: Any = self._sender
        sender._RTCRtpSender__ntp_timestamp = ntp
        sender._RTCRtpSender__rtp_timestamp = ts
        sender._RTCRtpSender__octet_count = self.octets
        sender._RTCRtpSender__packet_count = self.packets

    def _packet(self, template: bytearray, ts: int, marker: bool, payload: bytes) -> None:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        template[1] = self._pt | 0x80 if marker else self._pt
        struct.pack_into("!HI", template, 2, seq, ts)
        raw = bytes(template) + payload
        self._history[seq % _HISTORY] = raw
        self.packets += 1
        self.octets += len(payload)
        if self._via_worker:
            assert self._workers is not None and self._worker is not None
            self._workers.queue(self._worker[0], self._worker[1], raw)
            return
        size = len(raw)
        if size > len(self._buf) - _SRTP_TRAILER:
            return  # cannot happen with PACKET_MAX payloads; never overrun the buffer
        self._buf[0:size] = raw
        self._len[0] = size
        if lib.srtp_protect(self._srtp_ctx, self._cbuf, self._len) != 0:
            return  # e.g. a replayed sequence number: lost, like any lost packet
        assert self._sendto is not None
        self._sendto(self._buf[0:self._len[0]], self._addr)

    def _sent_packet(self, seq: int) -> bytes | None:
        """The RTP packet (unprotected) last sent with ``seq``, if still kept."""
        local = self._native_sender()
        if self._local is not None and local is not None:
            sent = local.sent_packet(self._local, seq)
            if sent is None:
                return None
            i, pid = sent.index, sent.picture_id
            header = bytearray(self._template)
            header[1] = self._pt | 0x80 if i == sent.count - 1 else self._pt
            struct.pack_into("!HI", header, 2, seq, sent.ts)
            if not sent.video:
                return bytes(header) + sent.bodies[i]
            return bytes(header) + bytes((0x90 if i == 0 else 0x80, 0x80, 0x80 | (pid >> 8),
                                          pid & 0xFF)) + sent.bodies[i]
        raw = self._history[seq % _HISTORY]
        if raw is not None and struct.unpack_from("!H", raw, 2)[0] == seq:
            return raw
        return None

    async def retransmit(self, sequence_number: int) -> None:
        """Answer a NACK for ``sequence_number`` (as RTX when negotiated)."""
        raw = self._sent_packet(sequence_number)
        if raw is None:
            return
        if self._rtx_pt is not None:
            packet = wrap_rtx(RtpPacket.parse(raw, self._ext_map), payload_type=self._rtx_pt,
                              sequence_number=self._rtx_seq, ssrc=self._sender._rtx_ssrc)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            raw = packet.serialize(self._ext_map)
        if self._ready and self._sendto is not None:
            self._sendto(self._srtp.protect(raw), self._addr)
            self.retransmitted += 1

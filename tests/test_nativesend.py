"""The native sender (``media.nativesend``): one frame to many slots in one C call, each
slot's stream kept in C. What arrives decrypts, with the receiver's own libsrtp session,
to exactly the RTP packets the Python path builds (header template, sequence numbers,
timestamp, marker, abs-send-time, VP8 descriptor, bodies), for both SRTP profiles;
timestamps wrap and never go back, a new source continues the slot's timeline; a sent
packet is found again for retransmission while its frame is kept; unknown, unarmed or
removed slots, closed sockets, oversized bodies and replayed sequence numbers lose
packets (counted), never crash or overrun."""

from __future__ import annotations

import os
import socket
import struct
from array import array
from collections.abc import Iterator

import pytest
from pylibsrtp import Policy, Session

from media import nativesend
from media.fastpath import vp8_chunks

PROFILES = {
    "aes-cm-hmac-sha1-80": (Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "aead-aes-128-gcm": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
}
# An RTP header with a one-byte extension block: mid "1" and abs-send-time (3 bytes).
TEMPLATE = (bytes([0x90, 96]) + struct.pack("!HII", 0, 0, 0x1234) + b"\xbe\xde\x00\x02"
            + b"\x10\x31" + b"\x22\xab\xcd\xef" + b"\x00\x00")
ABS_AT = TEMPLATE.find(b"\xab\xcd\xef")


def expected(seq: int, ts: int, marker: bool, payload: bytes, abs24: int, pt: int = 96
             ) -> bytes:
    """The packet as the Python path (``FastPath._packet``) builds it."""
    header = bytearray(TEMPLATE)
    header[1] = pt | (0x80 if marker else 0)
    struct.pack_into("!HI", header, 2, seq, ts)
    header[ABS_AT:ABS_AT + 3] = abs24.to_bytes(3, "big")
    return bytes(header) + payload


def vp8_payloads(bodies: list[bytes], pid: int) -> list[bytes]:
    tail = bytes((0x80, 0x80 | (pid >> 8), pid & 0xFF))
    return [(b"\x90" if i == 0 else b"\x80") + tail + b for i, b in enumerate(bodies)]


@pytest.fixture
def sender() -> nativesend.NativeSender:
    lib = nativesend.load()
    # CI has a C compiler: the native path must build there, not fall back silently.
    assert lib is not None, "the native send path did not build"
    return nativesend.NativeSender(lib)


@pytest.fixture
def udp() -> Iterator[tuple[socket.socket, socket.socket]]:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b):
        s.bind(("127.0.0.1", 0))
    b.settimeout(2)
    yield a, b
    a.close()
    b.close()


def sessions(profile: str = "aes-cm-hmac-sha1-80") -> tuple[Session, Session]:
    srtp_profile, size = PROFILES[profile]
    key = os.urandom(size)
    return (Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                           srtp_profile=srtp_profile)),
            Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND,
                           srtp_profile=srtp_profile)))


def send_frame(sender: nativesend.NativeSender, bodies: list[bytes], video: bool,
               slots: list[int], rtp_ts: int, ntp: int = 0x1234_5678_9ABC_DEF0) -> int:
    sender.begin(bodies, video, ntp)
    return sender.forward(array("I", slots), rtp_ts)


def register(sender: nativesend.NativeSender, tx: Session, sock: socket.socket,
             to: tuple[str, int], pt: int = 96, *, seq: int = 0, pid: int = 0,
             origin: int = 0, keep: object = None) -> int:
    slot = sender.allocate()
    assert sender.add(slot, tx, sock.fileno(), to, TEMPLATE, ABS_AT, pt, keep, seq=seq,
                      picture_id=pid, ts_origin=origin)
    return slot


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_a_frame_reaches_every_slot_as_the_python_path_builds_it(
        sender: nativesend.NativeSender, udp: tuple[socket.socket, socket.socket],
        profile: str) -> None:
    a, b = udp
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    c.settimeout(2)
    (tx1, rx1), (tx2, rx2) = sessions(profile), sessions(profile)
    # Slot two's sequence numbers wrap around 65535 inside the frame.
    one = register(sender, tx1, a, b.getsockname(), 96, seq=100, pid=5, origin=9000)
    two = register(sender, tx2, a, c.getsockname(), 97, seq=65534, pid=0x7FFF, origin=77)
    assert one != two
    incoming = 123_456
    assert sender.arm(one, incoming, 3000) and sender.arm(two, incoming, 3000)
    ntp = 0x1234_5678_9ABC_DEF0
    abs24 = (ntp >> 14) & 0xFFFFFF
    frame = os.urandom(3000)
    bodies = vp8_chunks(frame)
    assert len(bodies) == 3
    assert send_frame(sender, bodies, True, [one, two], incoming, ntp) == 6
    for rx, sock, seq0, ts, pid, pt in ((rx1, b, 100, 9000, 5, 96),
                                        (rx2, c, 65534, 77, 0x7FFF, 97)):
        for i, payload in enumerate(vp8_payloads(bodies, pid)):
            data = sock.recv(2048)
            assert payload[4:] not in data  # protected: the body is not in clear
            assert rx.unprotect(data) == expected((seq0 + i) & 0xFFFF, ts, i == 2, payload,
                                                   abs24, pt)
    # The next frame: sequence numbers, picture id and timestamp go on from there.
    assert send_frame(sender, [b"k" * 50], True, [one], incoming + 3003, ntp) == 1
    assert rx1.unprotect(b.recv(2048)) == expected(103, 9000 + 3003, True,
                                                   vp8_payloads([b"k" * 50], 6)[0], abs24)
    audio = os.urandom(120)
    assert send_frame(sender, [audio], False, [one], incoming + 6000, ntp) == 1
    assert rx1.unprotect(b.recv(2048)) == expected(104, 15000, True, audio, abs24)
    assert sender.lost == 0
    state = sender.state(one)
    assert state is not None
    assert (state.seq, state.picture_id, state.last_ts, state.frames, state.packets) == (
        105, 7, 15000, 3, 5)
    assert state.octets == 3000 + 4 * 3 + 50 + 4 + 120 and state.last_ntp == ntp
    assert state.armed and state.errors == 0
    c.close()


def test_timestamps_wrap_and_never_go_back_and_a_new_source_continues_the_timeline(
        sender: nativesend.NativeSender, udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    tx, rx = sessions()
    slot = register(sender, tx, a, b.getsockname(), origin=0xFFFF_FF00)

    def ts_of(rtp_ts: int) -> int:
        assert send_frame(sender, [b"a" * 20], False, [slot], rtp_ts) == 1
        return int(struct.unpack_from("!I", rx.unprotect(b.recv(2048)), 4)[0])

    assert sender.state(slot) == nativesend.SlotState(
        seq=0, picture_id=0, last_ts=None, packets=0, octets=0, frames=0, last_ntp=0,
        errors=0, armed=False)
    assert send_frame(sender, [b"x"], False, [slot], 5) == 0  # not armed yet: lost
    assert sender.lost == 1
    assert sender.arm(slot, 0xFFFF_FE00, 960)
    assert ts_of(0xFFFF_FE00) == 0xFFFF_FF00
    assert ts_of(0xFFFF_FE80) == 0xFFFF_FF80
    assert ts_of(0x0000_0040) == 0x0000_0140  # both clocks wrapped: still forward
    assert ts_of(0x0000_0000) == 0x0000_0141  # a frame from the past: one tick on
    # Another publisher (its own clock) on the same slot continues one step later.
    sender.disarm(slot)
    assert send_frame(sender, [b"x"], False, [slot], 7) == 0
    assert sender.arm(slot, 42_000_000, 960)
    assert ts_of(42_000_000) == 0x0000_0141 + 960
    assert ts_of(42_000_960) == 0x0000_0141 + 1920


def test_a_sent_packet_is_found_while_its_frame_is_kept(
        udp: tuple[socket.socket, socket.socket]) -> None:
    lib = nativesend.load()
    assert lib is not None
    sender = nativesend.NativeSender(lib, kept_frames=4)
    a, b = udp
    tx, _ = sessions()
    slot = register(sender, tx, a, b.getsockname(), seq=65535, pid=9, origin=500)
    assert sender.arm(slot, 0, 3000)
    bodies = vp8_chunks(os.urandom(2500))
    assert send_frame(sender, bodies, True, [slot], 0) == 3
    found = sender.sent_packet(slot, 0)  # the frame's second packet (after 65535)
    assert found == nativesend.SentPacket(bodies=bodies, video=True, index=1, count=3,
                                          ts=500, picture_id=9)
    assert sender.sent_packet(slot, 2) is None  # not sent yet
    assert sender.sent_packet(sender.allocate(), 0) is None  # nothing sent on it
    for k in range(4):  # four more frames: the first one's bodies are no longer kept
        send_frame(sender, [b"f" * 10], False, [slot], 3000 * (k + 1))
    assert sender.sent_packet(slot, 0) is None
    assert sender.sent_packet(slot, 5) is not None


def test_what_cannot_be_sent_is_lost_and_counted(
        sender: nativesend.NativeSender, udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    tx, rx = sessions()
    slot = register(sender, tx, a, b.getsockname(), seq=2)
    assert sender.arm(slot, 0, 960)
    unknown = sender.allocate()  # given out, never registered
    assert not sender.arm(unknown, 0, 960)
    body = [b"x" * 100]
    assert send_frame(sender, body, False, [unknown], 0) == 0  # no such slot
    assert sender.lost == 1
    assert send_frame(sender, [b"y" * 1400], False, [slot], 0) == 0  # too big
    assert sender.lost == 2
    assert send_frame(sender, body, False, [slot], 960) == 1
    assert rx.unprotect(b.recv(2048))[12:] != b""
    # The same sequence number again would reuse SRTP keystream: libsrtp refuses it.
    again = register(sender, tx, a, b.getsockname(), seq=3)
    assert sender.arm(again, 0, 960)
    assert send_frame(sender, body, False, [again], 0) == 0
    assert sender.lost == 3
    assert sender.forward(array("I"), 0) == 0  # no slot: nothing sent, nothing lost
    assert (sender.sent, sender.lost) == (1, 3)


def test_a_removed_slot_sends_nothing_and_its_number_is_reused(
        sender: nativesend.NativeSender, udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    tx, _ = sessions()
    slot = register(sender, tx, a, b.getsockname(), keep="kept")
    assert sender.arm(slot, 0, 960)
    assert sender.remove(slot) == "kept"
    assert sender.state(slot) is None and not sender.arm(slot, 0, 960)
    assert send_frame(sender, [b"z" * 10], False, [slot], 0) == 0
    b.settimeout(0.2)
    with pytest.raises(TimeoutError):
        b.recv(2048)
    assert sender.allocate() == slot


def test_a_closed_socket_loses_its_packets(sender: nativesend.NativeSender) -> None:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx, _ = sessions()
    slot = register(sender, tx, a, ("127.0.0.1", 9))
    assert sender.arm(slot, 0, 3000)
    a.close()  # the connection went away before its slot was removed
    bodies = vp8_chunks(b"v" * 2000)
    assert send_frame(sender, bodies, True, [slot], 0) == 0
    assert sender.lost == len(bodies)
    state = sender.state(slot)
    assert state is not None and state.errors == 1
    sender.remove(slot)


def test_registration_checks_address_and_template(sender: nativesend.NativeSender) -> None:
    tx, _ = sessions()
    slot = sender.allocate()
    assert not sender.add(slot, tx, 0, ("not-an-address", 5000), TEMPLATE, ABS_AT, 96)
    assert not sender.add(slot, tx, 0, ("127.0.0.1", 5000), TEMPLATE[:8], -1, 96)
    assert not sender.add(slot, tx, 0, ("127.0.0.1", 5000), TEMPLATE * 4, -1, 96)
    assert not sender.add(slot, tx, 0, ("127.0.0.1", 5000), TEMPLATE, len(TEMPLATE), 96)
    assert sender.state(slot) is None
    assert sender.add(slot, tx, 0, ("::1", 5000), TEMPLATE, -1, 96)
    assert sender.add(slot, tx, 0, ("192.0.2.7", 5000), TEMPLATE, ABS_AT, 96)
    sender.remove(slot)
    assert array("I").itemsize == 4  # slot numbers are 32-bit words, as the C side reads

"""The native sender (``media.nativesend``): one frame to many slots in one C call.
What arrives decrypts, with the receiver's own libsrtp session, to exactly the RTP
packets the Python path builds (header template, sequence numbers, timestamp, marker,
abs-send-time, VP8 descriptor, bodies), for both SRTP profiles; unknown or removed
slots, closed sockets, oversized bodies and replayed sequence numbers lose packets
(counted), never crash or overrun."""

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
               plan: list[tuple[int, int, int, int]], ntp: int = 0x1234_5678_9ABC_DEF0
               ) -> int:
    sender.begin(bodies, video, ntp)
    for item in plan:
        sender.plan(*item)
    before = sender.sent
    sender.flush()
    return sender.sent - before


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_a_frame_reaches_every_slot_as_the_python_path_builds_it(
        sender: nativesend.NativeSender, udp: tuple[socket.socket, socket.socket],
        profile: str) -> None:
    a, b = udp
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    c.settimeout(2)
    (tx1, rx1), (tx2, rx2) = sessions(profile), sessions(profile)
    one, two = sender.allocate(), sender.allocate()
    assert one != two
    assert sender.add(one, tx1, a.fileno(), b.getsockname(), TEMPLATE, ABS_AT, 96)
    assert sender.add(two, tx2, a.fileno(), c.getsockname(), TEMPLATE, ABS_AT, 97)
    ntp = 0x1234_5678_9ABC_DEF0
    abs24 = (ntp >> 14) & 0xFFFFFF
    frame = os.urandom(3000)
    bodies = vp8_chunks(frame)
    assert len(bodies) == 3
    # Slot two's sequence numbers wrap around 65535 inside the frame.
    assert send_frame(sender, bodies, True, [(one, 100, 9000, 5), (two, 65534, 77, 0x7FFF)],
                      ntp) == 6
    for rx, sock, seq0, ts, pid, pt in ((rx1, b, 100, 9000, 5, 96),
                                        (rx2, c, 65534, 77, 0x7FFF, 97)):
        for i, payload in enumerate(vp8_payloads(bodies, pid)):
            data = sock.recv(2048)
            assert payload[4:] not in data  # protected: the body is not in clear
            assert rx.unprotect(data) == expected((seq0 + i) & 0xFFFF, ts, i == 2, payload,
                                                   abs24, pt)
    audio = os.urandom(120)
    assert send_frame(sender, [audio], False, [(one, 103, 9960, 0)], ntp) == 1
    assert rx1.unprotect(b.recv(2048)) == expected(103, 9960, True, audio, abs24)
    assert sender.lost == 0
    c.close()


def test_what_cannot_be_sent_is_lost_and_counted(
        sender: nativesend.NativeSender, udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    tx, rx = sessions()
    slot = sender.allocate()
    assert sender.add(slot, tx, a.fileno(), b.getsockname(), TEMPLATE, ABS_AT, 96)
    body = [b"x" * 100]
    assert send_frame(sender, body, False, [(slot + 50, 1, 0, 0)]) == 0  # no such slot
    assert sender.lost == 1
    assert send_frame(sender, [b"y" * 1400], False, [(slot, 1, 0, 0)]) == 0  # too big
    assert sender.lost == 2
    assert send_frame(sender, body, False, [(slot, 2, 0, 0)]) == 1
    assert rx.unprotect(b.recv(2048))[12:] != b""
    # The same sequence number again would reuse SRTP keystream: libsrtp refuses it.
    assert send_frame(sender, body, False, [(slot, 2, 0, 0)]) == 0
    assert sender.lost == 3
    sender.begin(body, False, 0)
    sender.flush()  # nothing planned: nothing sent, nothing lost
    assert (sender.sent, sender.lost) == (1, 3)


def test_a_removed_slot_sends_nothing_and_its_number_is_reused(
        sender: nativesend.NativeSender, udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    tx, _ = sessions()
    slot = sender.allocate()
    assert sender.add(slot, tx, a.fileno(), b.getsockname(), TEMPLATE, ABS_AT, 96,
                      keep="kept")
    assert sender.remove(slot) == "kept"
    assert send_frame(sender, [b"z" * 10], False, [(slot, 1, 0, 0)]) == 0
    b.settimeout(0.2)
    with pytest.raises(TimeoutError):
        b.recv(2048)
    assert sender.allocate() == slot


def test_a_closed_socket_loses_its_packets(sender: nativesend.NativeSender) -> None:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx, _ = sessions()
    slot = sender.allocate()
    assert sender.add(slot, tx, a.fileno(), ("127.0.0.1", 9), TEMPLATE, ABS_AT, 96)
    a.close()  # the connection went away before its slot was removed
    bodies = vp8_chunks(b"v" * 2000)
    assert send_frame(sender, bodies, True, [(slot, 1, 0, 0)]) == 0
    assert sender.lost == len(bodies)
    sender.remove(slot)


def test_registration_checks_address_and_template(sender: nativesend.NativeSender) -> None:
    tx, _ = sessions()
    slot = sender.allocate()
    assert not sender.add(slot, tx, 0, ("not-an-address", 5000), TEMPLATE, ABS_AT, 96)
    assert not sender.add(slot, tx, 0, ("127.0.0.1", 5000), TEMPLATE[:8], -1, 96)
    assert not sender.add(slot, tx, 0, ("127.0.0.1", 5000), TEMPLATE * 4, -1, 96)
    assert not sender.add(slot, tx, 0, ("127.0.0.1", 5000), TEMPLATE, len(TEMPLATE), 96)
    assert sender.add(slot, tx, 0, ("::1", 5000), TEMPLATE, -1, 96)
    assert sender.add(slot, tx, 0, ("192.0.2.7", 5000), TEMPLATE, ABS_AT, 96)
    sender.remove(slot)
    assert array("I").itemsize == 4  # the plan's words are 32-bit, as the C side reads

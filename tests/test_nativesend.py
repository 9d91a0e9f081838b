"""The native batch sender (``media.nativesend``): what it sends decrypts, with the
receiver's own libsrtp session, to exactly the packets given, in order; malformed
batches, unknown slots, closed sockets and replayed sequence numbers lose packets
(counted), never crash or overrun; the send worker uses it too."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from pylibsrtp import Policy, Session

from media import nativesend
from media.sendworker import SendWorkers

PROFILES = {
    "aes-cm-hmac-sha1-80": (Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "aead-aes-128-gcm": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
}


def rtp(seq: int, ssrc: int = 1234, payload: bytes = b"x" * 100, marker: bool = False
        ) -> bytes:
    return bytes([0x80, 96 | (0x80 if marker else 0)]) + struct.pack(
        "!HII", seq, seq * 3000, ssrc) + payload


def batch(*items: tuple[int, bytes]) -> bytes:
    return b"".join(struct.pack("!IH", slot, len(p)) + p for slot, p in items)


@pytest.fixture
def table() -> nativesend.NativeSlots:
    lib = nativesend.load()
    # CI has a C compiler: the native path must build there, not fall back silently.
    assert lib is not None, "the native send path did not build"
    return nativesend.NativeSlots(lib)


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


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_packets_arrive_protected_and_decrypt_to_the_same_bytes(
        table: nativesend.NativeSlots, udp: tuple[socket.socket, socket.socket],
        profile: str) -> None:
    a, b = udp
    tx, rx = sessions(profile)
    tx2, rx2 = sessions(profile)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    c.settimeout(2)
    one, two = table.allocate(), table.allocate()
    assert one != two
    assert table.add(one, tx, a.fileno(), b.getsockname())
    assert table.add(two, tx2, a.fileno(), c.getsockname())
    mine = [rtp(i, payload=bytes([i]) * (50 + i * 200)) for i in range(6)]
    theirs = [rtp(i, ssrc=99, marker=True) for i in range(3)]
    # Interleaved: each run of one slot's packets is one sendmmsg.
    items = [(one, mine[0]), (one, mine[1]), (two, theirs[0]), (one, mine[2]),
             (two, theirs[1]), (two, theirs[2]), (one, mine[3]), (one, mine[4]),
             (one, mine[5])]
    assert table.send(batch(*items)) == (9, 0)
    for expected in mine:
        data = b.recv(2048)
        assert data != expected  # protected: the payload is not in clear
        assert data[:12] == expected[:12]  # SRTP leaves the header as it is
        assert rx.unprotect(data) == expected
    for expected in theirs:
        assert rx2.unprotect(c.recv(2048)) == expected
    c.close()


def test_malformed_batches_lose_packets_not_the_process(
        table: nativesend.NativeSlots, udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    tx, rx = sessions()
    slot = table.allocate()
    assert table.add(slot, tx, a.fileno(), b.getsockname())
    good = rtp(1)
    assert table.send(batch((slot + 50, rtp(0)))) == (0, 0)  # no such slot: skipped
    assert table.send(batch((slot, b"\x80\x60short"))) == (0, 1)  # not an RTP header
    assert table.send(batch((slot, rtp(2, payload=b"y" * 1400)))) == (0, 1)  # too big
    cut = batch((slot, good))
    assert table.send(cut[:-5]) == (0, 0)  # length beyond the end: not a packet
    assert table.send(b"\x00\x00") == (0, 0)
    assert table.send(b"") == (0, 0)
    assert table.send(cut + b"\x00\x00\x00") == (1, 0)  # a cut tail after a good one
    assert rx.unprotect(b.recv(2048)) == good
    # The same sequence number again would reuse SRTP keystream: libsrtp refuses it.
    assert table.send(cut) == (0, 1)


def test_a_removed_slot_sends_nothing_and_its_number_is_reused(
        table: nativesend.NativeSlots, udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    tx, _ = sessions()
    slot = table.allocate()
    assert table.add(slot, tx, a.fileno(), b.getsockname(), keep="kept")
    assert table.remove(slot) == "kept"
    assert table.send(batch((slot, rtp(1)))) == (0, 0)
    b.settimeout(0.2)
    with pytest.raises(TimeoutError):
        b.recv(2048)
    assert table.allocate() == slot


def test_a_closed_socket_loses_its_packets(table: nativesend.NativeSlots) -> None:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx, _ = sessions()
    slot = table.allocate()
    assert table.add(slot, tx, a.fileno(), ("127.0.0.1", 9))
    a.close()  # the connection went away before its slot was removed
    assert table.send(batch((slot, rtp(1)), (slot, rtp(2)))) == (0, 2)
    table.remove(slot)


def test_addresses(table: nativesend.NativeSlots) -> None:
    tx, _ = sessions()
    slot = table.allocate()
    assert not table.add(slot, tx, 0, ("not-an-address", 5000))
    assert table.add(slot, tx, 0, ("::1", 5000))
    assert table.add(slot, tx, 0, ("192.0.2.7", 5000))
    table.remove(slot)


def test_the_send_worker_sends_through_it(udp: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp
    profile, size = PROFILES["aes-cm-hmac-sha1-80"]
    key = os.urandom(size)
    rx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
    pool = SendWorkers(1, native=True)
    try:
        assert pool.local is not None
        assert "--native" in pool._procs[0].args  # type: ignore[operator]
        added = pool.add(a, b.getsockname(), profile, key)
        assert added is not None
        worker, slot = added
        packets = [rtp(i) for i in range(20)]
        for p in packets:
            pool.queue(worker, slot, p)
        pool.flush()
        assert [rx.unprotect(b.recv(2048)) for _ in packets] == packets
        pool.remove(worker, slot)
        time.sleep(0.2)  # the R message is handled before the next D
        again = pool.add(a, b.getsockname(), profile, key)
        assert again is not None and again[1] == slot  # the number is reused
    finally:
        pool.close()

"""The forwarding hot path (``media.fastpath``): frames reach subscribers as SRTP sent
from the forwarding call itself or by a send worker process (``media.sendworker``, with
the connection's own key and socket); aiortc's sender keeps reporting and
retransmitting; the per-track sender path stays available (``fast_forwarding`` off)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from media.fastpath import PACKET_MAX, vp8_chunks
from server.state import LIVE
from tests.conftest import make_settings, start_app
from tests.test_forwarding import close_all, join_with_media
from tests.test_signalling import invite, new_session


def test_vp8_chunks_cover_the_frame() -> None:
    frame = bytes(range(256)) * 20  # 5120 bytes
    chunks = vp8_chunks(frame)
    assert b"".join(chunks) == frame
    assert all(len(c) + 4 <= PACKET_MAX for c in chunks)
    assert vp8_chunks(b"") == [b""]


@pytest.mark.parametrize(
    ("fast", "workers", "native"),
    [(True, 1, True), (True, 1, False), (True, 0, True), (True, 0, False), (False, 0, False)],
    ids=["fast-send-worker-native", "fast-send-worker-python", "fast-in-process-native",
         "fast-in-process-python", "aiortc-sender"])
async def test_every_path_delivers_every_stream(tmp_path: Path, fast: bool, workers: int,
                                                native: bool) -> None:
    # Fan-out 1 is enough for the worker here (the default keeps small meetings
    # in-process).
    settings = make_settings(tmp_path, fast_forwarding=fast, send_workers=workers,
                             send_worker_fanout=1, transcribe_on_end=False,
                             native_send=native)
    async for r in start_app(settings):
        sid = await new_session(r)
        people = [await invite(r, sid, name, role) for name, role in
                  [("Chủ tịch An", "chair"), ("Thành viên Bình", "member")]]
        clients = [await join_with_media(r, sid, who, receive_slots=1) for who in people]
        try:
            await asyncio.sleep(4)
            a, b = clients
            for me, other in ((a, b), (b, a)):
                assert len(me.frames_from(other.who.id, "video")) > 25
                assert len(me.frames_from(other.who.id, "audio")) > 100
            room = r.app[LIVE]._rooms[sid]
            slots = [slot for member in room.members() for slot in room.assignments(member)]
            assert len(slots) == 4
            # Native slots' streams live in C: their counters reach Python (and
            # aiortc's sender reports) at the forwarder's periodic sync.
            room.forwarder.sync()
            for slot in slots:
                fast_path = slot.track.fast
                if not fast:
                    assert fast_path is None
                    continue
                assert fast_path is not None and fast_path.ready()
                # The native path replaces the workers; else a worker process sends, or
                # the server itself.
                assert (fast_path._local is not None) == native
                assert (slot.track in room.forwarder._armed_by) == native
                assert (fast_path._worker is not None) == (workers > 0 and not native)
                assert fast_path.packets >= slot.track.delivered > 0
                # aiortc's sender reports what the fast path sent (RTCP SR counters) and
                # answers NACKs through it.
                sender = fast_path._sender
                assert sender._RTCRtpSender__packet_count == fast_path.packets  # type: ignore[attr-defined]
                assert sender._retransmit == fast_path.retransmit
                before = fast_path.retransmitted  # real NACKs may have come meanwhile
                await fast_path.retransmit((fast_path._seq - 1) & 0xFFFF)  # just sent: kept
                assert fast_path.retransmitted == before + 1
                await fast_path.retransmit((fast_path._seq + 1000) & 0xFFFF)  # never sent
                assert fast_path.retransmitted == before + 1
            pool = r.app[LIVE]._workers
            # The native path sent them (and lost none on loopback), with no worker.
            assert (pool.local is not None) == native
            assert not pool._procs if native else len(pool._procs) == workers
            if pool.local is not None:
                assert pool.local.sent > 100
                assert pool.local.lost == 0
            # One leaves: its slots leave the native fan-out before their numbers are
            # given back (a reused number must never get another publisher's frames).
            await close_all(clients[1:])
            for _ in range(100):
                if len(room.members()) == 1:
                    break
                await asyncio.sleep(0.1)
            assert len(room.members()) == 1
            # Nobody is left to publish to the one who stays: all four slots are idle.
            assert all(slot.track.source is None for slot in slots)
            assert not room.forwarder._armed_by
            # Disarmed slots counted every frame C sent on them, once.
            for slot in slots:
                fast_path = slot.track.fast
                if native and fast_path is not None:
                    assert slot.track.delivered == fast_path._synced_frames > 0
            assert sum(len(a) for a in room.forwarder._armed.values()) == 0
            if pool.local is not None:
                assert len(pool.local._held) == 2  # the one who stays keeps two slots
        finally:
            await close_all(clients)


async def test_an_unusable_fast_path_falls_back_to_aiortcs_sender() -> None:
    from aiortc import RTCPeerConnection

    from media.fastpath import FastPath
    from media.forwarder import SlotTrack
    from media.frames import EncodedFrame

    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio", direction="sendonly")
        fast = FastPath(transceiver, "audio")
        slot = SlotTrack("audio", fast=fast)
        frame = EncodedFrame(kind="audio", codec="opus", data=b"\xfc\x01", rtp_timestamp=960,
                             clock_rate=48000, received_at=0.0)
        # Not connected yet: not ready, not broken; the frame is dropped, not queued.
        slot.push(frame)
        assert not fast.ready() and not fast.broken
        assert (slot.dropped, slot._queue.qsize()) == (1, 0)
        # Unusable for this connection (closed, or internals it cannot use): the slot
        # hands its frames to aiortc's sender instead of going quiet.
        fast.close()
        slot.push(frame)
        assert slot.fast is None and slot._queue.qsize() == 1
        assert bytes(await slot.recv()) == b"\xfc\x01"
    finally:
        await pc.close()

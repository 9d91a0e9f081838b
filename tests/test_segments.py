"""Segmented recording through the server: segments hashed, recorded and stored during
the session; a storage outage (the S3 server stopped, then started again) loses
nothing; damaged segment files are left out of the continuous file and reported."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import av
from moto.server import ThreadedMotoServer

from media.assemble import Piece, assemble
from server.state import STORE
from tests import figures
from tests.conftest import Running, make_settings, start_app
from tests.s3server import S3_TEST_CREDENTIALS
from tests.test_signalling import audit, invite, join_with_media, new_session

# The issue asks for a 60 s outage; HOIDONG_TEST_OUTAGE_S shortens it for local runs.
OUTAGE_S = float(os.environ.get("HOIDONG_TEST_OUTAGE_S", "60"))


async def segments(r: Running, sid: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await r.api("GET", f"/api/sessions/{sid}/segments")
    return result


async def until(check: Any, *args: Any, within: float, every: float = 0.5) -> Any:
    """``await check(*args)`` until it returns something true (that is returned)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await check(*args)
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(f"not within {within} s")


async def check_stored(r: Running, rows: list[dict[str, Any]]) -> None:
    """Every segment is in the store with the hash recorded when it closed."""
    for row in rows:
        data = await r.app[STORE].get_bytes(row["object_key"])
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row
        assert len(data) == row["size"]


async def test_segments_are_kept_during_the_session(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, segment_s=1.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        member = await invite(r, sid, "Thành viên", "member")
        client = await join_with_media(r, member, sid)

        rows = await until(_three_stored_each, r, sid, within=20)
        # Still connected: segments are stored while the session goes on.
        await check_stored(r, [x for x in rows if x["status"] == "stored"])
        events = await audit(r, sid)
        closed = [e for e in events if e["kind"] == "recording.segment_closed"]
        assert {e["data"]["sha256"] for e in closed} >= {x["sha256"] for x in rows}
        await client.leave()
        recs = await until(_stored_recordings, r, sid, 2, within=20)
        rows = await segments(r, sid)
        assert all(x["status"] == "stored" for x in rows)
        for kind in ("audio", "video"):
            mine = sorted((x for x in rows if x["kind"] == kind), key=lambda x: x["seq"])
            assert [x["seq"] for x in mine] == list(range(len(mine)))
            rec = next(x for x in recs if x["kind"] == kind)
            # The continuous file holds every frame of its segments.
            assert rec["frames"] == sum(x["frames"] for x in mine)
            assert abs(rec["duration_s"] - (mine[-1]["offset_s"] + mine[-1]["duration_s"])) < 0.2
        stored_event = [e for e in await audit(r, sid) if e["kind"] == "recording.stored"]
        assert all(e["data"]["segments"] >= 2 for e in stored_event)
        # Stored and assembled: the spool holds nothing more of them.
        spool = settings.spool_dir / sid
        assert not [p for p in spool.rglob("*.webm")], list(spool.rglob("*"))


async def _three_stored_each(r: Running, sid: str) -> list[dict[str, Any]] | None:
    rows = await segments(r, sid)
    stored = [x for x in rows if x["status"] == "stored"]
    kinds = {x["kind"] for x in stored}
    return rows if kinds == {"audio", "video"} and len(stored) >= 6 else None


def _in_spool(spool: Path, keys: list[str]) -> bool:
    names = {p.name for p in spool.rglob("*.webm")}
    return all(Path(k).name.split("-", 1)[1] in names for k in keys)


async def _stored_recordings(r: Running, sid: str, count: int) -> list[dict[str, Any]] | None:
    recs: list[dict[str, Any]] = await r.api("GET", f"/api/sessions/{sid}/recordings")
    done = [x for x in recs if x["status"] == "stored"]
    return done if len(done) >= count else None


async def test_a_storage_outage_loses_nothing(tmp_path: Path) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    access, secret = S3_TEST_CREDENTIALS
    settings = make_settings(
        tmp_path, segment_s=2.0, transcribe_on_end=False, storage_backend="minio",
        s3_endpoint=f"{host}:{port}", s3_access_key=access, s3_secret_key=secret,
        s3_bucket="hoidong-outage", storage_retry_max_s=2.0,
    )
    try:
        async for r in start_app(settings):
            sid = await new_session(r)
            member = await invite(r, sid, "Thành viên", "member")
            client = await join_with_media(r, member, sid)
            await until(_any_stored, r, sid, within=20)
            server.stop()  # the store goes away mid-session
            down_at = time.monotonic()
            await keep_alive(client.ws, OUTAGE_S)
            rows = await segments(r, sid)
            waiting = [x for x in rows if x["status"] == "spooled"]
            # Segments kept closing (hashed, recorded) and wait in the spool.
            assert len(waiting) >= 2, rows
            assert _in_spool(r.settings.spool_dir, [x["object_key"] for x in waiting])
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()  # back, same address; the bucket lives in this process
            await until(_all_stored, r, sid, len(rows), within=40)
            assert time.monotonic() - down_at >= OUTAGE_S
            await client.leave()
            await until(_stored_recordings, r, sid, 2, within=30)
            rows = await segments(r, sid)
            assert all(x["status"] == "stored" for x in rows), rows
            await check_stored(r, rows)
            for kind in ("audio", "video"):
                seqs = sorted(x["seq"] for x in rows if x["kind"] == kind)
                assert seqs == list(range(len(seqs)))  # no segment missing
            figures.record("storage_outage", {
                "outage_s": OUTAGE_S, "segments": len(rows),
                "spooled_during_outage": len(waiting), "lost_segments": 0,
                "command": "HOIDONG_WRITE_RESULTS=1 .venv/bin/pytest "
                           "tests/test_segments.py::test_a_storage_outage_loses_nothing",
            })  # lost_segments: every check above passed (seq 0..n-1, each stored, hashed)
    finally:
        server.stop()


async def keep_alive(ws: Any, seconds: float) -> None:
    """Wait, pinging as a browser does (the server's heartbeat drops a silent socket)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await ws.send_json({"type": "ping"})
        try:
            while True:
                await ws.receive(timeout=min(5.0, max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            pass


async def _any_stored(r: Running, sid: str) -> bool:
    return any(x["status"] == "stored" for x in await segments(r, sid))


async def _all_stored(r: Running, sid: str, at_least: int) -> bool:
    rows = await segments(r, sid)
    return len(rows) >= at_least and all(x["status"] == "stored" for x in rows)


def _segment(path: Path, start: int, frames: int) -> Path:
    """A small Opus segment (frames of 20 ms from 0)."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    out = av.open(str(path), "w", format="webm")
    stream = out.add_stream("libopus", rate=48000, layout="stereo")
    import numpy as np

    for i in range(frames):
        frame = av.AudioFrame.from_ndarray(
            (np.sin(np.arange(960 * 2) / 20 + i) * 3000).astype(np.int16).reshape(1, -1),
            format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = i * 960
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return path


def test_damaged_segments_are_left_out_and_reported(tmp_path: Path) -> None:
    good = [_segment(tmp_path / f"s{i}.webm", 0, 50) for i in range(3)]
    truncated = tmp_path / "truncated.webm"
    data = good[1].read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    corrupt = tmp_path / "corrupt.webm"
    corrupt.write_bytes(b"\x1aE\xdf\xa3" + os.urandom(3000))
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    pieces = [Piece(good[0], 0.0), Piece(corrupt, 1.0), Piece(truncated, 2.0),
              Piece(empty, 3.0), Piece(tmp_path / "missing.webm", 4.0), Piece(good[2], 5.0)]
    made = assemble(pieces, tmp_path / "out.webm")
    assert made.used[0] == "s0.webm" and made.used[-1] == "s2.webm"
    assert {"corrupt.webm", "empty.webm", "missing.webm"} <= set(made.skipped)
    assert "truncated.webm" in made.used or "truncated.webm" in made.skipped
    with av.open(str(tmp_path / "out.webm")) as c:
        time_base = c.streams[0].time_base
        packets = [p for p in c.demux(c.streams[0]) if p.pts is not None]
    assert len(packets) == made.packets and time_base is not None
    # The last good segment sits at its offset (5 s): the gap stays a gap.
    last = float(packets[-1].pts * time_base)
    assert 5.9 < last < 6.1 and abs(made.duration_s - last) < 0.05


async def test_the_composite_and_per_participant_files(tmp_path: Path) -> None:
    """Two people, one leaving and coming back (a gap): after the end, per-participant
    files on the session's one clock and a composite with both, playable, hashed."""
    from server.state import COMPOSITE

    settings = make_settings(tmp_path, segment_s=1.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        a = await invite(r, sid, "Ủy viên Một", "member")
        b = await invite(r, sid, "Ủy viên Hai", "member")
        ca = await join_with_media(r, a, sid)
        cb = await join_with_media(r, b, sid)
        await asyncio.sleep(3)
        await cb.leave()
        await asyncio.sleep(2.5)  # b is away: a gap on b's timeline
        cb = await join_with_media(r, b, sid)
        await asyncio.sleep(3)
        await ca.leave()
        await cb.leave()
        await r.api("POST", f"/api/sessions/{sid}/end")
        await asyncio.wait_for(r.app[COMPOSITE].wait_idle(), 120)
        c = await r.api("GET", f"/api/sessions/{sid}/composite")
        assert c["status"] == "done", c
        assert c["progress"] == 1.0 and c["media_url"]
        session = await r.api("GET", f"/api/sessions/{sid}")
        files = c["details"]["participants"]
        assert set(files) == {a.id, b.id}
        for pid in (a.id, b.id):
            for kind in ("audio", "camera"):
                data = await r.app[STORE].get_bytes(files[pid][kind]["key"])
                assert hashlib.sha256(data).hexdigest() == files[pid][kind]["sha256"]
        gaps_b = files[b.id]["audio"]["gaps"]
        assert any(g["to"] - g["from"] >= 2.0 for g in gaps_b), gaps_b  # the time away
        resp = await r.client.get(c["media_url"], headers=r.auth())
        body = await resp.read()
        assert resp.status == 200 and hashlib.sha256(body).hexdigest() == c["sha256"]
        out = tmp_path / "composite.webm"
        out.write_bytes(body)
        assert decode_errors(out) == ""
        with av.open(str(out)) as container:
            kinds = sorted(s.type for s in container.streams)
            duration = float(container.duration or 0) / av.time_base
            width = container.streams.video[0].codec_context.width
        assert kinds == ["audio", "video"] and width == 640  # two tiles of 320
        started = datetime.fromisoformat(session["started_at"])
        ended = datetime.fromisoformat(session["ended_at"])
        assert abs(duration - (ended - started).total_seconds()) < 1.0, duration
        kinds_audit = [e["kind"] for e in await audit(r, sid)]
        assert "composite.stored" in kinds_audit


def decode_errors(path: Path) -> str:
    """What ffmpeg complains about when it decodes all of ``path`` ("" if nothing)."""
    from media.ffmpeg import ffmpeg_path

    probe = subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(path), "-f", "null", "-"],
                           capture_output=True, text=True, check=False)
    return probe.stderr.strip() or ("" if probe.returncode == 0 else "failed")


async def test_a_damaged_spool_segment_is_named_in_the_record(tmp_path: Path) -> None:
    """A segment file damaged in the spool (a bad disk) before its track is assembled: its
    hash no longer matches, so the stored copy is used instead and the record says so."""
    settings = make_settings(tmp_path, segment_s=1.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        member = await invite(r, sid, "Thành viên", "member")
        client = await join_with_media(r, member, sid)
        rows = await until(_three_stored_each, r, sid, within=20)
        victim = next(x for x in rows if x["kind"] == "audio" and x["seq"] == 1)
        damaged = _spool_file(r.settings.spool_dir, victim["object_key"])
        damaged.write_bytes(b"\x1aE\xdf\xa3 not a segment any more")
        await client.leave()
        await until(_stored_recordings, r, sid, 2, within=20)
        stored = [e for e in await audit(r, sid) if e["kind"] == "recording.stored"
                  and e["data"]["kind"] == "audio"]
        (event,) = stored
        assert event["data"]["segments_restored"] == [damaged.name], event["data"]
        assert "segments_skipped" not in event["data"]
        rec = next(x for x in await r.api("GET", f"/api/sessions/{sid}/recordings")
                   if x["kind"] == "audio")
        rows = [x for x in await segments(r, sid) if x["kind"] == "audio"]
        assert rec["frames"] == sum(x["frames"] for x in rows)  # nothing left out
        await check_stored(r, [victim])


async def test_a_segment_damaged_everywhere_is_left_out_and_named(tmp_path: Path) -> None:
    """The spool copy and the stored copy of one segment are both damaged (a bad disk
    and a bad store): the track is still assembled and kept, without that segment, and
    the record names it (``segments_skipped``) — a restored copy is checked too."""
    settings = make_settings(tmp_path, segment_s=1.0, transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        member = await invite(r, sid, "Thành viên", "member")
        client = await join_with_media(r, member, sid)
        rows = await until(_three_stored_each, r, sid, within=20)
        victim = next(x for x in rows if x["kind"] == "audio" and x["seq"] == 1)
        damaged = _spool_file(r.settings.spool_dir, victim["object_key"])
        damaged.write_bytes(b"\x1aE\xdf\xa3 not a segment any more")
        stored_copy = r.settings.data_dir / "objects" / victim["object_key"]
        stored_copy.chmod(0o644)  # the test plays the bad store: hoidong never writes it
        stored_copy.write_bytes(b"\x1aE\xdf\xa3 nor this")
        await client.leave()
        await until(_stored_recordings, r, sid, 2, within=20)
        (event,) = [e for e in await audit(r, sid) if e["kind"] == "recording.stored"
                    and e["data"]["kind"] == "audio"]
        assert list(event["data"]["segments_skipped"]) == [damaged.name], event["data"]
        assert "segments_restored" not in event["data"]
        rec = next(x for x in await r.api("GET", f"/api/sessions/{sid}/recordings")
                   if x["kind"] == "audio")
        rows = [x for x in await segments(r, sid) if x["kind"] == "audio"]
        data = await (await r.client.get(rec["media_url"], headers=r.auth())).read()
        kept = tmp_path / "kept.webm"
        kept.write_bytes(data)
        with av.open(str(kept)) as c:
            packets = sum(1 for p in c.demux(c.streams[0]) if p.pts is not None)
        assert 0 < packets == sum(x["frames"] for x in rows if x["seq"] != 1)


def _spool_file(spool: Path, key: str) -> Path:
    name = Path(key).name.split("-", 1)[1]
    (found,) = [p for p in spool.rglob(name)]
    return found

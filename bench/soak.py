"""Soak: N participants in one meeting for half an hour on the real server, with the
signalling rate limits attacked meanwhile.

The server is the app as shipped (``hoidong serve``: SQLite, local object store,
recording every track in 10-s segments uploaded during the meeting, its send worker,
transcription on end in its own worker process with the default model, the composite);
it is started the way the media benchmark starts it (bench/media.py). The participants
are bench/media_client.py's peers (pre-encoded VP8 640x480 ~500 kbps + Opus, every peer
receiving every other), in client processes of four peers, connected for the whole
meeting; frames are counted in slices (bench/soak_client.py) so the clients' memory
stays flat.

Measured:

- **memory**: the resident memory of the server and all its child processes (send
  worker, any other), every ``--sample-seconds``; growth = (median of the last
  ``--tail-samples`` samples − median of the first as many after the warm-up) / the
  latter;
- **no lost segment**: after the meeting (the peers leave, then the session is ended
  through the API, which returns once every recording is stored) every segment the
  recorders closed is entered, stored, and in the object store with the size and SHA-256
  entered when it closed; each track's segments are numbered without a hole and lay
  the track's whole timeline end to end (no span of its duration outside every
  segment), the continuous file holds all their frames and none was left out of it;
- **no stuck job**: the jobs the end starts (the transcript, the composite; segment
  transcripts if incremental) are each done, or failed with a reason, before
  ``--jobs-deadline-minutes``; a job whose state does not move for ``--stall-minutes``
  counts as stuck;
- **rate limits under load**: from another address (127.0.0.2) bursts of
  ``--hello-burst`` sockets every ``--attack-every`` seconds, over the per-address limit
  (``HOIDONG_SIGNAL_HELLOS_PER_MINUTE``), each saying hello with a bad token; and an extra
  invited participant (an observer, from 127.0.0.3) whose link floods pings over the
  per-link limit (``HOIDONG_SIGNAL_MESSAGES_PER_MINUTE``) every ``--flood-every``
  seconds. Counted: sockets closed with 4429 as the attackers saw them and as the server
  logged and audited them; a hello from the participants' own address right after each
  burst (must not be refused for the other address's flood); the N participants'
  delivery over the soak, their leaves before the end (none expected) and how many
  were connected at each sample.

    python -m bench.soak [--participants 20] [--minutes 30] [--warmup-minutes 5]
                         [--sample-seconds 30]

Writes bench/results/soak.json and prints a table. Targets (issue 10): memory growth
after warm-up < 10 %, no lost segment, no stuck job, the limits holding.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import math
import os
import re
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.incremental import PASSWORD, Api
from bench.media import PEERS_PER_CLIENT, free_port, summarise, wait_http
from bench.proc import children, cpu_seconds, machine_busy, rss_mb
from bench.transcription import MODEL_CACHE
from server.settings import Settings
from transcription.model import resolve_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "soak.json"
CONNECT_S = 15.0  # the peers join and connect their media before the meeting's clock starts
STAGGER_S = 3.0  # between client processes' joins: not all twenty in the same second
TARGET_GROWTH_PCT = 10.0
ATTACKER_ADDRESS = "127.0.0.2"  # the hello flood's address (the peers are on 127.0.0.1)
FLOODER_ADDRESS = "127.0.0.3"
SIGNAL_ERROR_CODES = {4429: "rate_limited", 4401: "join_invalid"}


# -- the server's processes ----------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid``'s child processes, theirs, and so on (ffmpeg under a worker, say)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def label(pid: int) -> str:
    """A short name for a process, from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if "server.cli" in words:
        return "server"
    text = " ".join(words)
    for needle, name in (("sendworker", "send worker"), ("resource_tracker", "mp tracker"),
                         ("multiprocessing", "mp child"),
                         ("huey", "job worker"), ("worker", "worker"), ("ffmpeg", "ffmpeg")):
        if needle in text:
            return name
    return Path(words[0]).name if words else "?"


@dataclass
class Sample:
    t: float  # seconds from the meeting's start
    rss_mb: float  # the server and all its descendants
    by_process: dict[str, float]  # "label pid" -> MiB
    metrics: dict[str, float]


def other_servers(mine: int) -> int:
    """hoidong servers running on the machine besides ``mine`` (another benchmark run
    meanwhile shares the two cores)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != mine:
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"server.cli" in argv and b"serve" in argv:
                count += 1
    return count


def sample_rss(pid: int) -> tuple[float, dict[str, float]]:
    by: dict[str, float] = {}
    for p in [pid, *descendants(pid)]:
        mb = rss_mb(p)
        if mb:
            by[f"{label(p)} {p}"] = round(mb, 1)
    return round(sum(by.values()), 1), by


LAG_BUCKET = "hoidong_event_loop_lag_seconds_bucket"


def loop_lag(samples: list[Sample]) -> dict[str, Any]:
    """The server's event loop lag between the first and last of ``samples`` (from its
    cumulative histogram): how many of its 0.1-s samples woke more than 0.5 s and 2.5 s
    late, in %, and the worst lag since the server started."""
    if len(samples) < 2:
        return {}
    a, b = samples[0].metrics, samples[-1].metrics
    total = b.get("hoidong_event_loop_lag_seconds_count", 0) - a.get(
        "hoidong_event_loop_lag_seconds_count", 0)

    def over(bound: str) -> float | None:
        key = f'{LAG_BUCKET}{{le="{bound}"}}'
        if not total or key not in a or key not in b:
            return None
        return round(100 * (total - (b[key] - a[key])) / total, 2)

    return {"samples": int(total), "over_0_5_s_pct": over("0.5"),
            "over_2_5_s_pct": over("2.5"),
            "max_s": b.get("hoidong_event_loop_lag_max_seconds")}


async def scrape(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """The server's /metrics, the lines without labels and the job gauges."""
    out: dict[str, float] = {}
    try:
        async with http.get(base + "/metrics", timeout=aiohttp.ClientTimeout(total=60)) as r:
            text = await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return out
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("hoidong_") and ("{" not in name or "_jobs{" in name
                                            or name.startswith(LAG_BUCKET)):
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def growth_pct(samples: list[Sample], warm_s: float, k: int) -> dict[str, Any]:
    """(median of the last ``k`` samples − median of the first ``k`` after the warm-up)
    / the latter, in %; and the samples it was taken from."""
    after = [s for s in samples if s.t >= warm_s]
    if len(after) < 2:
        return {"rss_growth_pct": None, "rss_mb_start": None, "rss_mb_end": None}
    k = max(1, min(k, len(after) // 2))
    first, last = after[:k], after[-k:]
    start = statistics.median(s.rss_mb for s in first)
    end = statistics.median(s.rss_mb for s in last)
    return {"rss_growth_pct": round(100 * (end - start) / start, 2),
            "rss_mb_start": round(start, 1), "rss_mb_end": round(end, 1),
            "rss_mb_peak": round(max(s.rss_mb for s in samples), 1),
            "rss_window_start_s": [round(first[0].t), round(first[-1].t)],
            "rss_window_end_s": [round(last[0].t), round(last[-1].t)],
            "rss_by_process_start": _median_by_process(first),
            "rss_by_process_end": _median_by_process(last)}


def _median_by_process(samples: list[Sample]) -> dict[str, float]:
    names = {n for s in samples for n in s.by_process}
    return {n: round(statistics.median(s.by_process.get(n, 0.0) for s in samples), 1)
            for n in sorted(names)}


# -- the attackers -------------------------------------------------------------------------


@dataclass
class Attack:
    hello_codes: Counter[str] = field(default_factory=Counter)
    bursts: int = 0
    probe_codes: Counter[str] = field(default_factory=Counter)
    floods: int = 0
    flood_codes: Counter[str] = field(default_factory=Counter)
    flood_pongs: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"bursts": self.bursts, "hello_close_codes": dict(self.hello_codes),
                "probe_close_codes": dict(self.probe_codes), "floods": self.floods,
                "flood_close_codes": dict(self.flood_codes),
                "flood_pongs_before_close": self.flood_pongs}


def _code(ws: aiohttp.ClientWebSocketResponse) -> str:
    code = ws.close_code
    return SIGNAL_ERROR_CODES.get(code, str(code)) if code is not None else "open"


async def one_hello(http: aiohttp.ClientSession, ws_url: str, sid: str) -> str:
    """A socket saying hello with a token that is not one; how it was closed."""
    try:
        async with http.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=10)) as ws:
            try:
                await ws.send_json({"type": "hello", "token": "not-a-token", "session_id": sid})
            except (ConnectionError, aiohttp.ClientError):
                pass  # refused before the hello was read: the close says why
            async for _ in ws:
                pass
            return _code(ws)
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        return type(exc).__name__


async def hello_bursts(ws_url: str, sid: str, burst: int, every_s: float, until: float,
                       attack: Attack) -> None:
    """Every ``every_s``: ``burst`` sockets from ATTACKER_ADDRESS (50 at a time), then one
    from the participants' own address, which must not be refused for it."""
    gate = asyncio.Semaphore(50)
    flood = aiohttp.TCPConnector(local_addr=(ATTACKER_ADDRESS, 0), limit=0)
    own = aiohttp.TCPConnector(local_addr=("127.0.0.1", 0), limit=0)
    async with aiohttp.ClientSession(connector=flood) as http, \
            aiohttp.ClientSession(connector=own) as http_own:

        async def gated() -> str:
            async with gate:
                return await one_hello(http, ws_url, sid)

        while time.time() + every_s < until:
            began = time.time()
            codes = await asyncio.gather(*(gated() for _ in range(burst)))
            attack.hello_codes.update(codes)
            attack.bursts += 1
            attack.probe_codes[await one_hello(http_own, ws_url, sid)] += 1
            await asyncio.sleep(max(0.0, began + every_s - time.time()))


async def token_floods(ws_url: str, sid: str, token: str, every_s: float, until: float,
                       attack: Attack, pings: int = 3000) -> None:
    """Every ``every_s``: the extra participant joins and sends pings without waiting,
    until its socket is closed (or ``pings`` were sent and answered)."""
    connector = aiohttp.TCPConnector(local_addr=(FLOODER_ADDRESS, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        while time.time() + every_s < until:
            began = time.time()
            pongs = 0
            try:
                async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                    await ws.send_json({"type": "hello", "token": token, "session_id": sid})
                    welcome = await ws.receive_json(timeout=30)
                    if welcome.get("type") != "welcome":
                        attack.flood_codes[f"no welcome: {welcome.get('code')}"] += 1
                        continue

                    async def read() -> int:
                        n = 0
                        async for msg in ws:
                            if msg.type == aiohttp.WSMsgType.TEXT and '"pong"' in msg.data:
                                n += 1
                        return n

                    reader = asyncio.create_task(read())
                    for _ in range(pings):
                        if ws.closed or reader.done():
                            break
                        try:
                            await ws.send_str('{"type": "ping"}')
                        except (ConnectionError, aiohttp.ClientError):
                            break
                    try:
                        pongs = await asyncio.wait_for(reader, 30)
                    except TimeoutError:
                        pongs = -1
                    attack.flood_codes[_code(ws)] += 1
            except (aiohttp.ClientError, TimeoutError, ConnectionError, TypeError) as exc:
                attack.flood_codes[type(exc).__name__] += 1
            attack.floods += 1
            attack.flood_pongs.append(pongs)
            await asyncio.sleep(max(0.0, began + every_s - time.time()))


# -- after the meeting: segments and jobs --------------------------------------------------


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def track_timeline(segs: list[dict[str, Any]], duration_s: float, segment_s: float,
                   slack_s: float = 1.0) -> dict[str, Any]:
    """Whether a track's segments (sorted by ``seq``) lay its whole timeline end to end.

    Each segment says where it lies on the track's timeline (``offset_s``, media time from
    the track's first frame) and how long it is (``duration_s``); the recorder's
    ``duration_s`` is the whole track's. A segment missing from the middle leaves its
    span uncovered, one missing from the end leaves the tail uncovered; both are counted
    in ``uncovered_s`` (spans over ``slack_s``), the ends alone also in
    ``ends_uncovered_s`` (a hole in the numbering the caller counts as lost already). A
    gap between two segments whose numbers follow each other is not a lost segment but
    time when no frame came (a network cut): it is reported in ``gaps_s`` only. How many
    segments there are is not judged: segments close every ``segment_s`` of *server*
    time, a video one only at a key frame, so under load they run longer (fewer
    segments) and a stalled connection's run shorter in media time (more);
    ``longest_s`` shows it.
    """
    uncovered = ends = 0.0
    gaps: list[float] = []
    if segs and segs[0]["offset_s"] > slack_s:
        ends += segs[0]["offset_s"]
    for a, b in itertools.pairwise(segs):
        hole = b["offset_s"] - (a["offset_s"] + a["duration_s"])
        if hole <= slack_s:
            continue
        if b["seq"] == a["seq"] + 1:
            gaps.append(round(hole, 2))
        else:
            uncovered += hole
    end = segs[-1]["offset_s"] + segs[-1]["duration_s"] if segs else 0.0
    if duration_s - end > slack_s:
        ends += duration_s - end
    return {"uncovered_s": round(uncovered + ends, 2), "ends_uncovered_s": round(ends, 2),
            "gaps_s": gaps,
            "longest_s": round(max((x["duration_s"] for x in segs), default=0.0), 2),
            "segments_per_segment_s": round(len(segs) * segment_s / duration_s, 2)
            if duration_s else None}


async def check_segments(api: Api, sid: str, segment_s: float) -> dict[str, Any]:
    """Every segment the recorders closed: entered, stored, numbered without a hole,
    laying the track's whole timeline end to end (:func:`track_timeline`), all in the
    continuous file."""
    rows: list[dict[str, Any]] = await api.call("GET", f"/api/sessions/{sid}/segments")
    recs: list[dict[str, Any]] = await api.call("GET", f"/api/sessions/{sid}/recordings")
    events: list[dict[str, Any]] = await api.call("GET", f"/api/sessions/{sid}/audit")
    tracks: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        tracks.setdefault((r["connection_id"], r["track"]), []).append(r)
    closed = Counter((e["data"].get("connection"), e["data"].get("track"))
                     for e in events if e["kind"] == "recording.segment_closed")
    stored_events = [e for e in events if e["kind"] in (
        "recording.stored", "recording.store_failed", "recording.empty")]
    lost: Counter[str] = Counter()
    problems: list[str] = []
    per_track: list[dict[str, Any]] = []
    # The recorder's own count of segments per (connection, kind, source).
    recorded = {(e["data"].get("connection"), e["data"].get("kind"), e["data"].get("source")):
                e["data"] for e in stored_events}
    for (conn, track), segs in sorted(tracks.items()):
        segs.sort(key=lambda x: x["seq"])
        kind, source = segs[0]["kind"], segs[0]["source"]
        seqs = [x["seq"] for x in segs]
        missing = sorted(set(range(max(seqs) + 1)) - set(seqs))
        if missing:
            lost["seq_missing"] += len(missing)
            problems.append(f"{conn}/{track}: seqs missing {missing}")
        unstored = [x["seq"] for x in segs if x["status"] != "stored"]
        if unstored:
            lost["not_stored"] += len(unstored)
            problems.append(f"{conn}/{track}: not stored {unstored}")
        if closed[(conn, track)] != len(segs):
            lost["audit_closed_mismatch"] += abs(closed[(conn, track)] - len(segs))
            problems.append(f"{conn}/{track}: {closed[(conn, track)]} closed in the audit "
                            f"log, {len(segs)} entered")
        made = recorded.get((conn, kind, source))
        if made is None:
            lost["track_not_assembled"] += len(segs)
            problems.append(f"{conn}/{track}: no recording.stored event")
            continue
        if made.get("segments") != len(segs):
            lost["recorder_count_mismatch"] += abs((made.get("segments") or 0) - len(segs))
            problems.append(f"{conn}/{track}: recorder closed {made.get('segments')}, "
                            f"{len(segs)} entered")
        left_out = list(made.get("segments_skipped") or []) + list(
            made.get("segments_truncated") or [])
        if left_out:
            lost["left_out_of_file"] += len(left_out)
            problems.append(f"{conn}/{track}: left out of the file {left_out}")
        rec = next((r for r in recs if r["id"] == made.get("recording_id")), None)
        duration = float(made.get("duration_s") or 0.0)
        timeline = track_timeline(segs, duration, segment_s)
        if timeline["uncovered_s"] > 0:
            problems.append(f"{conn}/{track}: {timeline['uncovered_s']} s of its "
                            f"{duration:.0f} s not in any segment")
            lost["timeline_not_covered"] += math.ceil(timeline["ends_uncovered_s"] / segment_s)
        frames = sum(x["frames"] for x in segs)
        if rec is None or rec["status"] != "stored" or rec["frames"] != frames:
            problems.append(f"{conn}/{track}: recording {rec and rec['status']} with "
                            f"{rec and rec['frames']} frames, segments {frames}")
        per_track.append({"connection": conn, "track": track, "segments": len(segs),
                          "duration_s": round(duration, 1),
                          "dropped_frames": made.get("dropped", 0), **timeline})
    return {"rows": rows, "lost": lost, "problems": problems, "tracks": per_track,
            "recordings": recs, "events": events}


async def check_objects(settings: Settings, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each segment in the store, with the size and SHA-256 entered when it closed."""
    store = settings.open_store()
    bad: list[str] = []
    total = 0
    try:
        for row in rows:
            if row["status"] != "stored":
                continue
            try:
                data = await store.get_bytes(row["object_key"])
            except Exception as exc:  # any failure: a lost segment here
                bad.append(f"{row['object_key']}: {type(exc).__name__}")
                continue
            total += len(data)
            digest = await asyncio.to_thread(_sha256, data)
            if digest != row["sha256"] or len(data) != row["size"]:
                bad.append(f"{row['object_key']}: hash or size differs")
    finally:
        await store.close()
    return {"bad": bad, "bytes": total}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def job_rows(data_dir: Path) -> list[dict[str, Any]]:
    """The state of every job the server keeps (transcripts, composites, segment
    transcripts), read straight from its database."""
    con = sqlite3.connect(f"file:{data_dir / 'hoidong.sqlite3'}?mode=ro", uri=True,
                          timeout=30)
    try:
        out = []
        for table, cols in (
                ("transcripts", "id, status, error_code, error_detail, attempts, heartbeat_at, "
                 "progress, created_at, completed_at"),
                ("composites", "id, status, error, NULL, NULL, NULL, progress, created_at, "
                 "completed_at"),
                ("segment_transcripts", "segment_id, status, error, NULL, NULL, NULL, NULL, "
                 "created_at, completed_at")):
            for row in con.execute(f"SELECT {cols} FROM {table}"):
                out.append({"job": table.rstrip("s"), "id": row[0], "status": row[1],
                            "error": row[2] or row[3], "attempts": row[4],
                            "heartbeat_at": row[5], "progress": row[6],
                            "created_at": row[7], "completed_at": row[8]})
        return out
    finally:
        con.close()


def queue_left(data_dir: Path) -> int:
    """Tasks still in huey's SQLite queue (waiting or scheduled)."""
    path = data_dir / "jobs.sqlite3"
    if not path.exists():
        return 0
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return sum(int(con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0])
                   for n in names if n in ("task", "schedule"))
    finally:
        con.close()


TERMINAL = {"done", "failed", "empty"}


async def wait_jobs(data_dir: Path, ended: float, deadline_s: float, stall_s: float
                    ) -> dict[str, Any]:
    """Until every job is done or failed (or the deadline): which were stuck, and how long
    each took from the end of the session."""
    seen: dict[str, tuple[str, float]] = {}  # job -> (state, since)
    finished: dict[str, float] = {}
    stalled: set[str] = set()
    rows: list[dict[str, Any]] = []
    while True:
        rows = await asyncio.to_thread(job_rows, data_dir)
        now = time.monotonic()
        for r in rows:
            key = f"{r['job']}:{r['id']}"
            state = json.dumps([r["status"], r["progress"], r["heartbeat_at"]])
            if r["status"] in TERMINAL:
                finished.setdefault(key, round(now - ended, 1))
            elif key not in seen or seen[key][0] != state:
                seen[key] = (state, now)
            elif now - seen[key][1] > stall_s:
                stalled.add(key)
        open_jobs = [r for r in rows if r["status"] not in TERMINAL
                     and f"{r['job']}:{r['id']}" not in stalled]
        if (rows and not open_jobs) or now - ended > deadline_s:
            break
        await asyncio.sleep(5.0)
    stuck = [r for r in rows if r["status"] not in TERMINAL]
    failed_without_reason = [r for r in rows if r["status"] == "failed" and not r["error"]]
    return {"jobs": [{**{k: r[k] for k in ("job", "status", "error", "attempts")},
                      "finished_after_end_s": finished.get(f"{r['job']}:{r['id']}")}
                     for r in rows if r["job"] != "segment_transcript"],
            "segment_transcripts": dict(Counter(r["status"] for r in rows
                                                if r["job"] == "segment_transcript")),
            "stuck": [{k: r[k] for k in ("job", "id", "status", "progress")} for r in stuck],
            "failed_without_reason": len(failed_without_reason),
            "stuck_jobs": len(stuck) + len(failed_without_reason),
            "queue_left": await asyncio.to_thread(queue_left, data_dir)}


# -- the run -------------------------------------------------------------------------------


def _append(dest: Path, src: Path) -> None:
    with dest.open("ab") as f:
        f.write(src.read_bytes())


def source_state() -> dict[str, Any]:
    """The commit measured, and the files of the server and the clients that differ
    from it (others may be editing the checkout meanwhile)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout

    changed = [line[3:] for line in git("status", "--porcelain", "--", "server", "media",
                                        "storage", "transcription", "bench").splitlines()
               if not line[3:].startswith("bench/results/")]
    return {"commit": git("rev-parse", "HEAD").strip(), "uncommitted": changed}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def write_result(result: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")


def log_error_kinds(path: Path, most: int = 20) -> dict[str, int]:
    """The server log's ERROR lines counted by logger and message (the time and the
    hexadecimal ids taken out), each with the exception its traceback ended with."""
    kinds: Counter[str] = Counter()
    pending: str | None = None
    with path.open(errors="replace") as f:
        for line in f:
            if " ERROR " in line:
                if pending is not None:
                    kinds[pending] += 1
                message = line.split(" ERROR ", 1)[1].strip()
                pending = re.sub(r"\b[0-9a-f]{12,32}\b", "…", message)
            elif pending is not None and re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", line):
                kinds[f"{pending} ← {line.strip()[:160]}"] += 1
                pending = None
    if pending is not None:
        kinds[pending] += 1
    return dict(kinds.most_common(most))


def count_log(path: Path, needle: str) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if needle.encode() in line)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.participants
    source = source_state()
    meeting_s = args.minutes * 60
    warm_s = args.warmup_minutes * 60
    with tempfile.TemporaryDirectory(prefix="hoidong-soak-") as tmp_s:
        tmp = Path(tmp_s)
        data_dir = tmp / "data"
        port = free_port()
        shipped = Settings.load(environ={})
        env = {**os.environ, "HOIDONG_DATA_DIR": str(data_dir), "HOIDONG_PORT": str(port),
               "HOIDONG_ADMIN_PASSWORD": PASSWORD,
               # The N participants and the flood's observer.
               "HOIDONG_MAX_PARTICIPANTS": str(n + 1),
               # The shipped model, as a folder so that it is not put together each run.
               "HOIDONG_WHISPER_MODEL": str(resolve_model(shipped.whisper_model,
                                                          MODEL_CACHE)),
               "HOIDONG_LOG_LEVEL": os.environ.get("HOIDONG_LOG_LEVEL", "WARNING")}
        server_log = tmp / "server.log"
        with server_log.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env,
                                    cwd=ROOT, stdout=log, stderr=log)
        api = Api(f"http://127.0.0.1:{port}")
        ws_url = f"ws://127.0.0.1:{port}/ws/join"
        clients: list[tuple[subprocess.Popen[bytes], Path]] = []
        tasks: list[asyncio.Task[None]] = []
        attack = Attack()
        samples: list[Sample] = []
        try:
            await wait_http(api.base + "/staff")
            await api.login()
            settings = Settings.load(environ={k: v for k, v in env.items()
                                              if k.startswith("HOIDONG_")})
            d = await api.call("POST", "/api/dossiers", {"title": "soak", "phase": "appraisal"})
            s = await api.call("POST", f"/api/dossiers/{d['id']}/sessions",
                               {"kind": "council_meeting", "title": "soak",
                                "admission": "open"})
            sid = s["id"]
            await api.call("POST", f"/api/sessions/{sid}/start")
            peers = []
            for i in range(n + 1):
                made = await api.call("POST", f"/api/sessions/{sid}/participants",
                                      {"name": f"P{i}" if i < n else "Flood",
                                       "role": "member" if i < n else "observer"})
                token = made["join_url"].rsplit("/", 1)[1]
                await api.call("POST", "/api/join/consent", {"token": token, "accepted": True})
                peers.append({"id": made["id"], "token": token})
            flooder = peers.pop()
            n_clients = math.ceil(n / PEERS_PER_CLIENT)
            t0 = time.time() + (n_clients - 1) * STAGGER_S + CONNECT_S
            end = t0 + meeting_s
            for c in range(n_clients):
                if c:
                    await asyncio.sleep(STAGGER_S)
                spec = {"ws_url": ws_url, "session_id": sid, "window_start": t0,
                        "window_end": end, "every_s": args.count_every,
                        "count_s": args.count_seconds, "nice": args.client_nice,
                        "peers": peers[c * PEERS_PER_CLIENT:(c + 1) * PEERS_PER_CLIENT]}
                spec_path, out_path = tmp / f"spec{c}.json", tmp / f"out{c}.json"
                spec_path.write_text(json.dumps(spec))
                with (tmp / f"client{c}.err").open("wb") as err:
                    clients.append((subprocess.Popen(
                        [sys.executable, "-m", "bench.soak_client", str(spec_path),
                         str(out_path)], cwd=ROOT, stderr=err), out_path))
            await asyncio.sleep(max(0.0, t0 - time.time()))
            cpu0, busy0 = cpu_seconds(proc.pid, with_children=True), machine_busy()
            attack_until = end - 5
            attack_from = min(60.0, meeting_s / 4)

            async def attacks() -> None:
                await asyncio.sleep(attack_from)
                await asyncio.gather(
                    hello_bursts(ws_url, sid, args.hello_burst, args.attack_every,
                                 attack_until, attack),
                    token_floods(ws_url, sid, flooder["token"], args.flood_every,
                                 attack_until, attack))

            tasks.append(asyncio.create_task(attacks()))
            async with aiohttp.ClientSession() as http:
                i = 0
                while True:
                    at = t0 + i * args.sample_seconds
                    if at > end:
                        break
                    await asyncio.sleep(max(0.0, at - time.time()))
                    total, by = sample_rss(proc.pid)
                    metrics = await scrape(http, api.base)
                    metrics["other_servers"] = other_servers(proc.pid)
                    samples.append(Sample(round(time.time() - t0, 1), total, by, metrics))
                    print(f"soak t={samples[-1].t:7.0f}s rss={total:7.1f} MiB "
                          f"connected={metrics.get('hoidong_participants_connected')} "
                          f"lag_max={metrics.get('hoidong_event_loop_lag_max_seconds')} "
                          f"consent_expired={metrics.get('hoidong_ice_consent_expired_total')} "
                          f"waiting={metrics.get('hoidong_segments_waiting_upload')} "
                          f"hellos={dict(attack.hello_codes)} floods={dict(attack.flood_codes)}",
                          file=sys.stderr, flush=True)
                    i += 1
            cpu1, busy1 = cpu_seconds(proc.pid, with_children=True), machine_busy()
            await asyncio.gather(*tasks)
            reports, client_failures = [], []
            for c, (client, out) in enumerate(clients):
                try:
                    await asyncio.to_thread(client.wait, 300)
                except subprocess.TimeoutExpired:
                    client.kill()
                if out.exists():
                    reports.append(json.loads(out.read_text()))
                    client_failures += reports[-1].get("_failures", [])
                else:  # the whole process failed: its peers' frames are not counted
                    tail = (tmp / f"client{c}.err").read_text(errors="replace")[-1500:]
                    client_failures.append({"client": c, "exit": client.returncode,
                                            "stderr": tail})
            left_early = await _left_early(api, sid, {p["id"] for p in peers}, end)
            # What is known once the meeting is over, in case the run is stopped before
            # the jobs are done (the full result replaces it).
            partial = growth_pct(samples, warm_s, args.tail_samples)
            write_result({
                "complete": False, "command": "python -m bench.soak " + shlex.join(
                    sys.argv[1:]), "source": source, "participants": n,
                "minutes": args.minutes, "warmup_minutes": args.warmup_minutes,
                **{k: v for k, v in partial.items() if not k.startswith("rss_by")},
                "rate_limited_hellos": attack.hello_codes.get("rate_limited", 0),
                "rate_limited_messages": attack.flood_codes.get("rate_limited", 0),
                "own_address_refused": attack.probe_codes.get("rate_limited", 0),
                "participant_departures": departures(left_early),
                "delivered_pct": summarise(n, 1.0, 0.0, 0.0, reports)["delivered_pct"],
                "rss_samples": [[x.t, x.rss_mb] for x in samples],
                "metrics_samples": [[x.t, x.metrics] for x in samples]})
            ended = time.monotonic()
            await api.call("POST", f"/api/sessions/{sid}/end")
            end_call_s = round(time.monotonic() - ended, 1)
            jobs, drained_s = await asyncio.gather(
                wait_jobs(data_dir, ended, args.jobs_deadline_minutes * 60,
                          args.stall_minutes * 60),
                wait_uploads(api.base, ended, args.jobs_deadline_minutes * 60))
            segs = await check_segments(api, sid, settings.segment_s)
            flood_left = sum(1 for e in segs["events"] if e["kind"] == "participant.left"
                             and e["participant_id"] == flooder["id"]
                             and (e["data"] or {}).get("reason") == "signal.rate_limited")
        finally:
            for task in tasks:
                task.cancel()
            for client, _ in clients:
                if client.poll() is None:
                    client.kill()
            await api.close()
            # The server's own processes (send worker, job worker, a composite's ffmpeg):
            # those still running once it has stopped are ended here, by pid.
            leftovers = {pid: _cmdline(pid) for pid in descendants(proc.pid)}
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(proc.wait, 120)
            except subprocess.TimeoutExpired:
                proc.kill()
            for pid, cmdline in leftovers.items():
                if cmdline and _cmdline(pid) == cmdline:
                    os.kill(pid, signal.SIGKILL)
            if os.environ.get("BENCH_SERVER_LOG"):
                await asyncio.to_thread(_append, Path(os.environ["BENCH_SERVER_LOG"]),
                                        server_log)
        objects = await check_objects(settings, segs["rows"])
        logged_hellos = count_log(server_log, "too many sockets from")
        logged_floods = count_log(server_log, "sends too fast")
        server_errors = {what: count_log(server_log, what) for what in (
            " ERROR ", "Traceback", "Task exception was never retrieved",
            "database is locked")}
        error_kinds = await asyncio.to_thread(log_error_kinds, server_log)
        if os.environ.get("BENCH_CLIENT_LOG"):  # the clients' whole stderr
            for c in range(len(clients)):
                await asyncio.to_thread(_append, Path(os.environ["BENCH_CLIENT_LOG"]),
                                        tmp / f"client{c}.err")
        client_stderr = {c: (tmp / f"client{c}.err").read_text(errors="replace")[-3000:]
                         for c in range(len(clients))
                         if (tmp / f"client{c}.err").stat().st_size}
        exit_code = proc.returncode
    counted_s = counted_seconds(t0, end, args.count_every, args.count_seconds)
    live = summarise(n, counted_s, cpu1 - cpu0, 0.0, reports)
    lost = segs["lost"]
    lost["bad_object"] = len(objects["bad"])
    mem = growth_pct(samples, warm_s, args.tail_samples)
    after_warm = [x for x in samples if x.t >= warm_s]
    connected = [x.metrics.get("hoidong_participants_connected") for x in after_warm]
    rates = forwarded_rates(after_warm)
    result: dict[str, Any] = {
        "command": "python -m bench.soak " + shlex.join(sys.argv[1:]),
        "source": source,
        # Settings given to the server from the environment (beside the soak's own).
        "environment": {k: v for k, v in sorted(os.environ.items())
                        if k.startswith("HOIDONG_")},
        "participants": n, "minutes": args.minutes, "warmup_minutes": args.warmup_minutes,
        "client_nice": args.client_nice, "sample_seconds": args.sample_seconds,
        "samples": len(samples),
        **{k: v for k, v in mem.items() if not k.startswith("rss_by")},
        "target_growth_pct": TARGET_GROWTH_PCT,
        "lost_segments": sum(lost.values()), "lost_by_cause": dict(lost),
        "segments_checked": len(segs["rows"]), "segment_bytes_hashed": objects["bytes"],
        "tracks": len(segs["tracks"]),
        "track_minutes_min": round(min((t["duration_s"] for t in segs["tracks"]),
                                       default=0) / 60, 2),
        "dropped_frames": sum(t["dropped_frames"] or 0 for t in segs["tracks"]),
        "segment_problems": segs["problems"][:50],
        "stuck_jobs": jobs["stuck_jobs"], "jobs": jobs["jobs"],
        "segment_transcripts": jobs["segment_transcripts"], "stuck": jobs["stuck"],
        "job_queue_left": jobs["queue_left"], "end_call_s": end_call_s,
        # Segments closed but not yet in the object store, at the samples and after the end.
        "segments_waiting_upload_max": max((x.metrics.get("hoidong_segments_waiting_upload", 0)
                                            for x in samples), default=None),
        "segments_waiting_upload_at_end": samples[-1].metrics.get(
            "hoidong_segments_waiting_upload") if samples else None,
        "uploads_caught_up_after_end_s": drained_s,
        "rate_limited_hellos": attack.hello_codes.get("rate_limited", 0),
        "rate_limited_messages": attack.flood_codes.get("rate_limited", 0),
        "hellos_sent": sum(attack.hello_codes.values()),
        "limiter_logged": {"hellos_refused": logged_hellos, "links_closed": logged_floods,
                           "flood_leaves_audited": flood_left},
        "attack": attack.to_json(),
        "own_address_refused": attack.probe_codes.get("rate_limited", 0),
        # The N participants' cuts before the end; their pages (the peers) join again.
        "participant_departures": departures(left_early),
        "rate_limited_participants": sum(1 for e in left_early
                                         if e["reason"] == "signal.rate_limited"),
        "client_failures": client_failures,
        "client_processes_reporting": f"{len(reports)}/{len(clients)}",
        "client_stderr_tails": client_stderr,
        "server_log_errors": server_errors,
        # What they were: the log is deleted with the run's directory.
        "server_log_error_kinds": error_kinds,
        # How late the server's event loop ran after the warm-up, and the connections
        # it closed because a peer stopped answering consent checks for 30 s.
        "event_loop_lag": loop_lag(after_warm),
        "ice_consent_expired": (samples[-1].metrics.get("hoidong_ice_consent_expired_total")
                                if samples else None),
        "participants_connected_min": min((c for c in connected if c is not None),
                                          default=None),
        # Frames the server forwarded per second between samples, after the warm-up: the
        # floods must not make it collapse.
        "forwarded_fps": {"median": round(statistics.median(rates)) if rates else None,
                          "min": round(min(rates)) if rates else None,
                          "max": round(max(rates)) if rates else None},
        "counted_s": round(counted_s, 1),
        "delivered_pct": live["delivered_pct"],
        "audio_delivered_pct": live["audio_delivered_pct"],
        "p95_delay_ms": live["p95_delay_ms"],
        "cpu_cores": round((cpu1 - cpu0) / meeting_s, 3),
        "machine_busy_pct": round(100 * (busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1]),
                                  1),
        "server_exit_code": exit_code,
        # Samples at which another hoidong server ran on the machine (someone else's run).
        "samples_with_other_servers": sum(1 for x in samples
                                          if x.metrics.get("other_servers")),
        "rss_by_process_start": mem.get("rss_by_process_start"),
        "rss_by_process_end": mem.get("rss_by_process_end"),
        "rss_samples": [[x.t, x.rss_mb] for x in samples],
        "metrics_samples": [[x.t, x.metrics] for x in samples],
    }
    growth = result["rss_growth_pct"]
    result["targets_met"] = {
        "memory": growth is not None and growth < TARGET_GROWTH_PCT,
        "no_lost_segment": result["lost_segments"] == 0,
        "no_stuck_job": result["stuck_jobs"] == 0,
        "rate_limits": result["rate_limited_hellos"] > 0 and result["rate_limited_messages"] > 0
        and result["own_address_refused"] == 0 and result["rate_limited_participants"] == 0,
    }
    return result


def forwarded_rates(samples: list[Sample]) -> list[float]:
    """Frames forwarded per second between consecutive samples."""
    key = "hoidong_forwarded_frames_total"
    return [(b.metrics[key] - a.metrics[key]) / (b.t - a.t)
            for a, b in itertools.pairwise(samples)
            if key in a.metrics and key in b.metrics and b.t > a.t]


async def wait_uploads(base: str, ended: float, deadline_s: float) -> float | None:
    """Until no segment waits for the object store (the uploads fall behind under load
    and catch up after the end); seconds from the end, None if not by the deadline."""
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - ended < deadline_s:
            if (await scrape(http, base)).get("hoidong_segments_waiting_upload") == 0:
                return round(time.monotonic() - ended, 1)
            await asyncio.sleep(5.0)
    return None


def counted_seconds(start: float, end: float, every_s: float, count_s: float) -> float:
    """How long the clients counted frames (bench/soak_client.py's slices) in the meeting."""
    return sum(max(0.0, min(k * every_s + count_s, end) - max(k * every_s, start))
               for k in range(int(start // every_s), int(end // every_s) + 1))


async def _left_early(api: Api, sid: str, ids: set[str], end: float) -> list[dict[str, Any]]:
    """The N participants' losses, returns and leaves before the meeting's end."""
    events: list[dict[str, Any]] = await api.call("GET", f"/api/sessions/{sid}/audit")
    return [{"participant": e["participant_id"], "kind": e["kind"],
             "reason": (e["data"] or {}).get("reason"), "at": e["at"]}
            for e in events if e["participant_id"] in ids and e["kind"] in (
                "participant.left", "participant.connection_lost",
                "participant.reconnected") and _ts(e["at"]) < end - 1]


def departures(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The N participants' cuts (by reason), returns within the grace and leaves."""
    def by_reason(kind: str) -> dict[str, int]:
        return dict(Counter(str(e["reason"]) for e in events if e["kind"] == kind))

    return {"connection_lost": by_reason("participant.connection_lost"),
            "reconnected": sum(1 for e in events if e["kind"] == "participant.reconnected"),
            "left": by_reason("participant.left"),
            "participants_cut": len({e["participant"] for e in events
                                     if e["kind"] != "participant.reconnected"}),
            "first_at": min((e["at"] for e in events), default=None)}


def table(r: dict[str, Any]) -> str:
    rows = [
        ("participants, minutes (warm-up)", f"{r['participants']}, {r['minutes']:g} "
         f"({r['warmup_minutes']:g})"),
        ("RSS after warm-up → end, MiB", f"{r['rss_mb_start']} → {r['rss_mb_end']} "
         f"(peak {r.get('rss_mb_peak')})"),
        ("RSS growth after warm-up", f"{r['rss_growth_pct']} % (target < "
         f"{r['target_growth_pct']:g} %)"),
        ("segments checked (tracks)", f"{r['segments_checked']} ({r['tracks']}, shortest "
         f"{r['track_minutes_min']} min)"),
        ("lost segments", f"{r['lost_segments']} {r['lost_by_cause'] or ''}"),
        ("segments waiting for the store: most, at the end; caught up",
         f"{r['segments_waiting_upload_max']}, {r['segments_waiting_upload_at_end']}; "
         f"+{r['uploads_caught_up_after_end_s']} s"),
        ("stuck jobs", f"{r['stuck_jobs']} (jobs: " + ", ".join(
            f"{j['job']} {j['status']} +{j['finished_after_end_s']} s" for j in r["jobs"])
         + ")"),
        ("hellos from one address: sent / closed 4429",
         f"{r['hellos_sent']} / {r['rate_limited_hellos']} (server logged "
         f"{r['limiter_logged']['hellos_refused']})"),
        ("the participants' address refused meanwhile", str(r["own_address_refused"])),
        ("link floods / closed 4429", f"{r['attack']['floods']} / "
         f"{r['rate_limited_messages']} (server logged {r['limiter_logged']['links_closed']}, "
         f"audited {r['limiter_logged']['flood_leaves_audited']})"),
        ("the participants cut by the limiter", str(r["rate_limited_participants"])),
        ("participants' connections lost (back within grace; left)",
         f"{r['participant_departures']['connection_lost']} "
         f"({r['participant_departures']['reconnected']}; "
         f"{r['participant_departures']['left']})"),
        ("peers' rejoins; fewest connected; processes reporting",
         f"{len(r['client_failures'])}; {r['participants_connected_min']}; "
         f"{r['client_processes_reporting']}"),
        ("event loop: samples > 0.5 s / > 2.5 s late, worst; consent expired",
         f"{r['event_loop_lag'].get('over_0_5_s_pct')} % / "
         f"{r['event_loop_lag'].get('over_2_5_s_pct')} %, "
         f"{r['event_loop_lag'].get('max_s')} s; {r['ice_consent_expired']}"),
        ("server log: errors / 'database is locked'",
         f"{r['server_log_errors'][' ERROR ']} / {r['server_log_errors']['database is locked']}"),
        ("delivered video / audio (counted s)", f"{r['delivered_pct']} % / "
         f"{r['audio_delivered_pct']} % ({r['counted_s']} s)"),
        ("frames forwarded/s after warm-up: median (min)",
         f"{r['forwarded_fps']['median']} ({r['forwarded_fps']['min']})"),
        ("server CPU cores / machine busy", f"{r['cpu_cores']} / {r['machine_busy_pct']} %"),
        ("samples with another server running", f"{r['samples_with_other_servers']} of "
         f"{r['samples']}"),
    ]
    width = max(len(a) for a, _ in rows)
    return "\n".join([f"| {'figure':{width}} | value |", f"|{'-' * (width + 2)}|---|"]
                     + [f"| {a:{width}} | {b} |" for a, b in rows])


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--participants", type=int, default=20)
    ap.add_argument("--client-nice", type=int, default=10,
                    help="niceness of the client processes: the 20 participants' stand-ins "
                         "share the server's two cores here, while real participants bring "
                         "their own machines; at 10 they give way to the server")
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the meeting")
    ap.add_argument("--warmup-minutes", type=float, default=5.0,
                    help="memory growth is measured from this far into the meeting")
    ap.add_argument("--sample-seconds", type=float, default=30.0,
                    help="how often the server's memory is sampled")
    ap.add_argument("--tail-samples", type=int, default=5,
                    help="samples whose median is taken at each end of the measurement")
    ap.add_argument("--count-every", type=float, default=60.0,
                    help="the clients count frames in the first --count-seconds of every "
                    "this many seconds")
    ap.add_argument("--count-seconds", type=float, default=10.0)
    ap.add_argument("--hello-burst", type=int, default=400,
                    help="sockets per burst from the attacking address")
    ap.add_argument("--attack-every", type=float, default=60.0,
                    help="seconds between hello bursts")
    ap.add_argument("--flood-every", type=float, default=30.0,
                    help="seconds between the extra participant's floods")
    ap.add_argument("--jobs-deadline-minutes", type=float, default=120.0,
                    help="after the end, jobs not finished by then are stuck")
    ap.add_argument("--stall-minutes", type=float, default=15.0,
                    help="a job whose state does not change this long is stuck")
    args = ap.parse_args()
    began = time.perf_counter()
    # Stopped from outside (SIGTERM): the clients and the server are still stopped, and
    # what the meeting showed stays in the results (``complete`` false).
    me = asyncio.current_task()
    assert me is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)
    try:
        result = await run(args)
    except asyncio.CancelledError:
        print("soak: stopped from outside; partial results (if the meeting was over) in",
              RESULTS, file=sys.stderr)
        raise SystemExit(143) from None
    result["run_s"] = round(time.perf_counter() - began, 1)
    result["complete"] = True
    write_result(result)
    print(table(result))
    print("targets met:", result["targets_met"])


if __name__ == "__main__":
    asyncio.run(main())

"""Media benchmark: N participants all-to-all, hoidong's passthrough vs aiortc's relay.

For each server and N, a fresh server process is started; N participants join (client
processes hosting a few peers each, sending pre-encoded VP8 640x480 ~500 kbps + Opus and
counting what they receive without decoding); after a warm-up, a measurement window
samples the server's CPU time and memory from /proc. The hoidong server is the real
app (`hoidong serve`: auth, signalling, recording every track to the store); the
baseline forwards only (bench/naive_server.py).

    python -m bench.media [--n 2,4,6,10,15,20] [--naive-max 20] [--seconds 15]
                          [--servers passthrough,passthrough_python,passthrough_sender,naive]
                          [--client-nice 0]

Writes bench/results/media.json: {server: {N: {cpu_cores, delivered_pct, p95_delay_ms,
rss_mb, ...}}} and prints a table. p95_delay_ms is each video frame's arrival delay
relative to its stream's own timeline, measured from the stream's fastest frame
(queueing and jitter added on the way; the clock is shared, all on one machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import media_fixture
from bench.proc import cpu_seconds, interrupt_ticks, machine_busy, rss_mb

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "media.json"
PEERS_PER_CLIENT = 4
# passthrough: hoidong as shipped; passthrough_python: the same with native_send off
# (SRTP and sendto per packet from Python); passthrough_sender: fast_forwarding off
# (every slot through aiortc's per-track sender task); naive: aiortc's MediaRelay.
SERVERS = ("passthrough", "passthrough_python", "passthrough_sender", "naive")
HOIDONG_ENV = {
    "passthrough": {},
    "passthrough_python": {"HOIDONG_NATIVE_SEND": "false"},
    "passthrough_sender": {"HOIDONG_FAST_FORWARDING": "false"},
}
WARMUP_S = 8.0
SETTLE_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server at {url} did not start")


def server_log() -> Any:
    """Where the server's output goes: $BENCH_SERVER_LOG (appended) or nowhere."""
    path = os.environ.get("BENCH_SERVER_LOG")
    return open(path, "ab") if path else subprocess.DEVNULL


async def start_hoidong(n: int, tmp: Path, fast: bool = True,
                        extra_env: dict[str, str] | None = None,
                        ) -> tuple[subprocess.Popen[bytes], str, str, list[dict[str, str]]]:
    """Start ``hoidong serve`` (``extra_env``: settings on top) with a started council
    meeting and ``n`` consenting members; returns (process, ws url, session, peers)."""
    port = free_port()
    env = {**os.environ, "HOIDONG_DATA_DIR": str(tmp / "data"), "HOIDONG_PORT": str(port),
           "HOIDONG_ADMIN_PASSWORD": "bench-password", "HOIDONG_MAX_PARTICIPANTS": str(n),
           "HOIDONG_TRANSCRIBE_ON_END": "false", "HOIDONG_WHISPER_MODEL": "tiny.en",
           "HOIDONG_LOG_LEVEL": "WARNING", "HOIDONG_FAST_FORWARDING": str(fast).lower(),
           **(extra_env or {})}
    log = server_log()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=ROOT,
                            stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    await wait_http(base + "/staff")
    # unsafe=True: keep cookies from an IP-address host (the login cookie here).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(base + "/api/login",
                             json={"username": "admin", "password": "bench-password"}) as r:
            csrf = (await r.json())["csrf_token"]
        h = {"X-CSRF-Token": csrf}

        async def post(path: str, body: dict[str, Any] | None = None) -> Any:
            async with http.post(base + path, json=body, headers=h) as r:
                assert r.status < 300, (path, r.status, await r.text())
                return await r.json()

        d = await post("/api/dossiers", {"title": "bench", "phase": "appraisal"})
        s = await post(f"/api/dossiers/{d['id']}/sessions",
                       {"kind": "council_meeting", "title": "bench"})
        await post(f"/api/sessions/{s['id']}/start")
        peers = []
        for i in range(n):
            p = await post(f"/api/sessions/{s['id']}/participants",
                           {"name": f"P{i}", "role": "member"})
            token = p["join_url"].rsplit("/", 1)[1]
            await post("/api/join/consent", {"token": token, "accepted": True})
            peers.append({"id": p["id"], "token": token})
    return proc, f"ws://127.0.0.1:{port}/ws/join", s["id"], peers


async def start_naive(n: int) -> tuple[subprocess.Popen[bytes], str, str, list[dict[str, str]]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.naive_server", str(port), str(n - 1)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await wait_http(f"http://127.0.0.1:{port}/")
    peers = [{"id": f"p{i}", "token": f"p{i}"} for i in range(n)]
    return proc, f"ws://127.0.0.1:{port}/ws/join", "naive", peers


async def run_one(server: str, n: int, seconds: float, client_nice: int = 0
                  ) -> dict[str, Any]:
    """One server and N. ``client_nice``: the clients' scheduling niceness (they share
    the machine with the server; at 10 they give way to it, as clients on other
    machines would; their own lateness is reported as ``client_send_lag_p95_ms``)."""
    with tempfile.TemporaryDirectory(prefix="hoidong-bench-") as tmp_s:
        tmp = Path(tmp_s)
        if server in HOIDONG_ENV:
            proc, ws_url, sid, peers = await start_hoidong(n, tmp, extra_env=HOIDONG_ENV[server])
        else:
            proc, ws_url, sid, peers = await start_naive(n)
        try:
            start = time.time() + WARMUP_S
            end = start + seconds
            clients = []
            for c in range(math.ceil(n / PEERS_PER_CLIENT)):
                spec = {"ws_url": ws_url, "session_id": sid, "window_start": start,
                        "window_end": end, "nice": client_nice,
                        "peers": peers[c * PEERS_PER_CLIENT:(c + 1) * PEERS_PER_CLIENT]}
                spec_path, out_path = tmp / f"spec{c}.json", tmp / f"out{c}.json"
                spec_path.write_text(json.dumps(spec))
                clients.append((subprocess.Popen(
                    [sys.executable, "-m", "bench.media_client", str(spec_path), str(out_path)],
                    cwd=ROOT), out_path))
            await asyncio.sleep(max(0.0, start - time.time()))
            cpu0 = cpu_seconds(proc.pid, with_children=True)
            busy0 = machine_busy()
            clients0 = sum(cpu_seconds(c.pid) for c, _ in clients)
            irq0 = interrupt_ticks()
            await asyncio.sleep(max(0.0, end - time.time()))
            cpu1 = cpu_seconds(proc.pid, with_children=True)
            busy1 = machine_busy()
            clients1 = sum(cpu_seconds(c.pid) for c, _ in clients)
            irq1 = interrupt_ticks()
            rss = rss_mb(proc.pid, with_children=True)
            reports = []
            for client, out in clients:
                await asyncio.to_thread(client.wait, 120)
                reports.append(json.loads(out.read_text()))
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(proc.wait, 60)
            except subprocess.TimeoutExpired:
                proc.kill()
    row = summarise(n, seconds, cpu1 - cpu0, rss, reports)
    # How busy the whole machine was in the window: near 100 %, clients and server are
    # competing for the two cores and the figures say more about the machine.
    row["machine_busy_pct"] = round(
        100 * (busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1]), 1)
    # The clients' share of the window; the kernel's interrupt time (loopback delivery
    # of every datagram, charged to no process); and the rest: other programs on the
    # machine, which make the run not comparable.
    window = max(1e-6, end - start)
    row["client_cores"] = round((clients1 - clients0) / window, 3)
    row["interrupt_cores"] = round((irq1 - irq0) / (os.sysconf("SC_CLK_TCK") * window), 3)
    cores = os.cpu_count() or 1
    row["other_cores"] = round(max(0.0, row["machine_busy_pct"] / 100 * cores
                                   - row["cpu_cores"] - row["client_cores"]
                                   - row["interrupt_cores"]), 2)
    return row


def summarise(n: int, seconds: float, cpu_s: float, rss: float,
              reports: list[dict[str, Any]]) -> dict[str, Any]:
    peers = {k: v for r in reports for k, v in r.items() if not k.startswith("_")}
    expected = {"video": 0, "audio": 0}
    got = {"video": 0, "audio": 0}
    delays: list[float] = []
    for sub, data in peers.items():
        for pub, pub_data in peers.items():
            if pub == sub:
                continue
            for kind in ("video", "audio"):
                expected[kind] += pub_data["sent"][kind]
                rec = data["received"].get(f"{pub}/{kind}")
                if rec:
                    got[kind] += rec["frames"]
                    if kind == "video":
                        delays += rec["delays_ms"]
    streams = n * (n - 1) * 2
    client_cpu = sum(r["_cpu_s"] for r in reports)
    lags = [x for data in peers.values() for x in data.get("send_lag_ms", [])]
    return {
        "n": n,
        "cpu_cores": round(cpu_s / seconds, 3),
        "cpu_s_per_participant_minute": round(cpu_s / (n * seconds / 60), 2),
        "cpu_pct_per_forwarded_stream": round(100 * cpu_s / seconds / streams, 3) if streams
        else None,
        # The fair cost measure: a saturated server "forwards" streams it never delivers.
        "cpu_us_per_delivered_frame": round(1e6 * cpu_s / (got["video"] + got["audio"]), 1)
        if got["video"] + got["audio"] else None,
        "delivered_pct": round(100 * got["video"] / expected["video"], 1)
        if expected["video"] else None,
        "audio_delivered_pct": round(100 * got["audio"] / expected["audio"], 1)
        if expected["audio"] else None,
        "p95_delay_ms": round(statistics.quantiles(delays, n=20)[-1], 1)
        if len(delays) > 20 else None,
        "rss_mb": round(rss, 1),
        "client_cpu_s": round(client_cpu, 1),
        # How late the clients sent (their own pace): part of p95_delay_ms when large.
        "client_send_lag_p95_ms": round(statistics.quantiles(lags, n=20)[-1], 1)
        if len(lags) > 20 else None,
    }


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    cols = ["cpu_cores", "cpu_s_per_participant_minute", "cpu_us_per_delivered_frame",
            "delivered_pct", "audio_delivered_pct", "p95_delay_ms", "client_send_lag_p95_ms",
            "rss_mb", "client_cpu_s",
            "client_cores", "interrupt_cores", "machine_busy_pct", "other_cores"]
    lines = ["| server | N | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for server, by_n in results.items():
        for n, row in sorted(by_n.items(), key=lambda kv: int(kv[0])):
            lines.append(f"| {server} | {n} | " + " | ".join(str(row[c]) for c in cols) + " |")
    return "\n".join(lines)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="2,4,6,10,15,20")
    ap.add_argument("--naive-max", type=int, default=20,
                    help="largest N for the baseline (it saturates two cores from N = 4; "
                    "lower this for a quicker run)")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--client-nice", type=int, default=0,
                    help="niceness of the client processes (10: they give way to the "
                    "server, as clients on other machines would)")
    ap.add_argument("--servers", default=",".join(SERVERS),
                    help="which of " + ", ".join(SERVERS) + " to run")
    args = ap.parse_args()
    ns = [int(x) for x in args.n.split(",")]
    servers = [x for x in args.servers.split(",") if x]
    results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in servers}
    # Made here once, before any client starts: on a fresh checkout every client process
    # used to encode it at the same time, and the first run measured nothing.
    await asyncio.to_thread(media_fixture.load)
    for n in ns:
        for server in servers:
            if server == "naive" and n > args.naive_max:
                continue
            # Let the machine settle: the previous run's processes (a saturated baseline
            # may hold gigabytes) are still being torn down by the kernel.
            await asyncio.sleep(SETTLE_S)
            row = await run_one(server, n, args.seconds, args.client_nice)
            results[server][str(n)] = row
            print(f"{server:12} N={n:2} {row}", flush=True)
    if "4" in results.get("passthrough", {}) and "4" in results.get("naive", {}):
        ratio = (results["naive"]["4"]["cpu_us_per_delivered_frame"]
                 / results["passthrough"]["4"]["cpu_us_per_delivered_frame"])
        results["ratio_naive_over_passthrough_cpu_per_frame_n4"] = {"value": round(ratio, 1)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(table({k: v for k, v in results.items() if k in SERVERS}))
    if "ratio_naive_over_passthrough_cpu_per_frame_n4" in results:
        print("CPU per delivered frame at N=4, naive / passthrough:",
              results["ratio_naive_over_passthrough_cpu_per_frame_n4"]["value"])


if __name__ == "__main__":
    asyncio.run(main())

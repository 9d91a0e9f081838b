"""The server is SIGKILLed mid-session with two Chromium participants recording; on the
next start it marks the session interrupted, enters the segments it finds in the spool,
stores them all and finishes every track. Per track, at most one segment is lost."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests import figures
from tests.test_e2e_browser import chromium_args, join_in_browser, make_speech
from tests.test_serve import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOIDONG = Path(sys.executable).with_name("hoidong")
SEGMENT_S = 5.0
PASSWORD = "mật-khẩu-thử-nghiệm"


@contextmanager
def server(data: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOIDONG_")}
    env.update(HOIDONG_DATA_DIR=str(data), HOIDONG_ADMIN_PASSWORD=PASSWORD,
               HOIDONG_SEGMENT_S=str(SEGMENT_S), HOIDONG_TRANSCRIBE_ON_END="false",
               HOIDONG_WHISPER_MODEL="tiny.en", PYTHONUNBUFFERED="1")
    with log.open("ab") as out:
        proc = subprocess.Popen([str(HOIDONG), "serve", "--port", str(port)], env=env,
                                cwd=data.parent, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base, self.csrf = http, base, ""

    async def ready(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, tail(log)
            try:
                async with self.http.post(f"{self.base}/api/login", json={
                        "username": "admin", "password": PASSWORD}) as resp:
                    if resp.status == 200:
                        self.csrf = (await resp.json())["csrf_token"]
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
        raise AssertionError("server did not come up: " + tail(log))

    async def __call__(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.base + path, json=body,
                                     headers={"X-CSRF-Token": self.csrf}) as resp:
            assert resp.status < 300, (resp.status, await resp.text())
            return await resp.json()


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def test_sigkill_mid_session_loses_at_most_a_segment(
    tmp_path: Path, chromium_path: str, espeak: str
) -> None:
    data, port, log = tmp_path / "data", free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    wav = make_speech(espeak, tmp_path / "speech.wav")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        api = Api(http, base)
        with server(data, port, log) as proc:
            await api.ready(proc, log)
            d = await api("POST", "/api/dossiers", {"title": "Hồ sơ", "phase": "appraisal"})
            s = await api("POST", f"/api/dossiers/{d['id']}/sessions",
                          {"kind": "council_meeting", "title": "Họp", "admission": "open"})
            sid = s["id"]
            await api("POST", f"/api/sessions/{sid}/start")
            people = [await api("POST", f"/api/sessions/{sid}/participants",
                                {"name": name, "role": "member"})
                      for name in ("Ủy viên Một", "Ủy viên Hai")]
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=chromium_path,
                                                  headless=True, args=chromium_args(wav))
                try:
                    for person in people:
                        page = await browser.new_page()
                        await join_in_browser(page, base + "/join/"
                                              + person["join_url"].split("/join/", 1)[1])
                    await asyncio.sleep(30)
                    killed_at = time.time()
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=10)
                finally:
                    await browser.close()  # nobody reconnects to the next server
        with server(data, port, log) as proc:
            api = Api(http, base)
            await api.ready(proc, log)
            deadline = time.monotonic() + 60
            while True:
                segments = await api("GET", f"/api/sessions/{sid}/segments")
                recordings = await api("GET", f"/api/sessions/{sid}/recordings")
                if (all(x["status"] == "stored" for x in segments)
                        and sum(r["status"] == "stored" for r in recordings) >= 4):
                    break
                assert time.monotonic() < deadline, (segments, recordings)
                await asyncio.sleep(1)
            while True:  # the composite of what was recorded up to the crash
                composite = await api("GET", f"/api/sessions/{sid}/composite")
                if composite["status"] in ("done", "failed"):
                    break
                assert time.monotonic() < deadline + 120, composite
                await asyncio.sleep(1)
            events = await api("GET", f"/api/sessions/{sid}/audit")
    kinds = [e["kind"] for e in events]
    assert kinds.count("session.interrupted") == 1
    crashed = [e for e in events if e["kind"] == "participant.left"
               and e["data"]["reason"] == "server_crash"]
    assert {e["participant_id"] for e in crashed} == {x["id"] for x in people}
    assert "recording.segment_recovered" in kinds  # the open segments, found in the spool
    tracks: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in segments:
        tracks.setdefault((row["participant_id"], row["kind"]), []).append(row)
    assert len(tracks) == 4, tracks.keys()  # two people, audio and video each
    lost_s: list[float] = []
    for (who, kind), rows in tracks.items():
        rows.sort(key=lambda x: x["seq"])
        assert [x["seq"] for x in rows] == list(range(len(rows))), (who, kind)
        assert len(rows) >= 4, (who, kind, len(rows))  # ~30 s in 5 s segments
        for row in rows:
            stored = (data / "objects" / row["object_key"]).read_bytes()
            assert hashlib.sha256(stored).hexdigest() == row["sha256"]
        # What was lost: from the last media kept to the kill, at most one segment.
        lost = killed_at - ts(rows[-1]["ended_at"])
        assert lost <= SEGMENT_S + 1.0, (who, kind, lost)
        lost_s.append(lost)
    assert composite["status"] == "done", composite
    assert set(composite["details"]["participants"]) == {x["id"] for x in people}
    assert composite["duration_s"] >= 25  # the ~30 s recorded before the kill
    stored_recs = [r for r in recordings if r["status"] == "stored"]
    for rec in stored_recs:
        rows = tracks[(rec["participant_id"], rec["kind"])]
        assert rec["frames"] == sum(x["frames"] for x in rows)
    figures.record("sigkill", {
        "segment_s": SEGMENT_S, "tracks": len(tracks),
        "segments_stored": sum(len(rows) for rows in tracks.values()),
        "max_lost_s_per_track": round(max(lost_s), 2),
        "command": "HOIDONG_WRITE_RESULTS=1 .venv/bin/pytest tests/test_crash.py",
    })

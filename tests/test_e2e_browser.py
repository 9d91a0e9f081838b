"""One session end to end in real Chromium: join, record, transcribe, store, audit.

Chromium (Debian's, driven by Playwright) joins with its fake camera and a fake
microphone playing English speech made by espeak-ng. The test then checks what the
server itself kept: both recordings with plausible durations and hashes that match
the stored bytes, a transcript (real Whisper, tiny.en) attributed to the participant,
and the audit events in order. It runs against local storage with SQLite and against
an S3 server (moto, server mode) with PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from playwright.async_api import Page, async_playwright

from server.state import STORE
from tests.conftest import (
    ADMIN_PASSWORD,
    POSTGRES_URL,
    Running,
    make_settings,
    need,
    start_app,
)
from tests.s3server import S3_TEST_CREDENTIALS, moto_s3_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Three different sentences (13 s), each with the words the tests look for. Chromium loops
# the file; one sentence looped made Whisper's text so repetitive that its compression
# check rejected the right reading at temperature 0 and a random one at 0.5 or 1.0 won
# ("the", in one CI run). Any 12 s of this loop holds at least two whole sentences.
SPEECH = ("The accreditation council reviewed the university report. "
          "Council members asked how the university wrote its report on graduates. "
          "The secretary read the report of the university to the council.")
SPEAK_SECONDS = 12


def make_speech(espeak: str, out: Path) -> Path:
    """A WAV of SPEECH (Chromium loops it as the microphone)."""
    subprocess.run([espeak, "-v", "en-us", "-s", "140", "-w", str(out), SPEECH], check=True)
    return out


def small_camera(out: Path) -> Path:
    """A 320x240, 15 fps test pattern for Chromium's fake camera (it loops the file).

    Chromium's own fake camera is 640x480 at 30 fps; encoding that while the server and
    Whisper share two cores has made the fake microphone stutter in full CI runs.
    """
    from media.ffmpeg import ffmpeg_path

    subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=s=320x240:r=15:d=4", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def chromium_args(wav: Path) -> list[str]:
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]


@pytest.fixture(params=["local-sqlite", "minio-postgres"])
async def e2e_app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    if request.param == "local-sqlite":
        settings = make_settings(tmp_path)
        async for r in start_app(settings):
            yield r
        return
    need(bool(POSTGRES_URL), "PostgreSQL (HOIDONG_TEST_POSTGRES_URL)")
    from tests.conftest import _create_pg_database, _drop_pg_database

    db_url, db_name = await _create_pg_database(POSTGRES_URL)
    try:
        with moto_s3_server() as endpoint:
            access, secret = S3_TEST_CREDENTIALS
            settings = make_settings(
                tmp_path,
                database_url=db_url,
                storage_backend="minio",
                s3_endpoint=endpoint,
                s3_access_key=access,
                s3_secret_key=secret,
                s3_bucket="hoidong-e2e",
            )
            async for r in start_app(settings):
                yield r
    finally:
        await _drop_pg_database(POSTGRES_URL, db_name)


async def join_in_browser(page: Page, url: str, until: str = "connected") -> None:
    """Open the join link, allow devices, consent, enter; wait for ``#status`` to
    reach ``until`` (``waiting``: in the lobby)."""
    await page.goto(url)
    await page.click("#device-start")
    await page.wait_for_selector("#device-status[data-ok='true']", timeout=15000)
    await page.click("#consent-accept")
    await page.wait_for_selector("#join-enter:not([disabled])", timeout=10000)
    await page.click("#join-enter")
    await page.wait_for_selector(f"#status[data-state='{until}']", timeout=30000)


async def staff_login(page: Page, base_url: str, password: str) -> None:
    """Log in as the administrator on ``/staff`` and wait for the workspace."""
    await page.goto(base_url + "/staff")
    await page.fill("#login-form [name=username]", "admin")
    await page.fill("#login-form [name=password]", password)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#workspace:not([hidden])")


async def wait_for_transcript(r: Running, session_id: str) -> dict[str, Any]:
    timeout = 240.0
    deadline = time.monotonic() + timeout
    tr: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            tr = await r.api("GET", f"/api/sessions/{session_id}/transcript")
        except aiohttp.ServerDisconnectedError:
            # A pooled keep-alive connection the server had just closed (seen once in
            # CI right after a long POST /end): a poll, so poll again.
            await asyncio.sleep(0.5)
            continue
        if tr["status"] in ("done", "failed"):
            return tr
        await asyncio.sleep(1)
    raise AssertionError(f"transcript not ready after {timeout} s: {tr}")


async def diagnose(r: Running, sid: str, transcript: dict[str, Any], out: Path) -> str:
    """What the server heard, for a failure message: the transcript's status and text and
    the recorded audio's loudness per second (dBFS), the audio kept in ``out``."""
    import numpy as np

    lines = [f"transcript {transcript.get('status')}: {transcript.get('error')!r}"]
    lines += [f"  {seg['start']:.1f}-{seg['end']:.1f} {seg['text']}"
              for seg in transcript.get("segments", [])]
    for rec in await r.api("GET", f"/api/sessions/{sid}/recordings"):
        if rec["kind"] != "audio" or rec["status"] != "stored":
            continue
        resp = await r.client.get(rec["media_url"], headers=r.auth())
        local = out / f"failed-{sid}.webm"
        local.write_bytes(await resp.read())
        with av.open(str(local)) as container:
            samples = np.concatenate([
                f.to_ndarray().astype("float32").reshape(-1)
                for f in container.decode(audio=0)
            ])
        rate = 48000 * 2  # interleaved stereo Opus at 48 kHz
        levels = [
            20 * np.log10(max(float(np.sqrt(np.mean(chunk ** 2))), 1e-9))
            for chunk in (samples[i:i + rate] for i in range(0, len(samples), rate))
            if len(chunk)
        ]
        lines.append(f"audio {rec['duration_s']:.1f} s, dBFS per s: "
                     + " ".join(f"{lv:.0f}" for lv in levels) + f" (kept in {local})")
    events = await r.api("GET", f"/api/sessions/{sid}/audit")
    lines.append("audit: " + " ".join(e["kind"] for e in events))
    return "\n".join(lines)


def is_subsequence(wanted: list[str], seen: list[str]) -> bool:
    it = iter(seen)
    return all(any(kind == w for kind in it) for w in wanted)


async def test_session_end_to_end(
    e2e_app: Running, chromium_path: str, espeak: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    r = e2e_app
    wav = make_speech(espeak, tmp_path / "speech.wav")
    dossier = await r.api(
        "POST",
        "/api/dossiers",
        {"title": "Hồ sơ thẩm định Trường Đại học A", "phase": "appraisal"},
        201,
    )
    session = await r.api(
        "POST",
        f"/api/dossiers/{dossier['id']}/sessions",
        {"kind": "council_meeting", "title": "Phiên họp Hội đồng", "language": "en"},
        201,
    )
    sid = session["id"]
    member = await r.api(
        "POST",
        f"/api/sessions/{sid}/participants",
        {"name": "Trần Thị Bình", "role": "member"},
        201,
    )
    await r.api("POST", f"/api/sessions/{sid}/start")
    join_path = "/join/" + member["join_url"].split("/join/", 1)[1]

    async with async_playwright() as p:
        camera = small_camera(tmp_path / "camera.y4m")
        browser = await p.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[*chromium_args(wav), f"--use-file-for-fake-video-capture={camera}"],
        )
        try:
            page = await browser.new_page()
            await join_in_browser(page, r.base_url + join_path)
            connected_at = time.monotonic()
            await asyncio.sleep(SPEAK_SECONDS)
            await page.screenshot(path=str(artifacts_dir / "join-live.png"), full_page=True)
            ended = await r.api("POST", f"/api/sessions/{sid}/end")
            talked = time.monotonic() - connected_at
            assert ended["status"] == "ended"
            await page.wait_for_selector("#status[data-state='ended']", timeout=10000)

            # The secretary's view of the same session, once it is transcribed.
            early = await wait_for_transcript(r, sid)
            assert early["status"] == "done" and early["segments"], await diagnose(
                r, sid, early, artifacts_dir
            )
            staff = await browser.new_page(viewport={"width": 1280, "height": 900})
            await staff.goto(r.base_url + "/staff")
            await staff.fill("#login-form [name=username]", "admin")
            await staff.fill("#login-form [name=password]", ADMIN_PASSWORD)
            await staff.click("#login-form button[type=submit]")
            await staff.wait_for_selector("#workspace:not([hidden])")
            await staff.goto(r.base_url + f"/staff/sessions/{sid}")
            line = staff.locator(f"#transcript li[data-participant-id='{member['id']}']").first
            await line.wait_for(timeout=15000)
            assert "Trần Thị Bình" in await line.inner_text()
            assert await staff.locator("#recordings tr").count() == 2
            assert await staff.locator("#participant-form").is_hidden()  # session ended
            assert await staff.locator("#audit tr").count() >= 10
            await staff.screenshot(
                path=str(artifacts_dir / f"session-{r.settings.storage_backend}.png"),
                full_page=True,
            )
        finally:
            await browser.close()

    # Recordings: both tracks, plausible durations, stored hashes match the bytes.
    recordings = await r.api("GET", f"/api/sessions/{sid}/recordings")
    by_kind = {rec["kind"]: rec for rec in recordings}
    assert set(by_kind) == {"audio", "video"}, recordings
    for kind, rec in by_kind.items():
        assert rec["status"] == "stored", rec
        assert rec["participant_id"] == member["id"]
        assert talked - 5 <= rec["duration_s"] <= talked + 2, (kind, rec["duration_s"], talked)
        resp = await r.client.get(rec["media_url"], headers=r.auth())
        assert resp.status == 200
        data = await resp.read()
        assert len(data) == rec["size"]
        assert hashlib.sha256(data).hexdigest() == rec["sha256"]
        stored = await r.app[STORE].stat(rec["object_key"])
        assert stored.sha256 == rec["sha256"]
        local = tmp_path / f"{kind}.webm"
        local.write_bytes(data)
        with av.open(str(local)) as container:
            stream = container.streams.audio[0] if kind == "audio" else container.streams.video[0]
            assert stream.codec_context.name == ("opus" if kind == "audio" else "vp8")
            frames = sum(1 for _ in container.decode(stream))
        with av.open(str(local)) as container:
            stream = container.streams.audio[0] if kind == "audio" else container.streams.video[0]
            last = max(
                float(pk.pts * stream.time_base)
                for pk in container.demux(stream)
                if pk.pts is not None
            )
        assert frames > (40 if kind == "video" else 200), (kind, frames)
        assert abs(last - rec["duration_s"]) < 1.0, (kind, last, rec["duration_s"])
    assert r.app[STORE].name == r.settings.storage_backend

    # Transcript: the spoken words, attributed to the participant who spoke them.
    transcript = await wait_for_transcript(r, sid)
    assert transcript["status"] == "done", transcript
    text = " ".join(seg["text"] for seg in transcript["segments"]).lower()
    # Word stems: a loaded machine makes Chromium's fake microphone stutter, and tiny.en
    # then hears "inversity" or "u-n-varsity"; the stem still proves the word was spoken
    # and attributed.
    # tiny.en cannot tell council from counsel through Opus; either proves the word.
    stems = [("versity", "varsity"), ("report",), ("council", "counsel")]
    missing = [stem for stem in stems if not any(form in text for form in stem)]
    assert not missing, (missing, await diagnose(r, sid, transcript, artifacts_dir))
    assert {seg["participant_id"] for seg in transcript["segments"]} == {member["id"]}
    assert all(seg["speaker"] == "Trần Thị Bình" for seg in transcript["segments"])
    vtt = await r.client.get(f"/api/sessions/{sid}/transcript.vtt", headers=r.auth())
    vtt_text = await vtt.text()
    assert vtt_text.startswith("WEBVTT") and "<v Trần Thị Bình>" in vtt_text
    doc = await r.client.get(f"/api/sessions/{sid}/transcript.json", headers=r.auth())
    assert hashlib.sha256(await doc.read()).hexdigest() == transcript["sha256"]

    # Audit: every evidence event, in order.
    events = await r.api("GET", f"/api/sessions/{sid}/audit")
    kinds = [e["kind"] for e in events]
    assert is_subsequence(
        [
            "session.created",
            "participant.invited",
            "session.started",
            "participant.consented",
            "participant.joined",
            "session.ended",
            "participant.left",
            "recording.stored",
            "recording.stored",
            "transcript.stored",
        ],
        kinds,
    ), kinds
    stored_events = [e for e in events if e["kind"] == "recording.stored"]
    assert {e["data"]["sha256"] for e in stored_events} == {rec["sha256"] for rec in recordings}

    # The archive: the spoken words are found, and the session packs into a package
    # that checks out offline with both recordings, the composite and the transcript.
    hits = await r.api("GET", "/api/search?q=report")
    assert any(h["session_id"] == sid for h in hits), hits
    package = await r.api("POST", f"/api/sessions/{sid}/packages", None, 201)
    resp = await r.client.get(package["download_url"], headers=r.auth())
    zipped = tmp_path / "package.zip"
    zipped.write_bytes(await resp.read())
    from storage.archive import verify_package

    report = await asyncio.to_thread(verify_package, zipped)
    assert report.ok, report.problems
    assert report.merkle_root == package["merkle_root"]
    with zipfile.ZipFile(zipped) as z:
        names = z.namelist()
    assert sum("/data/recordings/" in n for n in names) == 2, names
    assert any("/data/transcripts/transcript.json" in n for n in names), names
    assert any("/data/reports/attendance" in n for n in names), names

"""No secret reaches the logs: a meeting run end to end in-process with every logger at
INFO and hoidong's own at DEBUG, then the log text searched for the admin's password,
the server's key, the TURN secret, join and minutes tokens, the bearer token, the login
cookie and the CSRF token."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.conftest import ADMIN_PASSWORD, make_settings, start_app
from tests.test_forwarding import close_all, join_with_media
from tests.test_signalling import invite, new_session

TURN_SECRET = "turn-secret-" + "t" * 30


async def test_no_secret_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for name in ("server", "media", "storage", "transcription"):
        caplog.set_level(logging.DEBUG, logger=name)
    settings = make_settings(tmp_path, transcribe_on_end=False, turn_secret=TURN_SECRET,
                             turn_urls="turn:127.0.0.1:3478")
    async for r in start_app(settings):
        login = await r.client.post("/api/login", json={"username": "admin",
                                                         "password": ADMIN_PASSWORD})
        csrf = (await login.json())["csrf_token"]
        cookie = login.cookies["hoidong_login"].value
        sid = await new_session(r)
        people = [await invite(r, sid, name, role) for name, role in
                  (("Chủ tịch", "chair"), ("Thư ký", "secretary"))]
        clients = [await join_with_media(r, sid, who, receive_slots=1) for who in people]
        await asyncio.sleep(2)
        await close_all(clients)
        await r.api("POST", f"/api/sessions/{sid}/end")
        await r.api("POST", f"/api/sessions/{sid}/minutes/versions",
                    {"base": None, "content": {"title": "Biên bản"}}, 201)
        links = await r.api("POST", f"/api/sessions/{sid}/minutes/links", None, 201)
        minutes_tokens = [x["url"].rsplit("/", 1)[1] for x in links]
        bad = await r.client.post("/api/minutes/view", json={"token": minutes_tokens[0] + "x"})
        assert bad.status == 401
        secrets = {"admin password": ADMIN_PASSWORD, "secret key": settings.secret_key,
                   "TURN secret": TURN_SECRET, "bearer token": r.token,
                   "login cookie": cookie, "CSRF token": csrf,
                   **{f"join token {w.name}": w.token for w in people},
                   **{f"minutes token {i}": tok for i, tok in enumerate(minutes_tokens)}}
    text = caplog.text
    assert len(text) > 1000, "the run logged almost nothing: the test would prove nothing"
    leaked = [what for what, value in secrets.items() if value and value in text]
    assert not leaked, leaked

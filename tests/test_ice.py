"""TURN credentials in coturn's REST format, and what the welcome message carries."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

from server.ice import ice_servers, turn_credentials
from tests.conftest import make_settings, start_app
from tests.test_signalling import invite, joined, new_session


def test_turn_credentials_are_coturn_rest_credentials() -> None:
    username, password = turn_credentials("s3cret", "p1", now=1_700_000_000, ttl_s=3600)
    assert username == "1700003600:p1"
    # What coturn computes for use-auth-secret: base64(HMAC-SHA1(secret, username)).
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest())
    assert password == expected.decode()
    assert turn_credentials("other", "p1", 1_700_000_000, 3600)[1] != password


def test_ice_servers_from_settings(tmp_path: Path) -> None:
    none = make_settings(tmp_path)
    assert ice_servers(none, "p1", 0) == []
    s = make_settings(tmp_path, stun_urls="stun:a.vn:3478, stun:b.vn:3478",
                      turn_urls="turn:a.vn:3478?transport=udp,turns:a.vn:5349",
                      turn_secret="k", turn_ttl_s=600)
    stun, turn = ice_servers(s, "p1", 1000)
    assert stun == {"urls": ["stun:a.vn:3478", "stun:b.vn:3478"]}
    assert turn["urls"] == ["turn:a.vn:3478?transport=udp", "turns:a.vn:5349"]
    assert turn["username"] == "1600:p1"
    assert (turn["username"], turn["credential"]) == turn_credentials("k", "p1", 1000, 600)
    # TURN without its secret is left out rather than offered with unusable credentials.
    assert ice_servers(make_settings(tmp_path, turn_urls="turn:a.vn"), "p1", 0) == []


async def test_welcome_carries_per_join_turn_credentials(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, turn_urls="turn:turn.example.vn:3478", turn_secret="k",
                             transcribe_on_end=False)
    async for r in start_app(settings):
        sid = await new_session(r)
        who = await invite(r, sid, "Người A", "observer")
        ws = await joined(r, who, sid)
        await ws.close()
        ws = await r.client.ws_connect("/ws/join")
        await ws.send_json({"type": "hello", "token": who.token, "session_id": sid})
        welcome = await ws.receive_json()
        (turn,) = welcome["ice_servers"]
        expiry, participant = turn["username"].split(":")
        assert participant == who.id
        assert turn["credential"] == turn_credentials("k", who.id, int(expiry) - 86400, 86400)[1]
        await ws.close()

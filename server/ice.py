"""ICE servers for a participant: STUN as configured, TURN with ephemeral credentials.

TURN credentials follow coturn's REST API (``use-auth-secret``): the username is
``<expiry unix time>:<participant id>`` and the password is the base64 HMAC-SHA1 of the
username keyed with the shared secret. They are issued per join, so a leaked join page
gives TURN access for ``turn_ttl_s`` at most, and coturn needs no user database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from server.settings import Settings


def _split(urls: str) -> list[str]:
    return [u.strip() for u in urls.split(",") if u.strip()]


def turn_credentials(secret: str, participant_id: str, now: float, ttl_s: int) -> tuple[str, str]:
    """(username, password) valid until ``now + ttl_s`` (seconds since the epoch)."""
    username = f"{int(now) + ttl_s}:{participant_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(settings: Settings, participant_id: str, now: float) -> list[dict[str, Any]]:
    """The ``RTCPeerConnection`` ``iceServers`` for one participant's browser."""
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": _split(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret:
        username, password = turn_credentials(
            settings.turn_secret, participant_id, now, settings.turn_ttl_s
        )
        servers.append({"urls": _split(settings.turn_urls), "username": username,
                        "credential": password})
    return servers

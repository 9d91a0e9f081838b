"""Personal join links: JWTs signed with HS256 (pinned), issuer checked.

A token names one participant of one session with their role and expires. Anything
else — another algorithm (``none`` included), a wrong signature, a wrong issuer, a
missing claim, an expired token, or a token for another session — is refused with
a :class:`JoinTokenError` whose ``code`` is a catalogue key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ISSUER = "hoidong"
ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "iss", "sub", "sid", "role", "typ"]


class JoinTokenError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class JoinClaims:
    session_id: str
    participant_id: str
    role: str
    expires_at: datetime
    token_id: str


def issue(
    secret: str, *, session_id: str, participant_id: str, role: str, now: datetime,
    lifetime: timedelta, typ: str = "join",
) -> str:
    """A personal link's token; ``typ`` says what it is for (``join``: the meeting,
    ``minutes``: agreeing to the minutes) and a token of one kind never opens the other."""
    payload = {
        "iss": ISSUER,
        "typ": typ,
        "sub": participant_id,
        "sid": session_id,
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str, *, session_id: str | None = None,
           typ: str = "join") -> JoinClaims:
    """Check ``token`` (of kind ``typ``); with ``session_id``, also that it belongs to
    that session."""
    if not token or len(token) > 4096:
        raise JoinTokenError("join.invalid")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": _REQUIRED},
        )
    except jwt.ExpiredSignatureError:
        raise JoinTokenError("join.expired") from None
    except jwt.PyJWTError:
        raise JoinTokenError("join.invalid") from None
    if claims.get("typ") != typ or not all(
        isinstance(claims.get(k), str) for k in ("sub", "sid", "role")
    ):
        raise JoinTokenError("join.invalid")
    if session_id is not None and claims["sid"] != session_id:
        raise JoinTokenError("join.wrong_session")
    return JoinClaims(
        session_id=claims["sid"],
        participant_id=claims["sub"],
        role=claims["role"],
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        token_id=str(claims.get("jti", "")),
    )

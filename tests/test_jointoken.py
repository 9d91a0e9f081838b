"""Join links: HS256 pinned, issuer checked, every claim required, nothing else accepted."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from server import jointoken
from server.jointoken import JoinTokenError, issue, verify

SECRET = "join-secret-" + "k" * 60  # 64+ bytes: long enough even for HS512
OTHER_SECRET = "other-secret-" + "q" * 60
SESSION = "a" * 32
PARTICIPANT = "b" * 32


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fresh(role: str = "member", lifetime: timedelta = timedelta(hours=1)) -> str:
    return issue(SECRET, session_id=SESSION, participant_id=PARTICIPANT, role=role,
                 now=datetime.now(UTC), lifetime=lifetime)


def claims(**changes: Any) -> dict[str, Any]:
    """A valid payload with ``changes`` applied (a value of ``None`` removes the claim)."""
    now = int(datetime.now(UTC).timestamp())
    payload: dict[str, Any] = {
        "iss": "hoidong", "typ": "join", "sub": PARTICIPANT, "sid": SESSION, "role": "member",
        "iat": now, "exp": now + 3600, "jti": "j" * 32,
    }
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def signed(payload: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def refused(token: str, code: str = "join.invalid", session_id: str | None = SESSION) -> None:
    with pytest.raises(JoinTokenError) as info:
        verify(SECRET, token, session_id=session_id)
    assert info.value.code == code


# -- accepted -----------------------------------------------------------------------------

def test_round_trip() -> None:
    now = datetime.now(UTC)
    lifetime = timedelta(hours=168)
    token = issue(SECRET, session_id=SESSION, participant_id=PARTICIPANT, role="chair",
                  now=now, lifetime=lifetime)
    assert token.count(".") == 2
    header = json.loads(unb64(token.split(".")[0]))
    assert header["alg"] == "HS256"
    got = verify(SECRET, token, session_id=SESSION)
    assert got.session_id == SESSION
    assert got.participant_id == PARTICIPANT
    assert got.role == "chair"
    assert got.expires_at == (now + lifetime).replace(microsecond=0)
    assert got.expires_at.tzinfo is not None and got.expires_at.utcoffset() == timedelta(0)
    assert len(got.token_id) == 32
    # Without a session to check against, the claims are still returned.
    assert verify(SECRET, token) == got


def test_every_token_is_distinct() -> None:
    a, b = fresh(), fresh()
    assert a != b
    assert verify(SECRET, a).token_id != verify(SECRET, b).token_id


def test_token_made_with_the_documented_claims_verifies() -> None:
    """A hand-built token with exactly the documented claims is accepted (so the refusals
    below are refused for the one thing each changes)."""
    got = verify(SECRET, signed(claims()), session_id=SESSION)
    assert (got.session_id, got.participant_id, got.role) == (SESSION, PARTICIPANT, "member")


# -- refused ------------------------------------------------------------------------------

def test_expired() -> None:
    token = issue(SECRET, session_id=SESSION, participant_id=PARTICIPANT, role="member",
                  now=datetime.now(UTC) - timedelta(hours=2), lifetime=timedelta(hours=1))
    refused(token, "join.expired")
    refused(signed(claims(exp=int(datetime.now(UTC).timestamp()) - 5)), "join.expired")


def test_wrong_signature() -> None:
    token = issue(OTHER_SECRET, session_id=SESSION, participant_id=PARTICIPANT, role="member",
                  now=datetime.now(UTC), lifetime=timedelta(hours=1))
    assert verify(OTHER_SECRET, token).session_id == SESSION
    refused(token)


def test_wrong_session() -> None:
    refused(fresh(), "join.wrong_session", session_id="c" * 32)


def test_alg_none_is_refused() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(role="chair")).encode())
    refused(f"{header}.{payload}.")
    # Same with the signature of a genuine token glued on.
    refused(f"{header}.{payload}.{fresh().split('.')[2]}")


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_with_the_same_secret_are_refused(algorithm: str) -> None:
    token = signed(claims(), algorithm=algorithm)
    # The token is genuine for its own algorithm...
    assert jwt.decode(token, SECRET, algorithms=[algorithm], issuer="hoidong")["sid"] == SESSION
    # ...but the pinned algorithm is HS256.
    refused(token)


def test_header_claiming_hs256_over_another_signature_is_refused() -> None:
    token = signed(claims(), algorithm="HS512")
    _, payload, signature = token.split(".")
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    refused(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("issuer", ["someone-else", "Hoidong", ""])
def test_wrong_issuer(issuer: str) -> None:
    refused(signed(claims(iss=issuer)))


@pytest.mark.parametrize("missing", ["sid", "exp", "sub", "role", "typ", "iss", "iat"])
def test_missing_claim(missing: str) -> None:
    refused(signed(claims(**{missing: None})))


@pytest.mark.parametrize("typ", ["login", "JOIN", "access", ""])
def test_typ_must_be_join(typ: str) -> None:
    refused(signed(claims(typ=typ)))


@pytest.mark.parametrize(("claim", "value"), [
    ("sid", 12345), ("sub", ["x"]), ("role", {"r": "chair"}), ("sid", True),
])
def test_claims_must_be_strings(claim: str, value: Any) -> None:
    refused(signed(claims(**{claim: value})))


@pytest.mark.parametrize("garbage", [
    "", "x", "not-a-token", "a.b", "a.b.c", "...", "....", "Bearer abc", "🙂.🙂.🙂",
    "eyJhbGciOiJIUzI1NiJ9..", "%00%00", "\x00",
])
def test_garbage(garbage: str) -> None:
    refused(garbage)


def test_over_long_token_is_refused_before_decoding() -> None:
    token = signed(claims(pad="x" * 5000))
    assert len(token) > 4096
    # Genuinely signed: only its length makes verify refuse it.
    assert jwt.decode(token, SECRET, algorithms=["HS256"], issuer="hoidong")["pad"]
    refused(token)
    short = signed(claims(pad="x" * 2000))
    assert len(short) <= 4096
    assert verify(SECRET, short).session_id == SESSION


def test_tampered_payload_is_refused() -> None:
    token = fresh(role="member")
    header, payload, signature = token.split(".")
    body = json.loads(unb64(payload))
    assert body["role"] == "member"
    body["role"] = "chair"
    forged = f"{header}.{b64(json.dumps(body).encode())}.{signature}"
    assert forged != token
    refused(forged)
    # Extending the lifetime is refused the same way.
    body = json.loads(unb64(payload))
    body["exp"] += 10 * 365 * 86400
    refused(f"{header}.{b64(json.dumps(body).encode())}.{signature}")


def test_truncated_or_flipped_signature_is_refused() -> None:
    token = fresh()
    refused(token[:-1])
    last = token[-1]
    refused(token[:-1] + ("A" if last != "A" else "B"))
    refused(token.rsplit(".", 1)[0] + ".")


def test_algorithm_is_pinned_to_hs256() -> None:
    assert jointoken.ALGORITHM == "HS256"
    assert jointoken.ISSUER == "hoidong"

"""Staff authentication: argon2 passwords, cookie logins with CSRF, bearer API tokens.

Only hashes are stored: argon2id for passwords; SHA-256 for login cookies and API
tokens (they are 256-bit random values, so a fast hash is enough). A browser login
sends its CSRF token in the ``X-CSRF-Token`` header on every unsafe request; bearer
requests need none (no ambient authority to abuse).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from aiohttp.typedefs import Middleware
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from server.database import Database
from server.errors import ApiError
from server.i18n import LANGUAGES
from server.models import ApiToken, LoginSession, StaffRole, User, utcnow

COOKIE_NAME = "hoidong_login"
CSRF_HEADER = "X-CSRF-Token"
TOKEN_PREFIX = "hd_"
_hasher = PasswordHasher()
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_secret_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Identity:
    """Who made a request: a staff user, and how they proved it."""

    user: User
    via: str  # "cookie" | "bearer"
    csrf_token: str | None = None

    @property
    def actor(self) -> str:
        return f"user:{self.user.id}"


async def create_user(
    db: Database, *, username: str, password: str, role: str, display_name: str = ""
) -> User:
    if role not in {r.value for r in StaffRole}:
        raise ValueError(f"unknown role {role!r}")
    user = User(
        username=username, display_name=display_name or username, role=role,
        password_hash=hash_password(password),
    )
    async with db.session() as s:
        s.add(user)
        await s.commit()
    return user


async def create_api_token(db: Database, *, username: str, name: str = "") -> str:
    """Make a bearer token for ``username``; the token is returned once, never stored."""
    async with db.session() as s:
        user = (await s.execute(select(User).where(User.username == username))).scalar_one_or_none()
        if user is None:
            raise LookupError(username)
        token = new_secret_token()
        s.add(ApiToken(user_id=user.id, name=name, token_hash=token_hash(token)))
        await s.commit()
    return token


@dataclass(frozen=True)
class NewLogin:
    """A login just made: the cookie value and CSRF token to hand out, once."""

    user: User
    cookie: str
    csrf_token: str


async def login(db: Database, username: str, password: str, hours: int) -> NewLogin | None:
    """Check credentials; on success a new login, else None."""
    async with db.session() as s:
        user = (await s.execute(select(User).where(User.username == username))).scalar_one_or_none()
        # Hash even for an unknown user so timing does not reveal which names exist.
        ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
        if user is None or not ok or not user.active:
            return None
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        s.add(LoginSession(
            user_id=user.id, token_hash=token_hash(cookie), csrf_token=csrf,
            expires_at=utcnow() + timedelta(hours=hours),
        ))
        await s.commit()
    return NewLogin(user, cookie, csrf)


async def logout(db: Database, cookie: str) -> None:
    async with db.session() as s:
        row = (await s.execute(
            select(LoginSession).where(LoginSession.token_hash == token_hash(cookie))
        )).scalar_one_or_none()
        if row is not None:
            row.expires_at = utcnow()
            await s.commit()


_DUMMY_HASH = hash_password(secrets.token_hex(8))


async def identify(db: Database, request: web.Request) -> Identity | None:
    """The staff identity behind ``request``, or None for an anonymous one.

    A malformed or unknown credential is treated as none at all; handlers that
    need a user then answer 401.
    """
    header = request.headers.get("Authorization", "")
    async with db.session() as s:
        if header.startswith("Bearer "):
            token = header[7:].strip()
            row = (await s.execute(
                select(User).join(ApiToken, ApiToken.user_id == User.id).where(
                    ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None)
                )
            )).scalar_one_or_none()
            return Identity(row, "bearer") if row is not None and row.active else None
        cookie = request.cookies.get(COOKIE_NAME)
        if cookie:
            found = (await s.execute(
                select(User, LoginSession).join(LoginSession, LoginSession.user_id == User.id)
                .where(LoginSession.token_hash == token_hash(cookie))
            )).first()
            if found is not None:
                user, login_row = found
                if login_row.expires_at > utcnow() and user.active:
                    return Identity(user, "cookie", login_row.csrf_token)
    return None


def check_csrf(request: web.Request, ident: Identity) -> None:
    if ident.via != "cookie" or request.method in _SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not ident.csrf_token or not hmac.compare_digest(sent, ident.csrf_token):
        raise ApiError(403, "auth.csrf")


IDENTITY_KEY: web.RequestKey[Identity | None] = web.RequestKey("identity")


def require_staff(request: web.Request, roles: Iterable[str] | None = None) -> Identity:
    """The request's staff identity (set by the auth middleware), or a 401/403."""
    ident: Identity | None = request.get(IDENTITY_KEY)
    if ident is None:
        raise ApiError(401, "auth.required")
    check_csrf(request, ident)
    allowed = roles is None or ident.user.role in set(roles)
    if not allowed and ident.user.role != StaffRole.ADMIN:
        raise ApiError(403, "auth.forbidden")
    return ident


def auth_middleware(db_getter: Callable[[web.Request], Database]) -> Middleware:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Static files need no identity; skipping them saves a query per asset.
        if not request.path.startswith("/static/"):
            ident = await identify(db_getter(request), request)
            request[IDENTITY_KEY] = ident
            asked = request.query.get("lang")
            if ident is not None and asked in LANGUAGES and ident.user.language != asked:
                # The language is the user's, not the browser's: remembered on the account.
                async with db_getter(request).session() as s:
                    user = await s.get(User, ident.user.id)
                    if user is not None:
                        user.language = asked
                        await s.commit()
                ident.user.language = asked
        return await handler(request)

    return middleware

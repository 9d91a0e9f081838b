"""Database engine, sessions and migrations.

The engine is created by :func:`open_database` and owned by the app (closed in its
cleanup context). Migrations are Alembic's, run by :func:`migrate` (``hoidong migrate``
and ``hoidong serve`` both call it); Alembic's own code is synchronous, so it runs
in a thread (its ``env.py`` drives the async engine with ``asyncio.run``).

A database that goes away (PostgreSQL restarted, stopped, the connection cut) is not a
bug: :func:`is_unavailable` tells such errors from the others, the error middleware
answers them with a 503 (``database.unavailable``), and the pool checks a connection
before handing it out (``pool_pre_ping``), so once the server is back the next request
gets a fresh connection instead of a dead one — no restart of hoidong needed
(tests/test_pg_restart.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import asyncpg  # type: ignore[import-untyped]
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Seconds to wait for PostgreSQL to accept a connection (asyncpg's default is 60): an
# unreachable server is told to the client as a 503 soon, not after a minute.
CONNECT_TIMEOUT_S = 10.0


class DatabaseUnavailable(Exception):
    """No connection could be made to the database (refused, reset, timed out)."""


# What asyncpg raises when the server is away, not when a statement is wrong: the
# connection-exception class (08xxx: ConnectionDoesNotExistError, "connection was closed
# in the middle of operation", is one), a socket error under the driver, the server
# shutting down, crashed or starting up (57P01-57P03), and no connection slot left (53300).
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached now (a 503 to try again),
    rather than that something was wrong with the request or the code (a 500)."""
    if isinstance(exc, DatabaseUnavailable | sa_exc.TimeoutError):
        return True  # no connection could be made, or none freed in time by the pool
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True  # SQLAlchemy saw the connection die under the statement
        orig = exc.orig  # SQLAlchemy's adapter error; the driver's own is its cause
        return isinstance(orig, _UNREACHABLE) or isinstance(
            getattr(orig, "__cause__", None), _UNREACHABLE)
    return False


def is_transient(exc: BaseException) -> bool:
    """A database error that passes: SQLite's write lock not had within its busy timeout
    ("database is locked": seen under load, many writers on a saturated machine), or the
    database unreachable for a while."""
    return isinstance(exc, sa_exc.OperationalError) or is_unavailable(exc)


async def retry_transient(write: Callable[[], Awaitable[T]], what: str,
                          max_delay_s: float = 30.0) -> T:
    """``await write()`` until it does not fail for a passing reason (backoff from 0.5 s
    doubling to ``max_delay_s``): for the records that must not be lost to a busy
    database (an audit event, a participant's leave)."""
    delay = 0.5
    while True:
        try:
            return await write()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s not written yet (%s); will retry", what, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)


class Database:
    """An async engine plus a session factory; ``async with db.session() as s``."""

    def __init__(self, url: str) -> None:
        self.url = url
        connect_args: dict[str, object] = {}
        sqlite = url.startswith("sqlite")
        if sqlite:
            # Let a writer wait for another instead of failing at once.
            connect_args["timeout"] = 30
        elif make_url(url).get_driver_name() == "asyncpg":
            connect_args["timeout"] = CONNECT_TIMEOUT_S
        # A server restart leaves the pooled connections dead: each is checked (a ping)
        # before use and replaced if it is, so no request is handed a dead one.
        self.engine: AsyncEngine = create_async_engine(
            url, connect_args=connect_args, pool_pre_ping=not sqlite)
        if sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine.sync_engine, "do_connect", _connect_or_unavailable)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as s:
            yield s

    async def close(self) -> None:
        await self.engine.dispose()


def _connect_or_unavailable(dialect: Dialect, _record: ConnectionPoolEntry,
                            cargs: list[object], cparams: dict[str, object]) -> object:
    """Connect as SQLAlchemy would, but a connection refused, reset or timed out — which
    asyncpg raises as a bare OSError, not a driver error — becomes DatabaseUnavailable,
    so it is told from any other OSError a request may meet."""
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate_sync(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema (blocking)."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


async def migrate(url: str) -> None:
    await asyncio.to_thread(migrate_sync, url)


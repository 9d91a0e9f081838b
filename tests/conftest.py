"""Shared fixtures: settings in a temporary data dir, both databases, a live app.

PostgreSQL tests run when ``HOIDONG_TEST_POSTGRES_URL`` is set (each test gets a
database of its own, dropped afterwards). Under ``CI=true`` a missing PostgreSQL or
Chromium fails the test instead of skipping it, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from server.app import create_app
from server.auth import create_api_token, create_user
from server.settings import Settings
from server.state import DB

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("HOIDONG_TEST_POSTGRES_URL", "")
ADMIN_PASSWORD = "test-admin-password"


def need(condition: bool, what: str) -> None:
    """Skip locally, fail in CI, when a real dependency is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} is not available")


@pytest.fixture
def chromium_path() -> str:
    path = shutil.which("chromium") or ""
    need(bool(path), "Debian's chromium")
    return path


async def _pg_admin(base_url: str, statement: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the server behind ``base_url``."""
    url = make_url(base_url)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
        password=url.password, database=url.database or "postgres",
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _create_pg_database(base_url: str) -> tuple[str, str]:
    name = f"hoidong_t_{uuid.uuid4().hex[:12]}"
    await _pg_admin(base_url, f'CREATE DATABASE "{name}"')
    url = make_url(base_url).set(database=name)
    return url.render_as_string(hide_password=False), name


async def _drop_pg_database(base_url: str, name: str) -> None:
    await _pg_admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
        return
    need(bool(POSTGRES_URL), "PostgreSQL (HOIDONG_TEST_POSTGRES_URL)")
    url, name = await _create_pg_database(POSTGRES_URL)
    try:
        yield url
    finally:
        await _drop_pg_database(POSTGRES_URL, name)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "secret_key": "test-secret-" + "x" * 32,
        "admin_password": ADMIN_PASSWORD,
        "whisper_model": "tiny.en",
        "whisper_cpu_threads": 2,
        "whisper_beam_size": 1,
        "default_language": "en",
    }
    values.update(overrides)
    return Settings.load(environ={}, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, transcribe_on_end=False)


@dataclass
class Running:
    """A live app on a real port: its client, settings and an admin bearer token."""

    app: web.Application
    client: TestClient[Any, Any]
    settings: Settings
    token: str

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def api(self, method: str, path: str, json: Any = None, status: int = 200) -> Any:
        resp = await self.client.request(method, path, json=json, headers=self.auth())
        body = await resp.json()
        assert resp.status == status, (resp.status, body)
        return body


async def start_app(settings: Settings) -> AsyncIterator[Running]:
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1")
    client = TestClient(server)
    await client.start_server()
    try:
        token = await create_api_token(app[DB], username=settings.admin_username, name="tests")
        yield Running(app, client, settings, token)
    finally:
        await client.close()


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async for r in start_app(settings):
        yield r


@pytest.fixture
async def running_db(database_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    """The app on SQLite and on PostgreSQL."""
    settings = make_settings(tmp_path, database_url=database_url, transcribe_on_end=False)
    async for r in start_app(settings):
        yield r


async def make_staff(running: Running, username: str, role: str) -> str:
    """A staff user of ``role`` and a bearer token for them."""
    await create_user(running.app[DB], username=username, password="pw-" + username * 2, role=role)
    return await create_api_token(running.app[DB], username=username)


@pytest.fixture
def espeak() -> str:
    path = shutil.which("espeak-ng") or ""
    need(bool(path), "espeak-ng")
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Iterator[Path]:
    d = Path(__file__).parent / ".artifacts"
    d.mkdir(exist_ok=True)
    yield d

"""The application factory: ``create_app(settings)``.

Resources are opened and closed in ``cleanup_ctx`` in dependency order: the event
loop's lag sampler and the allocator's trimmer (``server.allocator``), directories and
the signing secret, the database (migrated), the object store, the transcription
service and finally the live-session registry, which is closed first on shutdown so
every recording is finished and stored while the store and database are still open.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy import func, select

from media import nativesend
from server import allocator, auth, metrics, pages, signalling
from server.api import archive, documents, evidence, join, minutes, public, reports, staff
from server.api.framework import ApiRegistry
from server.composite import CompositeService
from server.database import Database, migrate
from server.errors import error_middleware
from server.live import LiveRegistry
from server.looplag import LoopLag
from server.models import StaffRole, User
from server.security import security_headers
from server.settings import Settings
from server.state import (
    COMPOSITE,
    DB,
    LIVE,
    LOOP_LAG,
    RATE_LIMITS,
    SECRET,
    SETTINGS,
    STORE,
    TRANSCRIPTION,
    TRIMMER,
)
from server.transcribe import TranscriptionService

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
VERSION = "0.1.0"


def api_registry() -> ApiRegistry:
    merged = ApiRegistry()
    for module in (staff, evidence, archive, documents, minutes, public, reports, join):
        merged.routes.extend(module.api.routes)
    return merged


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[security_headers, error_middleware,
                     auth.auth_middleware(lambda r: r.app[DB])],
        client_max_size=1024 * 1024,
    )
    app[SETTINGS] = settings
    app[RATE_LIMITS] = signalling.rate_limits(settings)
    aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(WEB_DIR / "templates"), autoescape=True,
    )
    app.cleanup_ctx.extend([_loop_lag, _allocator, _data_dirs, _database, _store,
                            _transcription, _live])
    registry = api_registry()
    openapi = registry.openapi("hoidong", VERSION)
    registry.add_to(app)

    async def openapi_json(_: web.Request) -> web.Response:
        return web.json_response(openapi)

    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_get("/", pages.index)
    app.router.add_get("/metrics", metrics.metrics)
    app.router.add_get("/healthz", metrics.healthz)
    app.router.add_get("/readyz", metrics.readyz)
    app.router.add_get("/staff", pages.staff_page)
    app.router.add_get("/staff/sessions/{session_id}", pages.session_page)
    app.router.add_get("/staff/sessions/{session_id}/player", pages.player_page)
    app.router.add_get("/staff/archive", pages.archive_page)
    app.router.add_get("/verify", pages.verify_page)
    app.router.add_get("/staff/stats", pages.stats_page)
    app.router.add_get("/join/{session_id}/{token}", pages.join_page)
    app.router.add_get("/minutes/{session_id}/{token}", pages.minutes_page)
    app.router.add_get("/ws/join", signalling.join_socket)
    app.router.add_static("/static/", WEB_DIR / "static")
    return app


async def _loop_lag(app: web.Application) -> AsyncIterator[None]:
    async with LoopLag().running() as lag:
        app[LOOP_LAG] = lag
        yield


async def _allocator(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    allocator.fix_thresholds(s.malloc_mmap_threshold_kb)
    async with allocator.Trimmer(s.malloc_trim_s).running() as trimmer:
        app[TRIMMER] = trimmer
        yield


async def _data_dirs(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    for d in (s.data_dir, s.spool_dir, s.model_cache_dir):
        d.mkdir(parents=True, exist_ok=True)
    app[SECRET] = s.secret_key or _stored_secret(s.data_dir / "secret_key")
    yield


def _stored_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


async def _database(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].resolved_database_url
    await migrate(url)
    db = Database(url)
    app[DB] = db
    await _bootstrap_admin(app)
    yield
    await db.close()


async def _bootstrap_admin(app: web.Application) -> None:
    """Make the first administrator when there are no users; say how to log in."""
    s = app[SETTINGS]
    async with app[DB].session() as session:
        count = (await session.execute(select(func.count()).select_from(User))).scalar_one()
    if count:
        return
    password = s.admin_password or secrets.token_urlsafe(12)
    await auth.create_user(app[DB], username=s.admin_username, password=password,
                           role=StaffRole.ADMIN, display_name="Quản trị viên")
    shown = "(from HOIDONG_ADMIN_PASSWORD)" if s.admin_password else password
    print(f"hoidong: log in at {s.resolved_public_url}/staff as {s.admin_username!r}, "
          f"password {shown}", flush=True)


async def _store(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    store = s.open_store()
    app[STORE] = store
    yield
    await store.close()


async def _transcription(app: web.Application) -> AsyncIterator[None]:
    service = TranscriptionService(app[DB], app[STORE], app[SETTINGS])
    app[TRANSCRIPTION] = service
    await service.start()
    yield
    await service.close()


async def _live(app: web.Application) -> AsyncIterator[None]:
    if app[SETTINGS].fast_forwarding and app[SETTINGS].native_send:
        # Compiled on a first start (seconds): not on the event loop.
        await asyncio.to_thread(nativesend.load)
    registry = LiveRegistry(app[DB], app[STORE], app[SETTINGS])
    app[LIVE] = registry
    registry.segments.start()
    if app[SETTINGS].incremental_transcription:
        registry.segments.on_stored = app[TRANSCRIPTION].segment_stored
    resumed = await registry.segments.resume()
    if resumed:
        log.info("%d recording segments left unstored by a previous run: uploading", resumed)
    composites = app[COMPOSITE] = CompositeService(app[DB], app[STORE], registry.worker)
    await composites.start()
    done = await registry.recover()
    if done.sessions or done.segments_found or done.tracks_finished:
        log.warning("recovered after a crash: sessions %s interrupted (%d connections), %d "
                    "segments found in the spool, %d tracks finished", done.sessions,
                    done.connections, done.segments_found, done.tracks_finished)
    for session_id in done.sessions:  # what was recorded up to the crash, viewable
        await composites.enqueue(session_id)
    yield
    await composites.close()
    await registry.shutdown()

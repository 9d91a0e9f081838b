"""Typed keys for what the application holds (``app[DB]`` etc.)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from server.database import Database
from server.settings import Settings
from storage import ObjectStore

if TYPE_CHECKING:
    from server.allocator import Trimmer
    from server.composite import CompositeService
    from server.live import LiveRegistry
    from server.looplag import LoopLag
    from server.ratelimit import Limiter
    from server.transcribe import TranscriptionService

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
STORE = web.AppKey("store", ObjectStore)
SECRET = web.AppKey("secret", str)
LIVE: web.AppKey[LiveRegistry] = web.AppKey("live")
TRANSCRIPTION: web.AppKey[TranscriptionService] = web.AppKey("transcription")
COMPOSITE: web.AppKey[CompositeService] = web.AppKey("composite")
LOOP_LAG: web.AppKey[LoopLag] = web.AppKey("loop_lag")
TRIMMER: web.AppKey[Trimmer] = web.AppKey("trimmer")
# Signalling rate limits (server.ratelimit): per client address, per participant link.
RATE_LIMITS: web.AppKey[tuple[Limiter, Limiter]] = web.AppKey("rate_limits")

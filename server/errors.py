"""HTTP errors carrying a catalogue key, and the middleware that renders them.

Every error a client can cause is answered with a 4xx whose JSON body is
``{"error": {"code": KEY, "message": {"vi": ..., "en": ...}}}``; an unexpected
exception is logged and answered with a 500 in the same shape, so a client never
sees a stack trace. A database that cannot be reached (PostgreSQL restarting, stopped,
the connection cut) is no bug: a 503 ``database.unavailable`` with ``Retry-After``.
HTML pages render the same messages through ``error.html``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from server.database import is_unavailable
from server.i18n import both
from storage.errors import ObjectNotFound, StorageError, StorageUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Raised by handlers: ``status`` with the catalogue message ``code``."""

    def __init__(self, status: int, code: str, params: Mapping[str, object] | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.params = dict(params or {})


def error_body(code: str, params: Mapping[str, object] | None = None) -> dict[str, object]:
    return {"error": {"code": code, "message": both(code, params)}}


def error_response(
    status: int, code: str, params: Mapping[str, object] | None = None
) -> web.Response:
    return web.json_response(error_body(code, params), status=status)


_HTTP_CODES = {
    400: "http.bad_request",
    401: "auth.required",
    403: "auth.forbidden",
    404: "http.not_found",
    405: "http.method_not_allowed",
    413: "http.too_large",
}


# Seconds a client is asked to wait before trying again while the database is away.
DATABASE_RETRY_AFTER_S = 2

# Headers an HTTP error must keep when its body is replaced by the JSON error.
_KEPT_HEADERS = ("Content-Range", "Allow", "Retry-After")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.params)
    except StorageError as exc:
        # The store said no (locked, absent) or is down: the caller learns which.
        log.warning("storage error on %s %s: %s", request.method, request.path, exc)
        status = 503 if isinstance(exc, StorageUnavailable) else (
            404 if isinstance(exc, ObjectNotFound) else 409)
        return error_response(status, exc.code, exc.params)
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        resp = error_response(exc.status, _HTTP_CODES.get(exc.status, "http.error"))
        for name in _KEPT_HEADERS:
            if name in exc.headers:
                resp.headers[name] = exc.headers[name]
        return resp
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("database unavailable on %s %s: %s: %s", request.method,
                        request.path, type(exc).__name__, exc)
            resp = error_response(503, "database.unavailable")
            resp.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
            return resp
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "http.internal")


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )

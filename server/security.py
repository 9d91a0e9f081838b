"""Security headers on every response.

The Content Security Policy lets the pages do what they do and nothing else: scripts
and styles only from this server (no inline script: the catalogue and page data are
JSON blocks, never run), media and images from here or the page's own blobs (the
camera self view, fetched files), connections to this server's HTTP and WebSocket, no
frames (nobody can embed the pages), no plugins, no ``<base>`` rewriting. With TLS (or
``HOIDONG_COOKIE_SECURE`` behind a TLS proxy) browsers are told to keep to HTTPS (HSTS).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping

from aiohttp import web

from server.state import SETTINGS

__all__ = ["CSP", "security_headers"]

CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: mediastream:",
    "connect-src 'self' ws: wss:",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
))
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # join links carry their token in the path
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self), "
                          "geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@web.middleware
async def security_headers(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # 404s and redirects raised past the middlewares
        _apply(request, exc.headers)
        raise
    if not response.prepared:  # a streamed body has sent its headers already
        _apply(request, response.headers)
    return response


def _apply(request: web.Request, headers: MutableMapping[str, str]) -> None:
    for name, value in HEADERS.items():
        headers.setdefault(name, value)
    settings = request.app[SETTINGS]
    if settings.tls_cert or settings.cookie_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")

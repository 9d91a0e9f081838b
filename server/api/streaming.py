"""Serving stored objects over HTTP: whole, or one byte range (players seek with
them). The body is streamed from the store in chunks; nothing is loaded whole."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from server.security import HEADERS
from server.state import STORE
from storage import ObjectNotFound

__all__ = ["parse_range", "stream_object"]


async def stream_object(request: web.Request, key: str, size: int, sha256: str,
                        content_type: str, headers: Mapping[str, str] | None = None
                        ) -> web.StreamResponse:
    """A stored object's bytes, with HTTP range requests (players seek with them);
    ``headers`` are added to the response's."""
    start, end = parse_range(request.headers.get("Range"), size)
    partial = (start, end) != (0, size)
    resp = web.StreamResponse(status=206 if partial else 200, headers={
        "Content-Type": content_type,
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start),
        "ETag": f'"{sha256}"',
        # Sent before the security middleware could see the response: its headers here.
        **HEADERS,
        **(headers or {}),
    })
    if partial:
        resp.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    await resp.prepare(request)
    try:
        async for chunk in request.app[STORE].iter_chunks(key, start=start, end=end):
            await resp.write(chunk)
    except ObjectNotFound:
        # Headers are gone already; cutting the body short is all that is left.
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp


def parse_range(header: str | None, size: int) -> tuple[int, int]:
    """``bytes=a-b`` (one range) as a half-open (start, end); whole file otherwise."""
    if not header or not header.startswith("bytes=") or "," in header:
        return 0, size
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            start, end = max(0, size - int(last)), size
        else:
            start = int(first)
            end = min(size, int(last) + 1) if last else size
    except ValueError:
        return 0, size
    if start >= end or start >= size:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end

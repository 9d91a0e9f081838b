"""Asking a time-stamping authority (RFC 3161) to stamp a package's Merkle root.

:func:`stamp` posts the request (``application/timestamp-query``) to the configured TSA
and returns the token for the bag (:mod:`storage.timestamp` builds and reads the bodies).
A TSA that cannot be reached, answers badly or refuses raises
:class:`~storage.timestamp.TimestampError`; the package is then made without a stamp and
the failure recorded (:func:`server.archive.build_session_package`).
"""

from __future__ import annotations

import aiohttp

from storage.timestamp import TimestampError, request_der, token_from_response

__all__ = ["stamp"]

MAX_RESPONSE = 1 << 20


async def stamp(url: str, root: str, *, timeout_s: float = 10.0) -> bytes:
    """The TSA's token (DER) for ``root``."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
            async with http.post(url, data=request_der(root), headers={
                    "Content-Type": "application/timestamp-query"}) as resp:
                body = await resp.content.read(MAX_RESPONSE + 1)
                if resp.status != 200 or len(body) > MAX_RESPONSE:
                    raise TimestampError("timestamp.refused", f"the TSA answered {resp.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TimestampError("timestamp.unreachable", f"{url}: {exc}") from None
    return token_from_response(body)

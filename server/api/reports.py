"""Reports API: the four exports as JSON or CSV (``docs/reports.md``), and the figures
of the statistics page."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import exports
from server.access import log_access
from server.api.framework import ApiRegistry
from server.policy import require
from server.state import DB, STORE

api = ApiRegistry()


async def _export(request: web.Request, name: str, fmt: str) -> web.Response:
    who = require(request, "report.read")
    rows = await exports.table(request.app[DB], request.app[STORE], name)
    await log_access(request, who, "downloaded", dossier_id=None, session_id=None,
                     what=f"report.{name}.{fmt}", rows=len(rows))
    headers = {"Content-Disposition": f'attachment; filename="hoidong-{name}.{fmt}"'}
    if fmt == "csv":
        return web.Response(body=exports.to_csv(name, rows), content_type="text/csv",
                            charset="utf-8", headers=headers)
    return web.json_response(rows, headers=headers)


def _routes() -> None:
    for name in exports.COLUMNS:
        for fmt in ("json", "csv"):
            def handler(request: web.Request, name: str = name, fmt: str = fmt
                        ) -> Any:
                return _export(request, name, fmt)
            handler.__name__ = f"export_{name}_{fmt}"
            api.route("GET", f"/api/reports/{name}.{fmt}",
                      summary=f"Export of {name} as {fmt.upper()} (columns: docs/reports.md)",
                      response=None, response_content_type="text/csv" if fmt == "csv"
                      else "application/json")(handler)


_routes()


@api.route("GET", "/api/stats", summary="The statistics page's figures: sessions and hours "
           "per month, camera compliance, interviews per stakeholder group, transcription "
           "backlog", response=None, response_content_type="application/json")
async def stats(request: web.Request) -> web.Response:
    require(request, "report.read")
    return web.json_response(await exports.statistics(request.app[DB], request.app[STORE]))

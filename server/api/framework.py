"""A small typed layer over aiohttp routes that also writes the OpenAPI document.

Each API route is declared once with :meth:`ApiRegistry.route`: method, path, summary,
request body model and response model (pydantic), the query parameters it reads and the
error statuses it can answer besides those its shape implies. The wrapper parses and
validates the JSON body (a 400 with a bilingual message on failure), calls the handler
and serialises what it returns; :meth:`ApiRegistry.openapi` builds ``/api/openapi.json``
from the same declarations, so the document cannot drift from the code (and
``tests/test_schemathesis.py`` holds the live server to it).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema

from server.auth import IDENTITY_KEY
from server.errors import ApiError, error_body

MAX_JSON_BYTES = 256 * 1024
M = TypeVar("M", bound=BaseModel)

AnyHandler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Query:
    """A query parameter a handler reads (``schema``: its JSON Schema)."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


# Understood by every page and API call (the auth middleware remembers it on the staff
# user's account); declared on the routes whose handlers also answer in it.
LANG = Query("lang", {"type": "string"}, "Language of the response: vi or en (else the "
             "default)")


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    summary: str
    handler: AnyHandler
    body: type[BaseModel] | None
    response: Any  # a BaseModel subclass, list[Model], or None for a non-JSON response
    status: int
    auth: str  # "staff" | "join" | "none"
    # One type, or each a stored object may have (a dossier's documents).
    response_content_type: str | tuple[str, ...] | None = None
    query: tuple[Query, ...] = ()
    errors: tuple[int, ...] = ()  # error statuses beyond those the route's shape implies
    upload: dict[str, Any] | None = None  # a request body the handler reads itself
    ranges: bool = False  # the body is a stored object served with HTTP range requests


class ApiRegistry:
    def __init__(self) -> None:
        self.routes: list[ApiRoute] = []

    def route(
        self, method: str, path: str, *, summary: str, body: type[BaseModel] | None = None,
        response: Any = None, status: int = 200, auth: str = "staff",
        response_content_type: str | tuple[str, ...] | None = None,
        query: Iterable[Query] = (),
        errors: Iterable[int] = (), upload: dict[str, Any] | None = None,
        ranges: bool = False,
    ) -> Callable[[AnyHandler], AnyHandler]:
        """Declare a route. ``errors``: the 4xx it can answer besides those implied
        (404 with an ``{id}`` in the path, 400 and 413 with a body, 401/403 for staff,
        401 and 404 for a link's holder, 409 for POST and PUT). ``upload``: the OpenAPI
        ``requestBody`` of a body the handler reads itself (a multipart form).
        ``ranges``: the response is a stored object (``Range``: 206 or 416)."""
        def deco(fn: AnyHandler) -> AnyHandler:
            self.routes.append(ApiRoute(
                method, path, summary, fn, body, response, status, auth,
                response_content_type, tuple(query), tuple(errors), upload, ranges,
            ))
            return fn
        return deco

    def add_to(self, app: web.Application) -> None:
        for r in self.routes:
            app.router.add_route(r.method, r.path, _wrap(r))

    def openapi(self, title: str, version: str) -> dict[str, Any]:
        models: list[type[BaseModel]] = []
        for r in self.routes:
            for m in (r.body, _model_of(r.response)):
                if m is not None and m not in models:
                    models.append(m)
        _, top = models_json_schema(
            [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
        )
        schemas = dict(top.get("$defs", {}))
        schemas["Error"] = _ERROR_SCHEMA
        schemas["Ok"] = _OK_SCHEMA
        paths: dict[str, dict[str, Any]] = {}
        for r in self.routes:
            op: dict[str, Any] = {
                "summary": r.summary,
                "operationId": r.handler.__name__,
                "responses": {},
            }
            params: list[dict[str, Any]] = [
                {"name": seg[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
                for seg in r.path.split("/") if seg.startswith("{")
            ]
            for q in r.query:
                param: dict[str, Any] = {"name": q.name, "in": "query", "required": q.required,
                                         "schema": q.schema}
                if q.description:
                    param["description"] = q.description
                params.append(param)
            if r.ranges:
                params.append({"name": "Range", "in": "header", "required": False,
                               "schema": {"type": "string"},
                               "description": "One byte range, e.g. bytes=0-1023"})
            if params:
                op["parameters"] = params
            if r.body is not None:
                op["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{r.body.__name__}"}}}}
            elif r.upload is not None:
                op["requestBody"] = r.upload
            if r.auth == "staff":
                op["security"] = [{"bearer": []}, {"cookie": []}]
            op["responses"][str(r.status)] = _response_doc(r)
            if r.ranges:
                partial = dict(_response_doc(r), description="the requested byte range")
                op["responses"]["206"] = partial
            for code in _error_statuses(r):
                op["responses"][str(code)] = {
                    "description": "error",
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Error"}}},
                }
            paths.setdefault(r.path, {})[r.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "cookie": {"type": "apiKey", "in": "cookie", "name": "hoidong_login"},
                },
            },
        }


def _model_of(response: Any) -> type[BaseModel] | None:
    if isinstance(response, type) and issubclass(response, BaseModel):
        return response
    args = getattr(response, "__args__", None)
    if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0]
    return None


def _response_doc(r: ApiRoute) -> dict[str, Any]:
    if r.response is None:
        types = r.response_content_type
        if types:
            return {"description": "ok", "content": {
                t: {} for t in ((types,) if isinstance(types, str) else types)}}
        return {"description": "ok", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Ok"}}}}
    model = _model_of(r.response)
    assert model is not None
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    schema = ref if model is r.response else {"type": "array", "items": ref}
    return {"description": "ok", "content": {"application/json": {"schema": schema}}}


def _error_statuses(r: ApiRoute) -> list[int]:
    codes = set(r.errors)
    if "{" in r.path:
        codes.add(404)
    if r.body is not None or r.upload is not None:
        codes |= {400, 413}
    if r.query:
        codes.add(400)
    if r.auth == "staff":
        codes |= {401, 403}
    elif r.auth == "join":
        codes |= {401, 404}  # a bad link; its participant or session gone
    if r.ranges:
        codes.add(416)
    if r.method in ("POST", "PUT"):
        codes.add(409)
    return sorted(codes)


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"},
        "message": {"type": "object", "required": ["vi", "en"], "properties": {
            "vi": {"type": "string"}, "en": {"type": "string"}}},
    }}},
}

# The body of a route that answers only that it did what was asked.
_OK_SCHEMA = {
    "type": "object",
    "required": ["ok"],
    "properties": {"ok": {"type": "boolean", "const": True}},
}


def _wrap(r: ApiRoute) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    adapter = TypeAdapter(r.response) if r.response is not None else None

    async def handler(request: web.Request) -> web.StreamResponse:
        args: list[Any] = [request]
        if r.auth == "staff" and request.get(IDENTITY_KEY) is None:
            # Who is asking is settled before what they sent is read.
            raise ApiError(401, "auth.required")
        if any("\x00" in request.query.get(q.name, "") for q in r.query):
            # As in a body: no database's text holds U+0000 (SQLite's full-text MATCH
            # failed on one: found by tests/test_schemathesis.py).
            raise ApiError(400, "http.bad_request")
        if r.body is not None:
            args.append(await parse_body(request, r.body))
        result = await r.handler(*args)
        if isinstance(result, web.StreamResponse):
            return result
        assert adapter is not None, f"{r.path} returned data but declares no response model"
        return web.Response(
            body=adapter.dump_json(result), status=r.status, content_type="application/json"
        )

    handler.__name__ = r.handler.__name__
    return handler


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body validated as ``model``; 400/413 with a clear message."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ApiError(413, "http.too_large")
    # read(n) returns what has arrived so far, not n bytes: loop until EOF or the cap.
    raw = b""
    while len(raw) <= MAX_JSON_BYTES:
        chunk = await request.content.read(MAX_JSON_BYTES + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(413, "http.too_large")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8 and over-long integers; RecursionError
        # deeply nested arrays.
        raise ApiError(400, "http.bad_json") from None
    if _has_nul(data):
        # PostgreSQL text cannot hold U+0000; refuse it here rather than fail there.
        raise ApiError(400, "http.bad_request")
    try:
        # Strict, as the JSON Schema reads: no 0 for false, no "10" for 10, no bare number
        # for a date-time (JSON's own strings still make dates and enum members).
        return model.model_validate_json(raw or b"null", strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            # What json.loads lets through and pydantic does not: a lone surrogate.
            raise ApiError(400, "http.bad_json") from None
        field = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise ApiError(400, "http.invalid_field", {"field": field}) from None


def _has_nul(data: Any) -> bool:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


__all__ = ["ApiRegistry", "ApiRoute", "error_body", "parse_body"]

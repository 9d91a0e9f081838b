"""A small typed layer over aiohttp routes that also writes the OpenAPI document.

Each API route is declared once with :meth:`ApiRegistry.route`: method, path, summary,
request body model and response model (pydantic). The wrapper parses and validates
the JSON body (a 400 with a bilingual message on failure), calls the handler and
serialises what it returns; :meth:`ApiRegistry.openapi` builds ``/api/openapi.json``
from the same declarations, so the document cannot drift from the code.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
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
class ApiRoute:
    method: str
    path: str
    summary: str
    handler: AnyHandler
    body: type[BaseModel] | None
    response: Any  # a BaseModel subclass, list[Model], or None for a non-JSON response
    status: int
    auth: str  # "staff" | "join" | "none"
    response_content_type: str | None = None


class ApiRegistry:
    def __init__(self) -> None:
        self.routes: list[ApiRoute] = []

    def route(
        self, method: str, path: str, *, summary: str, body: type[BaseModel] | None = None,
        response: Any = None, status: int = 200, auth: str = "staff",
        response_content_type: str | None = None,
    ) -> Callable[[AnyHandler], AnyHandler]:
        def deco(fn: AnyHandler) -> AnyHandler:
            self.routes.append(ApiRoute(
                method, path, summary, fn, body, response, status, auth, response_content_type
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
        paths: dict[str, dict[str, Any]] = {}
        for r in self.routes:
            op: dict[str, Any] = {
                "summary": r.summary,
                "operationId": r.handler.__name__,
                "responses": {},
            }
            params = [
                {"name": seg[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
                for seg in r.path.split("/") if seg.startswith("{")
            ]
            if params:
                op["parameters"] = params
            if r.body is not None:
                op["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{r.body.__name__}"}}}}
            if r.auth == "staff":
                op["security"] = [{"bearer": []}, {"cookie": []}]
            op["responses"][str(r.status)] = _response_doc(r)
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
        if r.response_content_type:
            return {"description": "ok", "content": {r.response_content_type: {}}}
        return {"description": "ok"}
    model = _model_of(r.response)
    assert model is not None
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    schema = ref if model is r.response else {"type": "array", "items": ref}
    return {"description": "ok", "content": {"application/json": {"schema": schema}}}


def _error_statuses(r: ApiRoute) -> list[int]:
    codes = [404] if "{" in r.path else []
    if r.body is not None:
        codes.append(400)
    if r.auth == "staff":
        codes += [401, 403]
    elif r.auth == "join":
        codes += [401]
    return sorted(set(codes)) + [409] * (r.method in ("POST", "PUT"))


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"},
        "message": {"type": "object", "properties": {
            "vi": {"type": "string"}, "en": {"type": "string"}}},
    }}},
}


def _wrap(r: ApiRoute) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    adapter = TypeAdapter(r.response) if r.response is not None else None

    async def handler(request: web.Request) -> web.StreamResponse:
        args: list[Any] = [request]
        if r.auth == "staff" and request.get(IDENTITY_KEY) is None:
            # Who is asking is settled before what they sent is read.
            raise ApiError(401, "auth.required")
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
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
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

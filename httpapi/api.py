"""A small typed layer over aiohttp: declared routes, validated input, JSON errors, OpenAPI."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic_core
from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from core import inputs, resident_auth
from core import staff as staff_service
from core.access import Principal, authorize
from core.db import Database, keep_refusals
from core.errors import (
    AppError,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    Unauthenticated,
    UnsupportedMediaType,
)
from core.events import Outbox, deliver_nowhere
from core.inputs import MAX_ID
from core.settings import Settings
from httpapi import keys

log = logging.getLogger("cloudwindow.http")

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def request_lang(request: web.Request) -> str:
    """zh unless the client prefers English (Accept-Language or ?lang=en)."""
    if request.query.get("lang") in ("en", "zh"):
        return request.query["lang"]
    accept = request.headers.get("Accept-Language", "")
    first = accept.split(",")[0].strip().lower()
    return "en" if first.startswith("en") else "zh"


def client_ip(request: web.Request) -> str:
    return request.remote or ""


@dataclass
class Ctx:
    """What a handler gets: the parsed input, the caller, and one database session."""

    request: web.Request
    principal: Principal | None
    body: Any
    query: Any
    session: Any
    outbox: Outbox = field(default_factory=Outbox)

    @property
    def me(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated()
        return self.principal

    @property
    def settings(self) -> Settings:
        return self.request.app[keys.SETTINGS]

    @property
    def request_id(self) -> str:
        return self.request.get(keys.REQUEST_ID, "")

    @property
    def ip(self) -> str:
        return client_ip(self.request)

    def path_int(self, name: str) -> int:
        raw = self.request.match_info[name]
        ok = raw.isascii() and raw.isdigit() and len(raw) <= 10
        value = int(raw) if ok else MAX_ID + 1
        if value > MAX_ID:
            raise NotFound(f"{name}={raw}", f"{name}={raw}")
        return value

    def audit_kw(self) -> dict[str, Any]:
        return {"actor": self.principal, "request_id": self.request_id, "ip": self.ip}


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    action: str | None  # policy action checked before the handler; None = any logged-in staff
    auth: bool = True
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    tags: tuple[str, ...] = ()

    @property
    def needs_csrf(self) -> bool:
        """Whether a request must echo the session's CSRF token (see authenticate_request)."""
        return self.auth and self.method in UNSAFE_METHODS


@dataclass
class RawRoute:
    """A route aiohttp serves outside the Api (a signed link that streams its body), listed in
    the document only: it has no session, so its query is what the signature covers."""

    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    query: type[BaseModel]
    body: str | None  # what the raw body is and which headers go with it; None: no body
    response: Any
    status: int
    errors: dict[int, str]  # status -> when
    tags: tuple[str, ...] = ()


@dataclass
class Api:
    """Routes declared with their input and output types; serves them and describes them."""

    title: str = "CloudWindow API"
    version: str = "1"
    routes: list[Route] = field(default_factory=list)
    raw_routes: list[RawRoute] = field(default_factory=list)

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        summary: str,
        action: str | None = None,
        auth: bool = True,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        tags: tuple[str, ...] = (),
    ) -> None:
        self.routes.append(
            Route(method, path, handler, summary, action, auth, body, query, response, status, tags)
        )

    def describe(self, route: RawRoute) -> None:
        """List a route that is registered on the app directly (its handler is not the Api's)."""
        self.raw_routes.append(route)

    def install(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, self._endpoint(route))

    def _endpoint(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            db: Database = request.app[keys.DB]
            async with db.session() as session, keep_refusals(session):
                if route.auth:
                    principal = await authenticate_request(request, session)
                else:
                    # Public routes (login, the API document) ignore any session cookie.
                    if request.method in UNSAFE_METHODS:
                        check_origin(request, request.app[keys.SETTINGS])
                    principal = None
                if route.action is not None:
                    if principal is None:
                        raise Unauthenticated()
                    authorize(principal, route.action)
                for name, value in request.match_info.items():
                    inputs.check_text(value, ("path", name))
                body = await parse_body(request, route.body) if route.body else None
                query = parse_query(request, route.query) if route.query else None
                ctx = Ctx(request, principal, body, query, session)
                result = await route.handler(ctx)
                # One unit of work per request: the handler changed rows and queued events;
                # commit once, then deliver (a client never hears of a rolled-back change).
                if session.in_transaction():
                    await session.commit()
            deliveries = ctx.outbox.take()
            if deliveries:
                await request.app.get(keys.DELIVER, deliver_nowhere)(deliveries)
            if isinstance(result, web.StreamResponse):
                return result
            return json_response(result, status=route.status)

        endpoint.__name__ = route.handler.__name__
        return endpoint

    def openapi(self) -> dict[str, Any]:
        components: dict[str, Any] = {"ErrorBody": ERROR_SCHEMA}
        paths: dict[str, Any] = {}
        for r in self.routes:
            op: dict[str, Any] = {
                "summary": r.summary,
                "operationId": r.handler.__name__,
                "tags": list(r.tags),
                "responses": {
                    str(r.status): {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": _schema(r.response, components)}
                        },
                    },
                    "default": _error_response("Error"),
                },
            }
            params = [
                {"name": n, "in": "path", "required": True, "schema": schema}
                for n, schema in _path_params(r.path)
            ]
            if r.query is not None:
                params.extend(_query_params(r.query, components))
            if params:
                op["parameters"] = params
            if r.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _schema(r.body, components, "validation")}
                    },
                }
            # Staff sign in with cw_session, residents with cw_resident; the action's policy
            # says which roles may call the route.
            if r.needs_csrf:
                op["security"] = [{"session": [], "csrf": []}, {"resident": [], "csrf": []}]
                op["responses"]["403"] = {"$ref": "#/components/responses/Forbidden"}
            elif r.auth:
                op["security"] = [{"session": []}, {"resident": []}]
            paths.setdefault(_openapi_path(r.path), {})[r.method.lower()] = op
        for raw in self.raw_routes:
            paths.setdefault(raw.path, {})[raw.method.lower()] = _raw_operation(raw, components)
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": components,
                "responses": {"Forbidden": _forbidden_response()},
                "securitySchemes": {
                    "session": {"type": "apiKey", "in": "cookie", "name": "cw_session"},
                    "resident": {
                        "type": "apiKey",
                        "in": "cookie",
                        "name": resident_auth.RESIDENT_COOKIE,
                        "description": "A resident signed in on their phone (SMS code).",
                    },
                    "csrf": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "X-CSRF-Token",
                        "description": (
                            "The session's CSRF token: `csrf_token` of the login answer (staff "
                            "and residents), also in the readable `cw_csrf` cookie. Every "
                            "POST, PUT, PATCH and DELETE of a signed-in session must send it; "
                            "without it, or with a wrong one, the answer is 403 `csrf`."
                        ),
                    },
                },
            },
        }


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def _forbidden_response() -> dict[str, Any]:
    return {
        "description": (
            "Refused: `csrf` when the X-CSRF-Token header is missing or is not the session's "
            "token; `forbidden_origin` when the Origin is another site's; `forbidden_role` "
            "when the role may not do this; an operation's own rules may refuse with other "
            "codes (`forbidden_site`)."
        ),
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"},
                "example": {
                    "error": {
                        "code": "csrf",
                        "message": "Request check failed; reload the page and try again",
                        "request_id": "5f0c3e1a9b2d4c6e8f7a1b3c5d7e9f01",
                    }
                },
            }
        },
    }


def _query_params(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    qs = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(qs.pop("$defs", {}))
    return [
        {"name": name, "in": "query", "required": name in qs.get("required", []), "schema": prop}
        | ({"description": prop["description"]} if "description" in prop else {})
        for name, prop in qs.get("properties", {}).items()
    ]


def _raw_operation(raw: RawRoute, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": raw.summary,
        "description": raw.description,
        "operationId": raw.operation_id,
        "tags": list(raw.tags),
        "parameters": _query_params(raw.query, components),
        "security": [],  # no session: the signature is the credential
        "responses": {
            str(raw.status): {
                "description": "OK",
                "content": {"application/json": {"schema": _schema(raw.response, components)}},
            },
            **{str(status): _error_response(when) for status, when in raw.errors.items()},
            "default": _error_response("Error"),
        },
    }
    if raw.body is not None:
        op["requestBody"] = {
            "required": True,
            "description": raw.body,
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    return op


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
                "request_id": {"type": "string"},
            },
        }
    },
}


def _path_params(path: str) -> list[tuple[str, dict[str, Any]]]:
    """Each path parameter's name, and its pattern when the route matches one ({id:[0-9]+})."""
    out = []
    for seg in path.split("/"):
        if seg.startswith("{"):
            name, _, pattern = seg[1:-1].partition(":")
            schema: dict[str, Any] = {"type": "string"}
            if pattern:
                schema["pattern"] = f"^{pattern}$"
            out.append((name, schema))
    return out


def _openapi_path(path: str) -> str:
    return "/".join(
        "{" + seg[1:-1].split(":")[0] + "}" if seg.startswith("{") else seg
        for seg in path.split("/")
    )


def _schema(tp: Any, components: dict[str, Any], mode: str = "serialization") -> dict[str, Any]:
    if tp is None:
        return {"type": "object"}
    schema = TypeAdapter(tp).json_schema(ref_template="#/components/schemas/{model}", mode=mode)  # type: ignore[arg-type]
    components.update(schema.pop("$defs", {}))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        components[tp.__name__] = schema
        return {"$ref": f"#/components/schemas/{tp.__name__}"}
    return schema


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=pydantic_core.to_json(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    limit = request.app[keys.SETTINGS].max_json_body_bytes
    if request.content_type != "application/json":
        raise UnsupportedMediaType()
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(limit=limit)
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise TooLarge(limit=limit)
    try:
        parsed = model.model_validate_json(raw or b"{}")
    except ValidationError as e:
        if any(err["type"] == "json_invalid" for err in e.errors()):
            raise AppError("invalid_json") from None
        raise Invalid(details=validation_details(e)) from None
    inputs.check_json_bytes(raw)
    return parsed


def parse_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    data: dict[str, Any] = {}
    for key in request.query:
        if key == "lang":
            continue
        values = request.query.getall(key)
        for v in (key, *values):
            inputs.check_text(v, ("query", key))
        data[key] = values if len(values) > 1 else values[0]
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise Invalid(details=validation_details(e)) from None


def validation_details(e: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(x) for x in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in e.errors(include_url=False, include_input=False)
    ]


async def authenticate_request(request: web.Request, session: Any) -> Principal:
    """The principal behind the session cookie; also enforces origin and CSRF on writes."""
    settings: Settings = request.app[keys.SETTINGS]
    if request.method in UNSAFE_METHODS:
        check_origin(request, settings)
    token = request.cookies.get(settings.session_cookie_name, "")
    resident_token = request.cookies.get(resident_auth.RESIDENT_COOKIE, "")
    row: Any
    if token:
        principal, row = await staff_service.authenticate(
            session=session, settings=settings, token=token
        )
    elif resident_token:
        principal, row = await resident_auth.authenticate(
            session=session, settings=settings, token=resident_token
        )
    else:
        raise Unauthenticated()
    if request.method in UNSAFE_METHODS:
        sent = request.headers.get("X-CSRF-Token", "")
        # Our tokens are ASCII, and compare_digest raises on any other text.
        if not sent or not sent.isascii() or not hmac.compare_digest(sent, row.csrf_token):
            raise Forbidden("csrf")
    request[keys.PRINCIPAL] = principal
    return principal


def check_origin(request: web.Request, settings: Settings) -> None:
    """Browsers send Origin on cross-site writes; only our own origin (and configured ones) pass."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    origin = origin.rstrip("/")
    if origin != f"{request.scheme}://{request.host}" and origin not in settings.origins:
        raise Forbidden("forbidden_origin")


def error_response(request: web.Request, err: AppError) -> web.Response:
    body = err.to_dict(request_lang(request))
    body["request_id"] = request.get(keys.REQUEST_ID, "")
    return web.Response(
        text=json.dumps({"error": body}, ensure_ascii=False),
        status=err.status,
        content_type="application/json",
        headers=err.headers,
    )

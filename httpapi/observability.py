"""Structured logs with a request id, Prometheus metrics, health and readiness."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from core.errors import AppError
from core.settings import Settings
from httpapi import keys
from httpapi.api import error_response

# The id of the request being served, for log lines written anywhere below the handler.
# A ContextVar is per-task state, not shared mutable state: each request task sees its own.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
READY_TIMEOUT_S = 2.0  # a readiness probe that hangs longer than this is as bad as a failure

log = logging.getLogger("cloudwindow.access")


class RequestIdFilter(logging.Filter):
    """Stamps the request id on each record where it is created, before any queue or thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "") or REQUEST_ID.get(),
        }
        for key in ("method", "path", "status", "duration_ms", "staff_id"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


LIBRARY_LOGGERS = ("engineio.server", "socketio.server")


def configure_logging(settings: Settings) -> None:
    """Called by the CLI only; tests and embedding apps keep their own logging."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # engine.io and socket.io give their loggers a plain-text handler of their own unless a
    # level is already set; with one set they propagate to the JSON handler above instead.
    for name in LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        lib.handlers[:] = []
        lib.setLevel(logging.ERROR)


class Metrics:
    """One registry per app, so two apps in one process (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cloudwindow_http_requests_total",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cloudwindow_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Request id, JSON errors, access log and metrics for every request."""
    sent = request.headers.get("X-Request-Id", "")
    rid = sent if SAFE_REQUEST_ID.match(sent) else uuid.uuid4().hex
    request[keys.REQUEST_ID] = rid
    token = REQUEST_ID.set(rid)
    start = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except AppError as err:
            response = error_response(request, err)
        except web.HTTPNotFound:
            response = error_response(request, AppError("route_not_found"))
            response.set_status(404)
        except web.HTTPMethodNotAllowed as exc:
            response = error_response(request, AppError("method_not_allowed"))
            response.set_status(405)
            response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(request, AppError())
            response.set_status(exc.status)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception:
            log.exception("unhandled error", extra={"path": request.path})
            response = error_response(request, AppError("internal"))
            response.set_status(500)
        elapsed = time.perf_counter() - start
        response.headers["X-Request-Id"] = rid
        route = _route_name(request)
        metrics = request.app[keys.METRICS]
        metrics.requests.labels(request.method, route, str(response.status)).inc()
        metrics.latency.labels(request.method, route).observe(elapsed)
        principal = request.get(keys.PRINCIPAL)
        log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={
                "request_id": rid,
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": round(elapsed * 1000, 1),
                "staff_id": principal.staff_id if principal else None,
            },
        )
        return response
    finally:
        REQUEST_ID.reset(token)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(request.app[keys.DB].ping(), READY_TIMEOUT_S)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return web.json_response({"status": "unavailable", "database": str(exc)[:200]}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.app[keys.METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

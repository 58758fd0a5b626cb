"""What operators rely on: health and readiness, metrics, request ids, OpenAPI, access logs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from httpapi import keys
from httpapi.observability import JsonFormatter, configure_logging
from tests.conftest import base_settings
from web.app import create_app

API = "/api/v1"
UNREACHABLE_DB = "postgresql+asyncpg://postgres@127.0.0.1:1/nope"
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


async def request_counts(client: Any) -> dict[tuple[str, str, str], float]:
    """cloudwindow_http_requests_total by (method, route, status)."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            if sample.name == "cloudwindow_http_requests_total":
                labels = sample.labels
                out[(labels["method"], labels["route"], labels["status"])] = sample.value
    return out


def openapi_path(path: str) -> str:
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


# -- health and readiness


async def test_healthz(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_with_database(client: Any) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "database": "ok"}


async def test_readyz_without_database(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = base_settings(UNREACHABLE_DB, tmp_path / "data")
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable"
    assert body["database"] != "ok"
    # Liveness does not depend on the database: the process itself is fine.
    assert (await client.get("/healthz")).status == 200
    # A request that needs the database gets a JSON error, not a traceback or a hang.
    resp = await client.post(f"{API}/auth/login", json={"username": "a", "password": "b"})
    text = await resp.text()
    assert resp.status >= 500, text
    err = json.loads(text)["error"]
    assert err["request_id"] == resp.headers["X-Request-Id"]
    assert "Traceback" not in text
    assert "127.0.0.1:1" not in text


# -- metrics


async def test_metrics_count_requests_by_route(client: Any, as_user: Any) -> None:
    worker = await as_user("worker")
    before = await request_counts(client)
    for _ in range(2):
        assert (await worker.get(f"{API}/items")).status == 200
    assert (await client.get(f"{API}/items")).status == 401
    assert (await worker.get(f"{API}/sites/1")).status == 200
    assert (await worker.get(f"{API}/sites/2")).status == 200

    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert "# TYPE cloudwindow_http_requests_total counter" in text
    assert "cloudwindow_http_request_seconds_bucket" in text

    after = await request_counts(client)
    key = ("GET", f"{API}/items", "200")
    assert after[key] - before.get(key, 0) == 2
    key401 = ("GET", f"{API}/items", "401")
    assert after[key401] - before.get(key401, 0) == 1
    # Ids in paths collapse into their route, so each site does not get a series of its own.
    routes = {route for _, route, _ in after}
    assert f"{API}/sites/1" not in routes
    assert f"{API}/sites/2" not in routes
    site_routes = [r for r in routes if r.startswith(f"{API}/sites/{{site_id")]
    assert len(site_routes) == 1
    assert after[("GET", site_routes[0], "200")] == 2


async def test_unknown_paths_do_not_grow_the_metrics(client: Any) -> None:
    for i in range(5):
        resp = await client.get(f"{API}/probe-{i}-xyz")
        assert resp.status == 404
    counts = await request_counts(client)
    assert not [route for _, route, _ in counts if "probe-" in route]
    assert counts[("GET", "unmatched", "404")] == 5


# -- request ids


@pytest.mark.parametrize("sent", ["abc-123", "req.2026_11_22-XYZ", "a" * 64])
async def test_safe_request_id_is_echoed(client: Any, sent: str) -> None:
    resp = await client.get("/healthz", headers={"X-Request-Id": sent})
    assert resp.headers["X-Request-Id"] == sent
    resp = await client.get(f"{API}/auth/me", headers={"X-Request-Id": sent})
    assert resp.status == 401
    assert resp.headers["X-Request-Id"] == sent
    assert (await resp.json())["error"]["request_id"] == sent


@pytest.mark.parametrize(
    "sent", ["has spaces", "x" * 200, "a" * 65, "a/b", "<script>", "ünïcode", "id;drop"]
)
async def test_unsafe_request_id_is_replaced(client: Any, sent: str) -> None:
    resp = await client.get(f"{API}/auth/me", headers={"X-Request-Id": sent})
    rid = resp.headers["X-Request-Id"]
    assert rid != sent
    assert GENERATED_ID.match(rid)
    assert (await resp.json())["error"]["request_id"] == rid
    assert sent not in await resp.text()


async def test_request_ids_are_generated_and_unique(client: Any) -> None:
    ids = set()
    for _ in range(5):
        resp = await client.get("/healthz")
        ids.add(resp.headers["X-Request-Id"])
    assert len(ids) == 5
    assert all(GENERATED_ID.match(i) for i in ids)


# -- OpenAPI


async def test_openapi_describes_every_route(client: Any) -> None:
    resp = await client.get(f"{API}/openapi.json")  # public: no login needed
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"]
    api = client.server.app[keys.API]
    assert len(api.routes) > 20
    expected = {(openapi_path(r.path), r.method.lower()) for r in (*api.routes, *api.raw_routes)}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == expected
    op_ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(op_ids) == len(set(op_ids))
    for path, ops in doc["paths"].items():
        names = re.findall(r"\{(\w+)\}", path)
        for op in ops.values():
            declared = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            assert declared == names, path


async def test_openapi_refs_all_resolve(client: Any) -> None:
    doc = await (await client.get(f"{API}/openapi.json")).json()
    refs: list[tuple[str, str]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.append((where, value))
                else:
                    walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(doc, "#")
    assert refs

    def resolves(ref: str) -> bool:
        kind, _, name = ref.removeprefix("#/components/").partition("/")
        return ref.startswith("#/components/") and name in doc["components"].get(kind, {})

    assert [(where, ref) for where, ref in refs if not resolves(ref)] == []


async def test_openapi_resident_create_body(client: Any) -> None:
    doc = await (await client.get(f"{API}/openapi.json")).json()
    op = doc["paths"][f"{API}/residents"]["post"]
    assert op["requestBody"]["required"] is True
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "id_number"}
    assert schema["properties"]["disabled"]["type"] == "boolean"
    assert "201" in op["responses"]
    assert op["security"] == [{"session": [], "csrf": []}, {"resident": [], "csrf": []}]
    login = doc["paths"][f"{API}/auth/login"]["post"]
    assert "security" not in login


# -- access log


async def test_access_log_line_has_request_id_and_status(
    client: Any, as_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    worker = await as_user("worker")
    caplog.set_level(logging.INFO, logger="cloudwindow.access")
    caplog.handler.setFormatter(JsonFormatter())  # as configure_logging does for log_format=json

    await client.get("/healthz", headers={"X-Request-Id": "log-ok-1"})
    await client.get(f"{API}/nope", headers={"X-Request-Id": "log-404-1"})
    await worker.get(f"{API}/items", headers={"X-Request-Id": "log-items-1"})
    await worker.http.post(
        f"{worker.base}{API}/auth/login",
        json={"username": "clerk", "password": "secret-password-xyz"},
        headers={"X-Request-Id": "log-login-1", "X-CSRF-Token": worker.csrf},
    )

    lines = [json.loads(line) for line in caplog.text.splitlines() if line.startswith("{")]
    by_id = {line["request_id"]: line for line in lines if line["logger"] == "cloudwindow.access"}
    ok = by_id["log-ok-1"]
    assert (ok["status"], ok["method"], ok["path"]) == (200, "GET", "/healthz")
    assert isinstance(ok["duration_ms"], int | float)
    assert by_id["log-404-1"]["status"] == 404
    items = by_id["log-items-1"]
    assert items["status"] == 200
    assert items["staff_id"] == worker.me["id"]
    assert by_id["log-login-1"]["status"] == 401
    assert "secret-password-xyz" not in caplog.text


def test_socket_libraries_log_through_the_json_handler(tmp_path: Path) -> None:
    """engine.io's own errors come out as JSON lines like ours, not as plain text beside them."""
    settings = base_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(settings.model_copy(update={"log_format": "json"}))
        create_app(settings)  # builds the socket.io server, whose libraries set up logging
        for name in ("engineio.server", "socketio.server"):
            lib = logging.getLogger(name)
            assert lib.handlers == [] and lib.propagate, name
        record = logging.LogRecord("engineio.server", logging.ERROR, "", 0, "bad %s", ("x",), None)
        line = json.loads(root.handlers[0].format(record))
        assert (line["logger"], line["msg"]) == ("engineio.server", "bad x")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)

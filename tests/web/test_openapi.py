"""What the API document promises a client written from it: CSRF, and the signed upload PUTs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from httpapi import keys
from tests.conftest import User
from tests.uploads.helpers import jpeg, open_case, send, slot

API = "/api/v1"
UNSAFE = ("post", "put", "patch", "delete")


async def document(client: Any) -> dict[str, Any]:
    resp = await client.get(f"{API}/openapi.json")
    assert resp.status == 200
    return await resp.json()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


async def test_the_csrf_header_is_a_security_scheme_of_every_signed_in_write(client: Any) -> None:
    doc = await document(client)
    scheme = doc["components"]["securitySchemes"]["csrf"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-CSRF-Token")
    forbidden = doc["components"]["responses"]["Forbidden"]
    body = forbidden["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert body["example"]["error"]["code"] == "csrf"
    assert "`csrf`" in forbidden["description"]
    writes = 0
    for path, method, op in operations(doc):
        security = op.get("security")
        signed_in = bool(security) and "session" in security[0]
        if signed_in and method in UNSAFE:
            writes += 1
            assert security == [{"session": [], "csrf": []}, {"resident": [], "csrf": []}], (
                method,
                path,
            )
            assert op["responses"]["403"] == {"$ref": "#/components/responses/Forbidden"}
        else:
            # Reads, and writes with no session (login, the signed upload PUTs): no token.
            assert not any("csrf" in s for s in security or []), (method, path)
    assert writes > 15


async def test_every_write_the_document_guards_with_csrf_is_refused_without_it(
    client: Any, as_user: Any
) -> None:
    """The document mirrors the check: each such write answers 403 `csrf` without the header,
    and a write it lists without the scheme (login) is not refused for want of one."""
    admin: User = await as_user("admin")
    doc = await document(client)
    for path, method, op in operations(doc):
        url = re.sub(r"\{\w+\}", "1", path)
        needs = any("csrf" in s for s in op.get("security") or [])
        if method not in UNSAFE:
            continue
        resp = await admin.http.request(method, f"{admin.base}{url}", json={})
        body = await resp.json()
        if needs:
            assert (resp.status, body["error"]["code"]) == (403, "csrf"), (method, path, body)
        else:
            assert body.get("error", {}).get("code") != "csrf", (method, path, body)


async def test_the_signed_upload_puts_are_documented_with_what_a_slot_gives(
    client: Any, as_user: Any
) -> None:
    doc = await document(client)
    api = client.server.app[keys.API]
    assert {(r.method, r.path) for r in api.raw_routes} == {
        ("PUT", f"{API}/objects/put"),
        ("PUT", f"{API}/objects/part"),
    }
    put = doc["paths"][f"{API}/objects/put"]["put"]
    part = doc["paths"][f"{API}/objects/part"]["put"]
    for op in (put, part):
        assert op["security"] == []  # the signature is the credential, not a session
        assert "unchanged" in op["description"]
        assert op["requestBody"]["required"] is True
        assert {"201", "403", "410", "413"} <= set(op["responses"])
    assert "headers" in put["description"] and "Content-Type" in put["requestBody"]["description"]
    assert "415" in put["responses"]

    # The documented query is exactly what a real slot's URL carries, and sending the slot's
    # headers with it stores the file.
    worker: User = await as_user("worker")
    case = await open_case(worker)
    data = jpeg()
    resp = await slot(worker, case["case"]["id"], None, data, "image/jpeg")
    assert resp.status == 201, await resp.text()
    form = await resp.json()
    assert form["method"] == "PUT" and form["headers"] == {"Content-Type": "image/jpeg"}
    sent = set(parse_qs(urlsplit(form["url"]).query))
    documented = {p["name"] for p in put["parameters"] if p["in"] == "query"}
    required = {p["name"] for p in put["parameters"] if p["required"]}
    assert sent == documented == required
    assert await send(worker, form, data, "image/jpeg") == 201

    resp = await slot(worker, case["case"]["id"], None, data, "image/jpeg", multipart=True)
    assert resp.status == 201, await resp.text()
    parts = await worker.post(
        f"{API}/uploads/{(await resp.json())['id']}/parts", json={"numbers": [1]}
    )
    assert parts.status == 200, await parts.text()
    sent = set(parse_qs(urlsplit((await parts.json())[0]["url"]).query))
    assert sent == {p["name"] for p in part["parameters"] if p["required"]}

"""Who may upload to a case and see its documents; links are short-lived; views are audited."""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.parse
from typing import Any

import aiohttp

from httpapi import keys
from tests.uploads.helpers import call_for_case, fetch_link, jpeg, open_case, send, slot, upload
from uploads.views import MATERIALS

ID_CARD = "申请人身份证"


async def _status(url: str, base: str, method: str = "GET", **kw: Any) -> int:
    url = url if url.startswith("http") else f"{base}{url}"
    async with aiohttp.ClientSession() as http, http.request(method, url, **kw) as r:
        await r.read()
        return r.status


async def test_participants_and_line_supervisors_see_a_document_others_do_not(
    sock: Any, as_user: Any, client: Any
) -> None:
    worker, clerk = await sock("worker"), await sock("clerk")
    env = await call_for_case(worker, clerk)
    data = jpeg()
    m = await upload(worker.user, env["case_id"], env["specs"][ID_CARD], data, "image/jpeg")

    for user in (worker.user, clerk.user, await as_user("supervisor.t07")):
        assert (await fetch_link(user, m["id"]))[:3] == b"\xff\xd8\xff"
    for username in ("worker.t01-c01", "clerk.t01.m", "expert", "supervisor.t01", "coordinator"):
        outsider = await as_user(username)
        r = await outsider.get(f"/api/v1/materials/{m['id']}/link")
        assert r.status in (403, 404), (username, r.status)
        if r.status == 404:
            assert (await r.json())["error"]["code"] == "not_found"

    # Every view is in the audit log, with who and which variant.
    admin = await as_user("admin")
    log = await (
        await admin.get("/api/v1/audit", params={"action": "material.view", "limit": "50"})
    ).json()
    viewers = {
        (e["actor_id"], e["detail"]["variant"]) for e in log if e["target_id"] == str(m["id"])
    }
    assert (worker.user.me["id"], "original") in viewers
    assert (clerk.user.me["id"], "original") in viewers
    assert len(viewers) == 3


async def test_view_links_expire_and_cannot_be_altered(client: Any, as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    m = await upload(worker, c["case"]["id"], c["specs"][ID_CARD], jpeg(), "image/jpeg")
    r = await worker.get(f"/api/v1/materials/{m['id']}/link")
    body = await r.json()
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=5)
    url = body["url"]
    assert await _status(url, worker.base) == 200

    # Point the link at another key, or change its signature: refused.
    parsed = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parsed.query)
    sig_name = "signature" if "signature" in query else "X-Amz-Signature"
    query[sig_name] = ["0" * len(query[sig_name][0])]
    tampered = parsed._replace(query=urllib.parse.urlencode(query, doseq=True)).geturl()
    assert await _status(tampered, worker.base) == 403

    store = client.app[MATERIALS].store
    from uploads.models import Material

    async with client.app[keys.DB].session() as s:
        row = await s.get(Material, m["id"])
        assert row is not None
        key = row.key
    expired = await store.download_url(key, expires=1, content_type="image/jpeg", filename="x")
    await asyncio.sleep(2.2)  # let it expire (S3 refuses a negative lifetime outright)
    assert await _status(expired, worker.base) in (403, 410)


async def test_upload_links_expire_and_cannot_be_altered(client: Any, as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    data = jpeg()
    form = await (
        await slot(worker, c["case"]["id"], c["specs"][ID_CARD], data, "image/jpeg")
    ).json()
    store = client.app[MATERIALS].store

    # A tampered link: the key (local: in the URL; S3: in the signed policy) changed.
    forged = dict(form)
    if form["method"] == "PUT":
        parsed = urllib.parse.urlsplit(form["url"])
        query = dict(urllib.parse.parse_qsl(parsed.query))
        assert query["key"].startswith("r")
        query["key"] = query["key"].replace("/c", "/c9", 1)
        forged["url"] = parsed._replace(query=urllib.parse.urlencode(query)).geturl()
    else:
        forged["fields"] = {**form["fields"], "key": form["fields"]["key"].replace("/c", "/c9", 1)}
    assert await send(worker, forged, data, "image/jpeg") == 403

    # An expired link (issued by the server's own store, already past its expiry).
    from uploads.models import UploadSlot

    async with client.app[keys.DB].session() as s:
        row = await s.get(UploadSlot, form["id"])
        assert row is not None
        key = row.key
    stale = await store.upload_form(key, content_type="image/jpeg", max_bytes=len(data), expires=1)
    await asyncio.sleep(2.2)
    expired_form = {"method": stale.method, "url": stale.url, "fields": stale.fields, "headers": {}}
    assert await send(worker, expired_form, data, "image/jpeg") in (403, 410)

    assert {o.key for o in await store.list_objects()} == set()
    r = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert (await r.json())["error"]["code"] == "upload.not_received"


async def test_no_slot_for_someone_elses_case(as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    case_id = c["case"]["id"]
    for username in ("worker.t01-c01", "clerk.t01.m"):
        stranger = await as_user(username)
        r = await slot(stranger, case_id, c["specs"][ID_CARD], jpeg(), "image/jpeg")
        assert r.status == 404, username
        assert (await stranger.get(f"/api/v1/cases/{case_id}/checklist")).status == 404
    # Roles that never upload are refused outright, and forged ids are simply not found.
    expert = await as_user("expert")
    assert (await slot(expert, case_id, None, jpeg(), "image/jpeg")).status == 403
    for forged in (999999, 2**31 - 1):
        assert (await slot(worker, forged, None, jpeg(), "image/jpeg")).status == 404
    r = await slot(worker, case_id, 999999, jpeg(), "image/jpeg")
    assert r.status == 422 and (await r.json())["error"]["code"] == "material.spec"
    # Someone else's slot cannot be confirmed or inspected either.
    form = await (await slot(worker, case_id, c["specs"][ID_CARD], jpeg(), "image/jpeg")).json()
    stranger = await as_user("worker.t01-c01")
    assert (await stranger.post(f"/api/v1/uploads/{form['id']}/confirm")).status == 404


async def test_malformed_requests_change_nothing(client: Any, as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    path = f"/api/v1/cases/{c['case']['id']}/uploads"
    for body in (
        {"content_type": "image/jpeg"},
        {"content_type": "image/jpeg", "size": -1},
        {"content_type": "image/jpeg", "size": "big"},
        {"content_type": "image/jpeg", "size": "10"},
        {"content_type": "image/jpeg", "size": 10, "multipart": "yes"},
        {"content_type": "image/jpeg", "size": 10, "key": "r1/c1/evil.jpg"},
        {"content_type": "image/jpeg", "size": 10, "spec_id": "x"},
    ):
        r = await worker.post(path, json=body)
        assert r.status == 422, body
    r = await worker.post(path, data=b"not json", headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert (await worker.post("/api/v1/uploads/abc/confirm")).status == 404
    from sqlalchemy import text

    async with client.app[keys.DB].session() as s:
        n = (await s.exec(text("SELECT count(*) FROM upload_slot"))).one()[0]  # type: ignore[call-overload]
    assert n == 0


def test_local_keys_never_escape_the_directory(tmp_path: Any) -> None:
    import pytest

    from uploads.storage import LinkError, LocalStore

    store = LocalStore(tmp_path / "objects", signing_key=b"k" * 32)
    for key in (
        "../secret.key",
        "r30/c1/../../x",
        "/etc/passwd",
        "r30/c1/" + "a" * 32 + ".jpg/../../y",
        "r30\\c1\\x",
        "",
    ):
        with pytest.raises(LinkError):
            store.path(key)
    assert store.path("r30/c1/" + "a" * 32 + ".jpg").is_relative_to(tmp_path / "objects")


async def test_clerks_of_other_lines_in_the_area_neither_add_nor_view(
    client: Any, as_user: Any
) -> None:
    """Reading a case in one's area is not taking part in it: only participants add materials."""
    worker = await as_user("worker")
    c = await open_case(worker)
    case_id = c["case"]["id"]
    m = await upload(worker, case_id, c["specs"][ID_CARD], jpeg(), "image/jpeg")

    async def count(table: str) -> int:
        from sqlalchemy import text

        async with client.app[keys.DB].session() as s:
            return (await s.exec(text(f"SELECT count(*) FROM {table}"))).one()[0]  # type: ignore[call-overload]

    before = (await count("upload_slot"), await count("material"), await count("material_request"))
    # The town's household-registration clerk, and a clerk of the district centre.
    for username in ("clerk.t07.h", "clerk.d00.m"):
        other = await as_user(username)
        for spec in (None, c["specs"][ID_CARD]):
            r = await slot(other, case_id, spec, jpeg(), "image/jpeg")
            assert r.status == 404, (username, spec, r.status)
            assert (await r.json())["error"]["code"] == "not_found"
        r = await other.get(f"/api/v1/materials/{m['id']}/link")
        assert r.status == 404, (username, r.status)
        assert (await other.get(f"/api/v1/cases/{case_id}/reusable")).status == 404
        r = await other.post(
            f"/api/v1/cases/{case_id}/reuse",
            json={"material_id": m["id"], "spec_id": c["specs"][ID_CARD], "consent": True},
        )
        assert r.status == 404, (username, r.status)
        r = await other.post(
            f"/api/v1/cases/{case_id}/checklist/{c['specs'][ID_CARD]}/request", json={}
        )
        assert r.status == 404, (username, r.status)
        r = await other.post(f"/api/v1/materials/{m['id']}/review", json={"decision": "accept"})
        assert r.status == 404, (username, r.status)
    after = (await count("upload_slot"), await count("material"), await count("material_request"))
    assert after == before
    # The case's own line clerk still does all of it.
    clerk = await as_user("clerk")
    assert (await slot(clerk, case_id, None, jpeg(), "image/jpeg")).status == 201
    assert await fetch_link(clerk, m["id"])


async def test_someone_elses_slot_is_not_found(client: Any, as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    data = jpeg()
    form = await (
        await slot(worker, c["case"]["id"], c["specs"][ID_CARD], data, "image/jpeg")
    ).json()
    assert await send(worker, form, data, "image/jpeg") in (200, 201, 204)
    for username in ("clerk.t07.h", "clerk.d00.m"):
        other = await as_user(username)
        assert (await other.post(f"/api/v1/uploads/{form['id']}/confirm")).status == 404
        assert (await other.get(f"/api/v1/uploads/{form['id']}/parts")).status == 404
    # Untouched by those attempts: the uploader still confirms it.
    r = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert r.status == 201, await r.text()

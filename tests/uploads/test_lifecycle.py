"""Large and broken uploads, reuse with consent, retention, and the sweep that leaves no orphan."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text, update

from httpapi import keys
from tests.uploads.helpers import fetch_link, jpeg, open_case, pdf, slot, upload
from uploads import intake
from uploads.models import Material, UploadSlot
from uploads.views import MATERIALS

HUKOU = "户口簿"
ID_CARD = "申请人身份证"
PART = 5 * 1024 * 1024  # the tests' part size (the S3 minimum)


def _abs(user: Any, url: str) -> str:
    return url if url.startswith("http") else f"{user.base}{url}"


async def _put(url: str, data: bytes) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.put(url, data=data) as r:
        await r.read()
        return r.status


async def _broken_request(
    url: str, head: dict[str, str], method: str, body: bytes, sent: int, hangup: str = "reset"
) -> None:
    """Announce `len(body)` bytes, send only `sent` of them, and hang up (a dropped network).

    "reset" aborts the connection (RST), "close" closes it cleanly (FIN), so the server sees
    either a connection error or an early end of the body.
    """
    u = urllib.parse.urlsplit(url)
    _reader, writer = await asyncio.open_connection(u.hostname, u.port)
    target = u.path + (f"?{u.query}" if u.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {u.netloc}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in head.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body[:sent])
    await writer.drain()
    await asyncio.sleep(0.3)
    if hangup == "reset":
        writer.transport.abort()
    else:
        writer.close()
        await writer.wait_closed()
    await asyncio.sleep(0.3)


async def _requests_counted(http: Any, base: str, route: str) -> dict[str, float]:
    """Status -> count of the PUT requests /metrics has counted for one route."""
    async with http.get(f"{base}/metrics") as r:
        text_ = await r.text()
    out: dict[str, float] = {}
    for line in text_.splitlines():
        if line.startswith("cloudwindow_http_requests_total{") and f'route="{route}"' in line:
            if 'method="PUT"' in line:
                status = line.split('status="')[1].split('"')[0]
                out[status] = out.get(status, 0) + float(line.rsplit(" ", 1)[1])
    return out


async def _wait_counted(http: Any, base: str, route: str) -> dict[str, float]:
    for _ in range(50):
        counted = await _requests_counted(http, base, route)
        if counted:
            return counted
        await asyncio.sleep(0.1)
    return {}


async def test_a_large_pdf_in_parts_resumes_after_a_break(client: Any, as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    doc = pdf(padding=2 * PART + 12345)  # three parts, the last one short
    digest = hashlib.sha256(doc).hexdigest()
    r = await slot(
        worker, c["case"]["id"], c["specs"][HUKOU], doc, "application/pdf", multipart=True
    )
    assert r.status == 201, await r.text()
    s = await r.json()
    assert s["multipart"] and s["parts_count"] == 3 and s["part_bytes"] == PART
    parts = [doc[i : i + PART] for i in range(0, len(doc), PART)]
    urls = await (
        await worker.post(f"/api/v1/uploads/{s['id']}/parts", json={"numbers": [1, 2, 3]})
    ).json()
    by_n = {u["number"]: _abs(worker, u["url"]) for u in urls}

    # Part 1 arrives; part 2 breaks half way; part 3 arrives.
    assert await _put(by_n[1], parts[0]) in (200, 201)
    await _broken_request(by_n[2], {}, "PUT", parts[1], len(parts[1]) // 2)
    assert await _put(by_n[3], parts[2]) in (200, 201)

    have = await (await worker.get(f"/api/v1/uploads/{s['id']}/parts")).json()
    assert [p["number"] for p in have] == [1, 3]
    early = await worker.post(f"/api/v1/uploads/{s['id']}/confirm")
    assert early.status == 422
    err = (await early.json())["error"]
    assert err["code"] == "upload.incomplete" and "2" in err["message"]

    # Resume: only the missing part is sent again.
    missing = {1, 2, 3} - {p["number"] for p in have}
    again = await (
        await worker.post(f"/api/v1/uploads/{s['id']}/parts", json={"numbers": sorted(missing)})
    ).json()
    assert await _put(_abs(worker, again[0]["url"]), parts[1]) in (200, 201)
    done = await worker.post(f"/api/v1/uploads/{s['id']}/confirm")
    assert done.status == 201, await done.text()
    m = await done.json()
    assert m["sha256"] == digest and m["size"] == len(doc)
    assert hashlib.sha256(await fetch_link(worker, m["id"])).hexdigest() == digest

    bad = await worker.post(f"/api/v1/uploads/{s['id']}/parts", json={"numbers": [4]})
    assert bad.status == 409  # the slot is spent


async def test_part_numbers_outside_the_upload_are_refused(as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    r = await slot(
        worker,
        c["case"]["id"],
        c["specs"][HUKOU],
        b"",
        "application/pdf",
        size=PART + 1,
        multipart=True,
    )
    s = await r.json()
    for numbers in ([0], [3], [-1]):
        bad = await worker.post(f"/api/v1/uploads/{s['id']}/parts", json={"numbers": numbers})
        assert bad.status == 422, numbers
    single = await (
        await slot(worker, c["case"]["id"], c["specs"][HUKOU], pdf(), "application/pdf")
    ).json()
    r = await worker.post(f"/api/v1/uploads/{single['id']}/parts", json={"numbers": [1]})
    assert (await r.json())["error"]["code"] == "upload.not_multipart"


async def test_an_upload_broken_half_way_leaves_nothing(client: Any, as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    doc = pdf(padding=200_000)
    form = await (
        await slot(worker, c["case"]["id"], c["specs"][HUKOU], doc, "application/pdf")
    ).json()
    url = _abs(worker, form["url"])
    if form["method"] == "PUT":
        await _broken_request(url, {"Content-Type": "application/pdf"}, "PUT", doc, len(doc) // 2)
    else:
        boundary = "cwboundary"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in form["fields"].items()
        ]
        body = (
            (
                "".join(parts)
                + f"--{boundary}\r\n"
                + 'Content-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
                + "Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + doc
            + f"\r\n--{boundary}--\r\n".encode()
        )
        head = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        await _broken_request(url, head, "POST", body, len(body) // 2)
    store = client.app[MATERIALS].store
    assert {o.key for o in await store.list_objects()} == set()
    r = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert r.status == 422 and (await r.json())["error"]["code"] == "upload.not_received"
    async with client.app[keys.DB].session() as s:
        assert (await s.exec(text("SELECT count(*) FROM material"))).one()[0] == 0  # type: ignore[call-overload]


@pytest.fixture
async def served(settings: Any) -> AsyncIterator[tuple[Any, str]]:
    """The app served as `cloudwindow serve` serves it: a handler keeps running when its client
    hangs up (the test client's server cancels it instead)."""
    from aiohttp import web

    from web.app import create_app

    app = create_app(settings)
    runner = web.AppRunner(app, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# S3 receives the bytes itself; only the local store has a PUT route.
@pytest.mark.parametrize("storage", ["local"], indirect=True)
@pytest.mark.parametrize("hangup", ["reset", "close"])
async def test_an_aborted_put_is_a_client_abort_not_a_server_error(
    served: tuple[Any, str], storage: str, hangup: str, caplog: pytest.LogCaptureFixture
) -> None:
    import aiohttp

    from tests.conftest import User

    app, base = served
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        worker = User(http, base)
        assert (await worker.login("worker")).status == 200
        c = await open_case(worker)
        store = app[MATERIALS].store
        doc = pdf(padding=300_000)
        form = await (
            await slot(worker, c["case"]["id"], c["specs"][HUKOU], doc, "application/pdf")
        ).json()
        head = {"Content-Type": "application/pdf"}
        await _broken_request(_abs(worker, form["url"]), head, "PUT", doc, len(doc) // 2, hangup)
        mp = await (
            await slot(
                worker,
                c["case"]["id"],
                c["specs"][HUKOU],
                b"",
                "application/pdf",
                size=PART + 10,
                multipart=True,
            )
        ).json()
        urls = await (
            await worker.post(f"/api/v1/uploads/{mp['id']}/parts", json={"numbers": [1]})
        ).json()
        part = os.urandom(PART)
        await _broken_request(_abs(worker, urls[0]["url"]), {}, "PUT", part, PART // 2, hangup)

        # Counted as the client's doing (4xx), never as a server error.
        for route in ("/api/v1/objects/put", "/api/v1/objects/part"):
            counted = await _wait_counted(http, base, route)
            assert counted and all(s.startswith("4") for s in counted), (route, counted)
        # Logged as a client abort (info), with no error and no traceback.
        loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert loud == [], [r.getMessage()[:300] for r in loud]
        aborts = [r for r in caplog.records if "abort" in r.getMessage()]
        assert len(aborts) == 2 and all(r.levelno == logging.INFO for r in aborts)
        # Nothing is left: no temp file, no partial object, no part.
        assert list(store.tmp.iterdir()) == []
        assert await store.list_objects() == []
        assert await (await worker.get(f"/api/v1/uploads/{mp['id']}/parts")).json() == []
        r = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
        assert r.status == 422 and (await r.json())["error"]["code"] == "upload.not_received"


async def test_a_part_sent_again_and_broken_half_way_changes_nothing(
    client: Any, as_user: Any
) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    doc = pdf(padding=PART + 4321)  # two parts
    digest = hashlib.sha256(doc).hexdigest()
    s = await (
        await slot(
            worker, c["case"]["id"], c["specs"][HUKOU], doc, "application/pdf", multipart=True
        )
    ).json()
    parts = [doc[:PART], doc[PART:]]
    urls = await (
        await worker.post(f"/api/v1/uploads/{s['id']}/parts", json={"numbers": [1, 2]})
    ).json()
    by_n = {u["number"]: _abs(worker, u["url"]) for u in urls}
    assert await _put(by_n[1], parts[0]) in (200, 201)
    assert await _put(by_n[2], parts[1]) in (200, 201)
    before = await (await worker.get(f"/api/v1/uploads/{s['id']}/parts")).json()
    assert [(p["number"], p["size"]) for p in before] == [(1, PART), (2, len(parts[1]))]

    # Part 1 is sent again (other bytes: a client bug, a re-taken file) and breaks half way.
    await _broken_request(by_n[1], {}, "PUT", os.urandom(PART), PART // 2)
    after = await (await worker.get(f"/api/v1/uploads/{s['id']}/parts")).json()
    assert after == before
    done = await worker.post(f"/api/v1/uploads/{s['id']}/confirm")
    assert done.status == 201, await done.text()
    m = await done.json()
    assert m["sha256"] == digest and m["size"] == len(doc)
    assert await fetch_link(worker, m["id"]) == doc


# S3 keeps the parts itself; the local store checks its own files.
@pytest.mark.parametrize("storage", ["local"], indirect=True)
async def test_confirm_checks_each_part_against_what_was_received(
    client: Any, as_user: Any, storage: str
) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    doc = pdf(padding=PART + 999)
    digest = hashlib.sha256(doc).hexdigest()
    s = await (
        await slot(
            worker, c["case"]["id"], c["specs"][HUKOU], doc, "application/pdf", multipart=True
        )
    ).json()
    parts = [doc[:PART], doc[PART:]]
    urls = await (
        await worker.post(f"/api/v1/uploads/{s['id']}/parts", json={"numbers": [1, 2]})
    ).json()
    by_n = {u["number"]: _abs(worker, u["url"]) for u in urls}
    for n in (1, 2):
        assert await _put(by_n[n], parts[n - 1]) in (200, 201)
    # The bytes of part 1 change on disk after they were received (a bad disk, a stray write).
    store = client.app[MATERIALS].store
    async with client.app[keys.DB].session() as db:
        upload_id = (await db.get(UploadSlot, s["id"])).multipart_id  # type: ignore[union-attr]
    d = store.part_dir(upload_id)
    for f in d.iterdir():
        if f.name == "data" or f.name.startswith("00001-"):
            with f.open("r+b") as fh:
                fh.seek(100)
                fh.write(b"!")

    bad = await worker.post(f"/api/v1/uploads/{s['id']}/confirm")
    assert bad.status == 422, await bad.text()
    err = (await bad.json())["error"]
    assert err["code"] == "upload.part_mismatch" and "1" in err["message"]
    # The slot stays open, the bad part is dropped, and sending it again completes the upload.
    have = await (await worker.get(f"/api/v1/uploads/{s['id']}/parts")).json()
    assert [p["number"] for p in have] == [2]
    assert await _put(by_n[1], parts[0]) in (200, 201)
    done = await worker.post(f"/api/v1/uploads/{s['id']}/confirm")
    assert done.status == 201, await done.text()
    assert (await done.json())["sha256"] == digest


async def test_reuse_an_earlier_id_card_only_with_consent(client: Any, as_user: Any) -> None:
    worker, clerk = await as_user("worker"), await as_user("clerk")
    first = await open_case(worker, seq=321)
    card = await upload(worker, first["case"]["id"], first["specs"][ID_CARD], jpeg(), "image/jpeg")
    r = await clerk.post(f"/api/v1/materials/{card['id']}/review", json={"decision": "accept"})
    assert r.status == 200, await r.text()

    # A later case for the same resident (the demo resident is found by ID number again).
    second_case = await worker.post(
        "/api/v1/cases",
        json={
            "item_code": first["setup"]["item"]["code"],
            "resident_id": first["resident_id"],
            "site_id": first["setup"]["point"]["id"],
        },
    )
    case_id = (await second_case.json())["id"]
    offers = await (await worker.get(f"/api/v1/cases/{case_id}/reusable")).json()
    assert [(o["name"], o["material"]["id"]) for o in offers] == [(ID_CARD, card["id"])]
    spec = offers[0]["spec_id"]

    refused = await worker.post(
        f"/api/v1/cases/{case_id}/reuse",
        json={"material_id": card["id"], "spec_id": spec, "consent": False},
    )
    assert refused.status == 422 and (await refused.json())["error"]["code"] == "material.consent"
    hukou_spec = first["specs"][HUKOU]
    wrong = await worker.post(
        f"/api/v1/cases/{case_id}/reuse",
        json={"material_id": card["id"], "spec_id": hukou_spec, "consent": True},
    )
    assert (await wrong.json())["error"]["code"] == "material.not_reusable"

    r = await worker.post(
        f"/api/v1/cases/{case_id}/reuse",
        json={"material_id": card["id"], "spec_id": spec, "consent": True},
    )
    assert r.status == 201, await r.text()
    reused = await r.json()
    assert reused["source"] == "reuse" and reused["reused_from"] == card["id"]
    assert reused["status"] == "pending" and reused["sha256"] == card["sha256"]
    assert await fetch_link(worker, reused["id"]) == await fetch_link(worker, card["id"])
    case = await (await worker.get(f"/api/v1/cases/{case_id}")).json()
    assert "material.reuse" in [e["kind"] for e in case["timeline"]]

    # Another resident's document is never offered nor reusable.
    other = await open_case(worker, seq=555)
    assert await (await worker.get(f"/api/v1/cases/{other['case']['id']}/reusable")).json() == []
    r = await worker.post(
        f"/api/v1/cases/{other['case']['id']}/reuse",
        json={"material_id": card["id"], "spec_id": spec, "consent": True},
    )
    assert (await r.json())["error"]["code"] == "material.not_reusable"


async def _expire(client: Any, material_id: int) -> None:
    async with client.app[keys.DB].session() as s:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        await s.exec(update(Material).where(Material.id == material_id).values(expires_at=past))  # type: ignore[call-overload, arg-type]
        await s.commit()


async def test_retention_sweep_deletes_expired_documents_and_records_it(
    client: Any, as_user: Any
) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    old = await upload(worker, c["case"]["id"], c["specs"][ID_CARD], jpeg(), "image/jpeg")
    keep = await upload(worker, c["case"]["id"], c["specs"][HUKOU], pdf(), "application/pdf")
    assert old["expires_at"] > keep["uploaded_at"]  # retention is per item (years, here)
    await _expire(client, old["id"])
    materials = client.app[MATERIALS]
    report = await materials.sweep()
    assert report.expired == 1 and not report.errors

    r = await worker.get(f"/api/v1/materials/{old['id']}/link")
    assert r.status == 404
    assert await fetch_link(worker, keep["id"]) == pdf()
    keys_left = {o.key for o in await materials.store.list_objects()}
    async with client.app[keys.DB].session() as s:
        rows = {
            m.id: m
            for m in (await s.exec(text("SELECT id, key, thumb_key, status FROM material"))).all()
        }  # type: ignore[call-overload]
    assert rows[old["id"]].status == "deleted"
    assert rows[old["id"]].key not in keys_left and rows[old["id"]].thumb_key not in keys_left
    assert rows[keep["id"]].key in keys_left
    case = await (await worker.get(f"/api/v1/cases/{c['case']['id']}")).json()
    deleted = [e for e in case["timeline"] if e["kind"] == "material.deleted"]
    assert deleted and deleted[0]["data"]["reason"] == "retention"
    admin = await as_user("admin")
    log = await (await admin.get("/api/v1/audit", params={"action": "material.delete"})).json()
    assert [e["target_id"] for e in log] == [str(old["id"])]


async def test_sweep_leaves_no_orphan_and_no_row_without_its_object(
    client: Any, as_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    case_id = c["case"]["id"]
    materials = client.app[MATERIALS]
    store = materials.store
    kept = await upload(worker, case_id, c["specs"][ID_CARD], jpeg(), "image/jpeg")

    # 1. An upload that arrived but was never confirmed (the tablet went away).
    data = pdf()
    form = await (await slot(worker, case_id, c["specs"][HUKOU], data, "application/pdf")).json()
    from tests.uploads.helpers import send

    await send(worker, form, data, "application/pdf")
    # 2. A multipart upload abandoned after one part.
    mp = await (
        await slot(
            worker,
            case_id,
            c["specs"][HUKOU],
            b"",
            "application/pdf",
            size=PART + 10,
            multipart=True,
        )
    ).json()
    url = (
        await (await worker.post(f"/api/v1/uploads/{mp['id']}/parts", json={"numbers": [1]})).json()
    )[0]["url"]
    assert await _put(_abs(worker, url), os.urandom(PART)) in (200, 201)

    # 3. The server died between storing the cleaned photo and recording it.
    async def crash(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("node died")

    photo = jpeg()
    form3 = await (await slot(worker, case_id, c["specs"][ID_CARD], photo, "image/jpeg")).json()
    await send(worker, form3, photo, "image/jpeg")
    monkeypatch.setattr(intake, "record", crash)
    r = await worker.post(f"/api/v1/uploads/{form3['id']}/confirm")
    assert r.status == 500
    monkeypatch.undo()
    async with client.app[keys.DB].session() as s:
        n = (await s.exec(text("SELECT count(*) FROM material"))).one()[0]  # type: ignore[call-overload]
    assert n == 1  # no row for the crashed confirm

    # Nothing is deleted while it may still be in flight...
    report = await materials.sweep()
    assert report.orphans == 0 and report.abandoned == 0
    # ...but once the slots have expired and the grace has passed, only what is recorded stays.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(
        seconds=client.app[keys.SETTINGS].upload_slot_seconds + 60
    )
    async with client.app[keys.DB].session() as s:
        await s.exec(
            update(UploadSlot).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )  # type: ignore[call-overload]
        await s.commit()
    report = await materials.sweep(later)
    assert report.abandoned == 3 and not report.errors
    assert report.orphans == 2  # the cleaned photo and its thumbnail of the crashed confirm
    left = {o.key for o in await store.list_objects()}
    async with client.app[keys.DB].session() as s:
        recorded = {
            k
            for row in (await s.exec(text("SELECT key, thumb_key FROM material"))).all()
            for k in row
            if k
        }  # type: ignore[call-overload]
    assert left == recorded
    assert await fetch_link(worker, kept["id"])
    # The abandoned multipart upload is gone from the store too.
    if store.name == "local":
        assert list(store.parts.iterdir()) == [] and list(store.tmp.iterdir()) == []
    else:
        listed = await store.run(store.client.list_multipart_uploads, Bucket=store.bucket)
        assert listed.get("Uploads", []) == []


async def test_s3_lifecycle_rules_follow_item_retention(client: Any, storage: str) -> None:
    materials = client.app[MATERIALS]
    applied = await materials.apply_retention_rules()
    if storage == "local":
        assert applied is False  # a directory has no lifecycle; the sweep does it all
        return
    assert applied
    rules = await materials.store.run(
        materials.store.client.get_bucket_lifecycle_configuration, Bucket=materials.store.bucket
    )
    by_id = {r["ID"]: r for r in rules["Rules"]}
    assert by_id["retention-1825"]["Filter"]["Prefix"] == "r1825/"
    assert by_id["retention-1825"]["Expiration"]["Days"] == 1826
    assert "abort-stale-multipart" in by_id


def test_s3_with_a_wrong_secret_is_refused(s3_server: Any) -> None:
    from botocore.exceptions import ClientError

    from tests import s3server

    bad = s3server.client(s3_server, secret="not-the-secret")
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert e.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied")

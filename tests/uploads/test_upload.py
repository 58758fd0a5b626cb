"""Uploading documents: what arrives is checked, cleaned, hashed and kept; nothing else is.

Each test runs on both stores (local directory, SeaweedFS S3) and both databases.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from PIL import Image

from httpapi import keys
from tests.uploads.helpers import (
    EXECUTABLE,
    fetch_link,
    heic,
    heic_bomb,
    jpeg,
    jpeg_bomb,
    open_case,
    pdf,
    png,
    png_bomb,
    send,
    send_chunked,
    slot,
    upload,
)
from uploads.views import MATERIALS

ID_CARD = "申请人身份证"
HUKOU = "户口簿"


async def test_a_tablet_photo_is_stored_upright_without_exif_or_gps(as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    # A portrait photo taken with the tablet held sideways: pixels 640x480, EXIF says rotate.
    raw = jpeg(640, 480, orientation=6, gps=True)
    m = await upload(worker, c["case"]["id"], c["specs"][ID_CARD], raw, "image/jpeg")

    assert m["status"] == "pending"
    assert (m["width"], m["height"]) == (480, 640)  # upright
    assert m["content_type"] == "image/jpeg"
    assert m["has_thumbnail"]
    stored = await fetch_link(worker, m["id"])
    assert hashlib.sha256(stored).hexdigest() == m["sha256"]
    assert m["size"] == len(stored)
    with Image.open(io.BytesIO(stored)) as im:
        assert im.size == (480, 640)
        exif = im.getexif()
        assert 0x8825 not in exif and 0x0112 not in exif and 0x010F not in exif
        assert b"Exif" not in stored[:4096]
        # The red half (left before rotation) is now on top.
        assert im.getpixel((240, 100))[0] > 200 and im.getpixel((240, 540))[2] > 200
    thumb = await fetch_link(worker, m["id"], "thumbnail")
    with Image.open(io.BytesIO(thumb)) as t:
        assert max(t.size) == 320 and t.size[1] > t.size[0]

    checklist = await (await worker.get(f"/api/v1/cases/{c['case']['id']}/checklist")).json()
    item = next(i for i in checklist["items"] if i["name"] == ID_CARD)
    assert item["state"] == "uploaded"
    assert [x["id"] for x in item["materials"]] == [m["id"]]
    assert not checklist["complete"]
    assert set(checklist["missing"]) == {ID_CARD, HUKOU, "社区（村）证明"}


async def test_pdf_png_and_heic_are_accepted(as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    case_id = c["case"]["id"]
    doc = pdf(pages=3)
    m = await upload(
        worker, case_id, c["specs"][HUKOU], doc, "application/pdf", filename="户口簿.pdf"
    )
    assert m["sha256"] == hashlib.sha256(doc).hexdigest()  # a PDF is kept byte for byte
    assert m["size"] == len(doc) and not m["has_thumbnail"]
    assert await fetch_link(worker, m["id"]) == doc

    p = await upload(worker, case_id, c["specs"]["社区（村）证明"], png(), "image/png")
    assert (p["content_type"], p["width"], p["height"]) == ("image/png", 300, 200)

    h = await upload(worker, case_id, c["specs"][ID_CARD], heic(), "image/heic")
    assert (h["content_type"], h["width"], h["height"]) == ("image/jpeg", 320, 240)
    assert (await fetch_link(worker, h["id"]))[:3] == b"\xff\xd8\xff"


async def _objects(client: Any) -> set[str]:
    store = client.app[MATERIALS].store
    return {o.key for o in await store.list_objects()}


def _store_files(client: Any) -> list[str]:
    """Every file in the local store's directory, temp and part files included ([] on S3,
    which keeps no temp files of ours)."""
    store = client.app[MATERIALS].store
    root = getattr(store, "root", None)
    if root is None:
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def _rows(client: Any, table: str) -> int:
    from sqlalchemy import text

    async with client.app[keys.DB].session() as s:
        return (await s.exec(text(f"SELECT count(*) FROM {table}"))).one()[0]  # type: ignore[call-overload]


async def test_an_executable_renamed_jpg_is_refused_and_leaves_nothing(
    client: Any, as_user: Any
) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    r = await slot(
        worker,
        c["case"]["id"],
        c["specs"][ID_CARD],
        EXECUTABLE,
        "image/jpeg",
        filename="身份证.jpg",
    )
    form = await r.json()
    assert await send(worker, form, EXECUTABLE, "image/jpeg") in (200, 201, 204)
    bad = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert bad.status == 422
    err = (await bad.json())["error"]
    assert err["code"] == "upload.type_not_allowed"
    assert "executable" in err["message"]
    assert await _rows(client, "material") == 0
    assert await _objects(client) == set()  # the bytes are gone at once
    # The slot is spent: confirming it again says so instead of trying again.
    again = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "upload.state"


async def test_a_pdf_declared_as_a_photo_is_refused(client: Any, as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    doc = pdf()
    r = await slot(worker, c["case"]["id"], c["specs"][HUKOU], doc, "image/jpeg")
    form = await r.json()
    await send(worker, form, doc, "image/jpeg")
    bad = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert bad.status == 422
    assert (await bad.json())["error"]["code"] == "upload.type_mismatch"
    assert await _objects(client) == set()


async def test_a_type_the_material_does_not_accept_is_refused_at_the_slot(as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    # 申请人身份证 accepts photos only.
    r = await slot(worker, c["case"]["id"], c["specs"][ID_CARD], pdf(), "application/pdf")
    assert r.status == 422
    body = await r.json()
    assert body["error"]["code"] == "material.type"
    assert ID_CARD in body["error"]["message"]
    r = await slot(worker, c["case"]["id"], None, b"x" * 10, "application/x-msdownload")
    assert (await r.json())["error"]["code"] == "upload.type_not_allowed"


async def test_a_file_over_the_limit_is_refused(client: Any, as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    case_id, spec = c["case"]["id"], c["specs"][HUKOU]
    settings = client.app[keys.SETTINGS]
    # Too big for one request: use multipart. Too big for anything: refused.
    r = await slot(
        worker, case_id, spec, b"", "application/pdf", size=settings.upload_max_bytes + 1
    )
    assert r.status == 413 and (await r.json())["error"]["code"] == "upload.use_multipart"
    r = await slot(
        worker,
        case_id,
        spec,
        b"",
        "application/pdf",
        size=settings.upload_multipart_max_bytes + 1,
        multipart=True,
    )
    assert r.status == 413 and (await r.json())["error"]["code"] == "upload.too_large"

    # The slot allows exactly the declared size; sending more is refused by the store itself.
    small = pdf()
    r = await slot(worker, case_id, spec, small, "application/pdf")
    form = await r.json()
    status = await send(worker, form, small + b"0" * 5000, "application/pdf")
    assert status in (400, 413), status
    assert await _objects(client) == set()
    assert _store_files(client) == []  # nor a temp file of the refused bytes
    if form["method"] == "PUT":
        # Sent without a length (chunked), the excess shows only once it streams in: the
        # write already begun is dropped, and no temp file of it stays in the store.
        status = await send_chunked(form, worker.base, small + b"0" * 300_000, "application/pdf")
        assert status == 413, status
        assert _store_files(client) == []
    nothing = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert nothing.status == 422
    assert (await nothing.json())["error"]["code"] == "upload.not_received"
    # The slot is still usable with the right bytes.
    assert await send(worker, form, small, "application/pdf") in (200, 201, 204)
    ok = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert ok.status == 201, await ok.text()


async def test_confirming_twice_or_without_an_upload(client: Any, as_user: Any) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    data = jpeg()
    r = await slot(worker, c["case"]["id"], c["specs"][ID_CARD], data, "image/jpeg")
    form = await r.json()

    early = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert early.status == 422
    assert (await early.json())["error"]["code"] == "upload.not_received"
    assert await _rows(client, "material") == 0

    await send(worker, form, data, "image/jpeg")
    first = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert first.status == 201
    second = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert second.status == 409
    err = (await second.json())["error"]
    assert err["code"] == "upload.state" and "确认" in err["message"]
    assert await _rows(client, "material") == 1


async def test_the_upload_link_cannot_overwrite_a_confirmed_document(
    client: Any, as_user: Any, storage: str
) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    doc = pdf()
    r = await slot(worker, c["case"]["id"], c["specs"][HUKOU], doc, "application/pdf")
    form = await r.json()
    await send(worker, form, doc, "application/pdf")
    m = await (await worker.post(f"/api/v1/uploads/{form['id']}/confirm")).json()
    kept = await _objects(client)
    # The same (still unexpired) link again, with other bytes of the same size:
    forged = doc[:-8] + b"%%FORGED"
    status = await send(worker, form, forged, "application/pdf")
    assert await fetch_link(worker, m["id"]) == doc  # what was checked is what is kept
    if storage == "local":
        # Our own PUT route refuses a link whose slot is spent, and stores nothing.
        assert status == 410
        assert await _objects(client) == kept
    else:
        # A presigned POST cannot be revoked: S3 accepts it, and the object lands on the
        # slot's dead key, which nothing refers to; the sweep removes it.
        assert status in (200, 201, 204)
        assert await _objects(client) == kept | {await _slot_key(client, form["id"])}
        report = await client.app[MATERIALS].sweep(_later(client))
        assert report.orphans == 1
        assert await _objects(client) == kept
    assert await fetch_link(worker, m["id"]) == doc
    # Confirming the same upload again is refused on both stores, and adds nothing.
    again = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert again.status == 409 and (await again.json())["error"]["code"] == "upload.state"
    assert await _rows(client, "material") == 1


async def _slot_key(client: Any, slot_id: int) -> str:
    from sqlalchemy import text

    async with client.app[keys.DB].session() as s:
        q = text("SELECT key FROM upload_slot WHERE id = :id").bindparams(id=slot_id)
        return (await s.exec(q)).one()[0]  # type: ignore[call-overload]


async def _slot_state(client: Any, slot_id: int) -> tuple[str, str]:
    from sqlalchemy import text

    async with client.app[keys.DB].session() as s:
        q = text("SELECT state, error FROM upload_slot WHERE id = :id").bindparams(id=slot_id)
        row = (await s.exec(q)).one()  # type: ignore[call-overload]
        return row[0], row[1]


async def test_a_photo_declaring_too_many_pixels_is_refused_before_decoding(
    client: Any, as_user: Any
) -> None:
    worker = await as_user("worker")
    c = await open_case(worker)
    limit = client.app[keys.SETTINGS].image_max_pixels
    for content_type, bomb in [
        ("image/png", png_bomb()),
        ("image/jpeg", jpeg_bomb()),
        ("image/heic", heic_bomb()),
    ]:
        r = await slot(worker, c["case"]["id"], c["specs"][ID_CARD], bomb, content_type)
        assert r.status == 201, await r.text()
        form = await r.json()
        assert await send(worker, form, bomb, content_type) in (200, 201, 204)
        bad = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
        assert bad.status == 422, (content_type, await bad.text())
        err = (await bad.json())["error"]
        assert err["code"] == "upload.image_too_large", content_type
        assert str(limit) in err["message"]
        # The refusal is kept: the slot is spent, and nothing is stored.
        assert await _slot_state(client, form["id"]) == ("failed", "upload.image_too_large")
        again = await worker.post(f"/api/v1/uploads/{form['id']}/confirm")
        assert again.status == 409
        assert await _objects(client) == set()
    assert await _rows(client, "material") == 0


def _later(client: Any) -> Any:
    import datetime as dt

    grace = client.app[keys.SETTINGS].orphan_grace_seconds
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace + 60)

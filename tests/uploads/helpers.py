"""Materials test helpers: files that look like what tablets send, and the upload dance."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from PIL import Image

from tests.conftest import User
from tests.signaling.helpers import gaoqiao_setup, new_resident, take_payload

GAOLING = "高龄津贴"  # the 高龄津贴 item: 居民身份证 + 户口簿 required, accepts photos and PDF


def jpeg(width: int = 640, height: int = 480, *, orientation: int = 1, gps: bool = False) -> bytes:
    """A camera-like JPEG: a left half red and right half blue, with EXIF as asked."""
    im = Image.new("RGB", (width, height), "red")
    im.paste((0, 0, 255), (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "TabletCam"  # Make
    if gps:
        exif[0x8825] = {1: "N", 2: (30.0, 15.0, 0.0), 3: "E", 4: (120.0, 10.0, 0.0)}
    out = io.BytesIO()
    im.save(out, format="JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def png(width: int = 300, height: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "green").save(out, format="PNG")
    return out.getvalue()


def heic(width: int = 320, height: int = 240) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", (width, height), "yellow").save(out, format="HEIF")
    return out.getvalue()


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header declares a huge image (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 60_000, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A real small JPEG whose frame header (SOF0) is changed to declare a huge image."""
    raw = bytearray(jpeg(64, 48))
    at = raw.index(b"\xff\xc0")
    raw[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(raw)


def heic_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A real small HEIC whose image size property (ispe) is changed to declare a huge image."""
    raw = bytearray(heic(64, 48))
    at = raw.index(b"ispe")
    raw[at + 8 : at + 16] = struct.pack(">II", width, height)
    return bytes(raw)


def pdf(pages: int = 1, padding: int = 0) -> bytes:
    body = b"%PDF-1.4\n" + b"".join(
        b"%d 0 obj << /Type /Page >> endobj\n" % (i + 1) for i in range(pages)
    )
    return body + os.urandom(padding) + b"\n%%EOF\n"


EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 120 + b"This program cannot be run in DOS"


async def open_case(worker: User, *, years: int = 84, seq: int = 123) -> dict[str, Any]:
    """A 高龄津贴 case at the worker's point for a new resident (no call)."""
    setup = await gaoqiao_setup(worker)
    resident = await new_resident(worker, years, seq)
    resp = await worker.post(
        "/api/v1/cases",
        json={
            "item_code": setup["item"]["code"],
            "resident_id": resident,
            "site_id": setup["point"]["id"],
        },
    )
    assert resp.status == 201, await resp.text()
    case = await resp.json()
    checklist = await (await worker.get(f"/api/v1/cases/{case['id']}/checklist")).json()
    specs = {i["name"]: i["spec_id"] for i in checklist["items"]}
    return {"case": case, "resident_id": resident, "specs": specs, "setup": setup}


async def slot(
    user: User,
    case_id: int,
    spec_id: int | None,
    data: bytes,
    content_type: str,
    *,
    filename: str = "doc",
    size: int | None = None,
    multipart: bool = False,
) -> aiohttp.ClientResponse:
    return await user.post(
        f"/api/v1/cases/{case_id}/uploads",
        json={
            "spec_id": spec_id,
            "filename": filename,
            "content_type": content_type,
            "size": len(data) if size is None else size,
            "multipart": multipart,
        },
    )


async def send(user: User, form: dict[str, Any], data: bytes, content_type: str) -> int:
    """Send the bytes the way a browser would: PUT to our signed URL, or POST form to S3."""
    url = form["url"] if form["url"].startswith("http") else f"{user.base}{form['url']}"
    async with aiohttp.ClientSession() as http:  # no cookies: the link alone must carry it
        if form["method"] == "PUT":
            headers = {"Content-Type": content_type, **form.get("headers", {})}
            async with http.put(url, data=data, headers=headers) as r:
                await r.read()
                return r.status
        fd = aiohttp.FormData()
        for k, v in form["fields"].items():
            fd.add_field(k, v)
        fd.add_field("file", data, filename="upload", content_type=content_type)
        async with http.post(url, data=fd) as r:
            await r.read()
            return r.status


async def send_chunked(form: dict[str, Any], base: str, data: bytes, content_type: str) -> int:
    """PUT to our signed URL without a Content-Length (chunked), 64 KiB at a time."""
    url = form["url"] if form["url"].startswith("http") else f"{base}{form['url']}"

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    async with aiohttp.ClientSession() as http:
        headers = {"Content-Type": content_type, **form.get("headers", {})}
        async with http.put(url, data=body(), headers=headers) as r:
            await r.read()
            return r.status


async def upload(
    user: User,
    case_id: int,
    spec_id: int | None,
    data: bytes,
    content_type: str,
    *,
    filename: str = "doc",
) -> dict[str, Any]:
    """Slot, send, confirm; returns the material (asserting every step worked)."""
    r = await slot(user, case_id, spec_id, data, content_type, filename=filename)
    assert r.status == 201, await r.text()
    form = await r.json()
    assert await send(user, form, data, content_type) in (200, 201, 204)
    c = await user.post(f"/api/v1/uploads/{form['id']}/confirm")
    assert c.status == 201, await c.text()
    return await c.json()


async def fetch_link(user: User, material_id: int, variant: str = "original") -> bytes:
    r = await user.get(f"/api/v1/materials/{material_id}/link", params={"variant": variant})
    assert r.status == 200, await r.text()
    url = (await r.json())["url"]
    url = url if url.startswith("http") else f"{user.base}{url}"
    async with aiohttp.ClientSession() as http, http.get(url) as g:
        assert g.status == 200, await g.text()
        return await g.read()


async def call_for_case(worker_sock: Any, clerk_sock: Any, *, seq: int = 123) -> dict[str, Any]:
    """Take a ticket for a new resident, the clerk calls it, the point answers: a live call."""
    setup = await gaoqiao_setup(worker_sock.user)
    resident = await new_resident(worker_sock.user, 84, seq)
    ticket = await worker_sock.ok("ticket:take", take_payload(setup, resident))
    called = await clerk_sock.ok("queue:call_next")
    await worker_sock.wait("ticket:called")
    await worker_sock.ok("ticket:answer", {"ticket_id": ticket["id"]})
    case_id = ticket["case_id"]
    checklist = await (await worker_sock.user.get(f"/api/v1/cases/{case_id}/checklist")).json()
    return {
        "ticket": ticket,
        "call_id": called["call"]["call_id"],
        "case_id": case_id,
        "resident_id": resident,
        "specs": {i["name"]: i["spec_id"] for i in checklist["items"]},
        "required": [i["name"] for i in checklist["items"] if i["required"]],
    }


async def complete_materials(point: User, clerk: User, case_id: int) -> list[dict[str, Any]]:
    """Upload a photo for every required material of the case and accept each as the clerk."""
    checklist = await (await point.get(f"/api/v1/cases/{case_id}/checklist")).json()
    done = []
    for item in checklist["items"]:
        if item["required"] and item["state"] != "accepted":
            m = await upload(point, case_id, item["spec_id"], jpeg(64, 48), "image/jpeg")
            r = await clerk.post(f"/api/v1/materials/{m['id']}/review", json={"decision": "accept"})
            assert r.status == 200, await r.text()
            done.append(await r.json())
    return done

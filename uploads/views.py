"""HTTP routes of materials, plus the signed object routes of the local store."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import PayloadEncodingError

from core.errors import AppError, NotFound, TooLarge, UnsupportedMediaType
from httpapi import keys
from httpapi.api import Api, Ctx, RawRoute
from uploads import review as review_service
from uploads.common import log
from uploads.intake import slot_open_at
from uploads.models import (
    Checklist,
    ChecklistItem,
    LinkQuery,
    LinkRead,
    MaterialRead,
    ObjectPartQuery,
    ObjectPutQuery,
    PartRead,
    PartsIn,
    PartUrl,
    PhotoPrep,
    RequestIn,
    ReuseCandidate,
    ReuseIn,
    ReviewIn,
    SlotIn,
    SlotRead,
    StoredRead,
)
from uploads.service import Materials
from uploads.storage import LOCAL_ROUTE, LinkError, LocalStore

V1 = "/api/v1"
MATERIALS: web.AppKey[Materials] = web.AppKey("materials")
STREAM_CHUNK = 1024 * 1024


def _materials(ctx: Ctx) -> Materials:
    return ctx.request.app[MATERIALS]


async def create_slot(ctx: Ctx) -> SlotRead:
    return await _materials(ctx).intake.create_slot(
        session=ctx.session,
        me=ctx.me,
        case_id=ctx.path_int("case_id"),
        body=ctx.body,
        audit_kw=ctx.audit_kw(),
    )


async def part_urls(ctx: Ctx) -> list[PartUrl]:
    body: PartsIn = ctx.body
    return await _materials(ctx).intake.part_urls(
        session=ctx.session, me=ctx.me, slot_id=ctx.path_int("slot_id"), numbers=body.numbers
    )


async def list_parts(ctx: Ctx) -> list[PartRead]:
    return await _materials(ctx).intake.list_parts(
        session=ctx.session, me=ctx.me, slot_id=ctx.path_int("slot_id")
    )


async def confirm(ctx: Ctx) -> MaterialRead:
    return await _materials(ctx).intake.confirm(
        session=ctx.session,
        outbox=ctx.outbox,
        me=ctx.me,
        slot_id=ctx.path_int("slot_id"),
        audit_kw=ctx.audit_kw(),
    )


async def checklist(ctx: Ctx) -> Checklist:
    out = await review_service.checklist(
        session=ctx.session, me=ctx.me, case_id=ctx.path_int("case_id")
    )
    s = ctx.settings
    out.photo = PhotoPrep(max_side=s.photo_max_side, quality=s.photo_quality)
    return out


async def review(ctx: Ctx) -> MaterialRead:
    return await review_service.review(
        session=ctx.session,
        outbox=ctx.outbox,
        me=ctx.me,
        material_id=ctx.path_int("material_id"),
        body=ctx.body,
        audit_kw=ctx.audit_kw(),
    )


async def request_material(ctx: Ctx) -> ChecklistItem:
    body: RequestIn = ctx.body
    return await review_service.request(
        session=ctx.session,
        outbox=ctx.outbox,
        me=ctx.me,
        case_id=ctx.path_int("case_id"),
        spec_id=ctx.path_int("spec_id"),
        body=body,
        audit_kw=ctx.audit_kw(),
    )


async def link(ctx: Ctx) -> LinkRead:
    q: LinkQuery = ctx.query
    return await _materials(ctx).links.material(
        session=ctx.session,
        me=ctx.me,
        material_id=ctx.path_int("material_id"),
        variant=q.variant,
        audit_kw=ctx.audit_kw(),
    )


async def reusable(ctx: Ctx) -> list[ReuseCandidate]:
    return await _materials(ctx).reuse.reusable(
        session=ctx.session, me=ctx.me, case_id=ctx.path_int("case_id")
    )


async def reuse(ctx: Ctx) -> MaterialRead:
    body: ReuseIn = ctx.body
    return await _materials(ctx).reuse.reuse(
        session=ctx.session,
        outbox=ctx.outbox,
        me=ctx.me,
        case_id=ctx.path_int("case_id"),
        body=body,
        audit_kw=ctx.audit_kw(),
    )


def register(api: Api) -> None:
    a = api.add
    tags = ("materials",)
    a(
        "GET",
        f"{V1}/cases/{{case_id:[0-9]+}}/checklist",
        checklist,
        summary="The case's material checklist: each required document and its state",
        action="case.read",
        response=Checklist,
        tags=tags,
    )
    a(
        "POST",
        f"{V1}/cases/{{case_id:[0-9]+}}/uploads",
        create_slot,
        summary="Ask for an upload slot: a presigned POST (S3), a signed PUT (local) or multipart",
        action="material.upload",
        body=SlotIn,
        response=SlotRead,
        status=201,
        tags=tags,
    )
    a(
        "POST",
        f"{V1}/uploads/{{slot_id:[0-9]+}}/parts",
        part_urls,
        summary="Signed URLs for parts of a multipart upload",
        action="material.upload",
        body=PartsIn,
        response=list[PartUrl],
        tags=tags,
    )
    a(
        "GET",
        f"{V1}/uploads/{{slot_id:[0-9]+}}/parts",
        list_parts,
        summary="Parts already received (resume a broken upload from here)",
        action="material.upload",
        response=list[PartRead],
        tags=tags,
    )
    a(
        "POST",
        f"{V1}/uploads/{{slot_id:[0-9]+}}/confirm",
        confirm,
        summary="Confirm an upload: the object is checked and becomes a material of the case",
        action="material.upload",
        response=MaterialRead,
        status=201,
        tags=tags,
    )
    a(
        "POST",
        f"{V1}/materials/{{material_id:[0-9]+}}/review",
        review,
        summary="Accept or reject a material (with a reason)",
        action="material.review",
        body=ReviewIn,
        response=MaterialRead,
        tags=tags,
    )
    a(
        "POST",
        f"{V1}/cases/{{case_id:[0-9]+}}/checklist/{{spec_id:[0-9]+}}/request",
        request_material,
        summary="Ask the service point for one material of the checklist",
        action="material.review",
        body=RequestIn,
        response=ChecklistItem,
        tags=tags,
    )
    a(
        "GET",
        f"{V1}/materials/{{material_id:[0-9]+}}/link",
        link,
        summary="A short-lived link to view a material or its thumbnail (audited)",
        action="material.view",
        query=LinkQuery,
        response=LinkRead,
        tags=tags,
    )
    a(
        "GET",
        f"{V1}/cases/{{case_id:[0-9]+}}/reusable",
        reusable,
        summary="The resident's accepted documents from earlier cases that fit this checklist",
        action="material.upload",
        response=list[ReuseCandidate],
        tags=tags,
    )
    a(
        "POST",
        f"{V1}/cases/{{case_id:[0-9]+}}/reuse",
        reuse,
        summary="Reuse an earlier document with the resident's consent (材料少交免交)",
        action="material.upload",
        body=ReuseIn,
        response=MaterialRead,
        status=201,
        tags=tags,
    )

    describe_object_routes(api)


# -- the local store's signed object routes (the S3 backend never uses them)

LINK_ERRORS = (
    (403, "`storage.bad_signature`: a parameter was changed, added or left out"),
    (404, "`not_found`: the store is S3 (these routes are the local store's only)"),
    (410, "`storage.link_expired`: the link expired, or its slot was confirmed or abandoned"),
    (413, "`upload.too_large`: the body is larger than `max`"),
)
INTERRUPTED = "`upload.interrupted`: the body ended before its Content-Length"


def describe_object_routes(api: Api) -> None:
    """The signed PUTs a browser sends a file's bytes to on the local store (no session)."""
    api.describe(
        RawRoute(
            "PUT",
            f"{LOCAL_ROUTE}/put",
            "put_object",
            "Send a file's bytes to a local-store upload slot",
            (
                "The `url` of an upload slot (`POST /api/v1/cases/{case_id}/uploads`, "
                "`method` PUT) points here. Send it unchanged: every query parameter is "
                "signed. Send the slot's `headers` with it: `Content-Type` must be the type "
                "the slot declared. Then confirm the slot."
            ),
            ObjectPutQuery,
            "The file's bytes; Content-Type as in the slot's `headers`.",
            StoredRead,
            201,
            {
                **dict(LINK_ERRORS),
                400: INTERRUPTED,
                415: "`upload.type_mismatch`: Content-Type is not the slot's",
            },
            ("materials",),
        )
    )
    api.describe(
        RawRoute(
            "PUT",
            f"{LOCAL_ROUTE}/part",
            "put_part",
            "Send one part of a multipart upload to the local store",
            (
                "Each `url` of `POST /api/v1/uploads/{slot_id}/parts` points here; send it "
                "unchanged (every query parameter is signed). Sending a part again replaces "
                "it whole. The answer's `ETag` header is the part's MD5, as S3 gives it."
            ),
            ObjectPartQuery,
            "The part's bytes.",
            StoredRead,
            201,
            {**dict(LINK_ERRORS), 400: INTERRUPTED},
            ("materials",),
        )
    )


def _local(request: web.Request) -> LocalStore:
    store = request.app[MATERIALS].store
    if not isinstance(store, LocalStore):
        raise NotFound("链接", "Link")
    return store


def _verify(store: LocalStore, action: str, request: web.Request) -> dict[str, str]:
    try:
        return store.verify(action, dict(request.query))
    except LinkError as e:
        raise _link_error(e) from None


class LinkRefused(AppError):
    status = 403


class LinkGone(AppError):
    status = 410


def _link_error(e: LinkError) -> AppError:
    return LinkGone(e.code) if e.code == "storage.link_expired" else LinkRefused(e.code)


async def put_object(request: web.Request) -> web.Response:
    """A single-request upload to a signed URL: streamed to a temp file, then renamed."""
    store = _local(request)
    params = _verify(store, "put", request)
    key, max_bytes = params["key"], int(params["max"])
    if request.content_type != params["type"]:
        raise UnsupportedMediaType(
            "upload.type_mismatch", found=request.content_type or "-", declared=params["type"]
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLarge("upload.too_large", size=request.content_length, limit=max_bytes)
    async with request.app[keys.DB].session() as session:
        still_open = await slot_open_at(session, key)
    if not still_open:
        raise _link_error(LinkError("storage.link_expired"))
    size = await store.write_stream(store.path(key), _limited(request, max_bytes))
    return web.json_response({"size": size}, status=201)


async def put_part(request: web.Request) -> web.Response:
    store = _local(request)
    params = _verify(store, "part", request)
    max_bytes = int(params["max"])
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLarge("upload.too_large", size=request.content_length, limit=max_bytes)
    try:
        part = await store.write_part(
            params["upload"], int(params["n"]), max_bytes, _limited(request, max_bytes)
        )
    except LinkError as e:
        raise _link_error(e) from None
    # The ETag is the part's MD5, quoted, as S3 answers it.
    return web.json_response({"size": part.size}, status=201, headers={"ETag": part.etag})


class UploadInterrupted(AppError):
    """The client hung up before the whole body arrived: its doing, not a server error."""

    status = 400
    default_code = "upload.interrupted"


async def _limited(request: web.Request, limit: int):  # type: ignore[no-untyped-def]
    """The body in chunks, refused past `limit`, and refused if it ends before its declared
    length: a client that hangs up may look like an early end of the body, or like a reset
    connection. Either way the write is discarded and nothing is stored."""
    size = 0
    declared = request.content_length
    try:
        async for chunk in request.content.iter_chunked(STREAM_CHUNK):
            size += len(chunk)
            if size > limit:
                raise TooLarge("upload.too_large", size=size, limit=limit)
            yield chunk
    except (ConnectionError, ClientPayloadError, PayloadEncodingError) as e:
        raise _interrupted(request, size, declared, type(e).__name__) from None
    if declared is not None and size < declared:
        raise _interrupted(request, size, declared, "early end of the body")


def _interrupted(
    request: web.Request, size: int, declared: int | None, how: str
) -> UploadInterrupted:
    log.info(
        "upload aborted by the client (%s): %s after %d of %s bytes",
        how,
        request.path,
        size,
        declared if declared is not None else "?",
    )
    return UploadInterrupted()


async def get_object(request: web.Request) -> web.StreamResponse:
    store = _local(request)
    params = _verify(store, "get", request)
    path = store.path(params["key"])
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("文件", "File")
    name = params.get("name") or "document"
    return web.FileResponse(
        path,
        headers={
            "Content-Type": params["type"],
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def install_object_routes(app: web.Application) -> None:
    app.router.add_put(f"{LOCAL_ROUTE}/put", put_object)
    app.router.add_put(f"{LOCAL_ROUTE}/part", put_part)
    app.router.add_get(f"{LOCAL_ROUTE}/get", get_object)

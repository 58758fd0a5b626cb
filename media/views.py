"""HTTP routes of recordings: what was recorded for a case, and short-lived playback links.

Handlers never commit: the HTTP layer commits the request's one unit of work after them.
"""

from __future__ import annotations

from aiohttp import web

from httpapi.api import Api, Ctx
from media.models import RecordingRead
from media.playback import Playback
from media.service import Recordings
from uploads.models import LinkRead

V1 = "/api/v1"
RECORDINGS: web.AppKey[Recordings] = web.AppKey("recordings")


def _playback(ctx: Ctx) -> Playback:
    return ctx.request.app[RECORDINGS].playback


async def list_recordings(ctx: Ctx) -> list[RecordingRead]:
    return await _playback(ctx).list_for_case(ctx.session, ctx.me, ctx.path_int("case_id"))


async def segment_link(ctx: Ctx) -> LinkRead:
    return await _playback(ctx).link(
        ctx.session, ctx.me, ctx.path_int("segment_id"), **ctx.audit_kw()
    )


def register(api: Api) -> None:
    api.add(
        "GET",
        f"{V1}/cases/{{case_id:[0-9]+}}/recordings",
        list_recordings,
        summary="The case's call recordings: one per recorded participant, with its segments",
        action="recording.play",
        response=list[RecordingRead],
        tags=("recordings",),
    )
    api.add(
        "GET",
        f"{V1}/recordings/segments/{{segment_id:[0-9]+}}/link",
        segment_link,
        summary="A short-lived link to play one recording segment (every playback is audited)",
        action="recording.play",
        response=LinkRead,
        tags=("recordings",),
    )

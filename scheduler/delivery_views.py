"""HTTP routes of courier deliveries: the courier's day and the door, staff following them and
opening a proof (audited), supervisors releasing a locked one, the resident following theirs,
and choosing delivery for a case."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.errors import AppError
from core.events import deliver_nowhere
from httpapi import keys
from httpapi.api import Api, Ctx
from scheduler import deliveries
from scheduler.deliveries import Files
from scheduler.models import (
    CourierDayRead,
    DeliveryChoiceIn,
    DeliveryChoiceRead,
    DeliveryQuery,
    DeliveryRead,
    FailIn,
    ProofIn,
    ProofRead,
    ProofResult,
    ResidentDeliveryRead,
)

# The object store for proof files; the composition root puts its store here (web/app.py).
DELIVERY_FILES: web.AppKey[Files] = web.AppKey("delivery_files")

V1 = "/api/v1"
ID = "{delivery_id:[0-9]+}"
TAGS = ("deliveries",)


def _id(ctx: Ctx) -> int:
    return ctx.path_int("delivery_id")


async def courier_day(ctx: Ctx) -> CourierDayRead:
    return await deliveries.courier_day(
        ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        cipher=ctx.request.app[keys.CIPHER],
        audit_kw=ctx.audit_kw(),
    )


async def dispatch(ctx: Ctx) -> DeliveryRead:
    d = await deliveries.dispatch(
        ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        cipher=ctx.request.app[keys.CIPHER],
        sms=ctx.request.app[keys.SMS],
        delivery_id=_id(ctx),
        audit_kw=ctx.audit_kw(),
    )
    return await deliveries.read_one(ctx.session, d)


async def fail(ctx: Ctx) -> DeliveryRead:
    d = await deliveries.fail(
        ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        sms=ctx.request.app[keys.SMS],
        delivery_id=_id(ctx),
        fail_in=ctx.body,
        audit_kw=ctx.audit_kw(),
    )
    return await deliveries.read_one(ctx.session, d)


async def submit_proof(ctx: Ctx) -> ProofResult:
    try:
        return await deliveries.submit_proof(
            ctx.session,
            principal=ctx.me,
            settings=ctx.settings,
            cipher=ctx.request.app[keys.CIPHER],
            sms=ctx.request.app[keys.SMS],
            files=ctx.request.app[DELIVERY_FILES],
            outbox=ctx.outbox,
            delivery_id=_id(ctx),
            proof_in=ctx.body,
            audit_kw=ctx.audit_kw(),
        )
    except AppError as e:
        # A kept refusal (a wrong entry counted, the delivery locked) is committed, and its
        # events go out: the supervisors hear of a lock although the courier gets a 4xx.
        if e.keep_changes:
            await ctx.session.commit()
            await ctx.request.app.get(keys.DELIVER, deliver_nowhere)(ctx.outbox.take())
        raise


async def list_deliveries(ctx: Ctx) -> list[DeliveryRead]:
    return await deliveries.list_area(ctx.session, principal=ctx.me, query=ctx.query)


async def get_proof(ctx: Ctx) -> ProofRead:
    return await deliveries.proof(
        ctx.session,
        principal=ctx.me,
        files=ctx.request.app[DELIVERY_FILES],
        delivery_id=_id(ctx),
        audit_kw=ctx.audit_kw(),
    )


async def release(ctx: Ctx) -> DeliveryRead:
    d = await deliveries.release(
        ctx.session,
        principal=ctx.me,
        settings=ctx.settings,
        delivery_id=_id(ctx),
        audit_kw=ctx.audit_kw(),
    )
    return await deliveries.read_one(ctx.session, d)


async def get_choice(ctx: Ctx) -> DeliveryChoiceRead:
    return await deliveries.choice(ctx.session, principal=ctx.me, case_id=ctx.path_int("case_id"))


async def choose(ctx: Ctx) -> DeliveryChoiceRead:
    return await deliveries.choose(
        ctx.session,
        principal=ctx.me,
        case_id=ctx.path_int("case_id"),
        deliver=ctx.body.deliver,
        audit_kw=ctx.audit_kw(),
    )


async def resident_list(ctx: Ctx) -> list[ResidentDeliveryRead]:
    return await deliveries.resident_list(ctx.session, principal=ctx.me)


async def resident_get(ctx: Ctx) -> ResidentDeliveryRead:
    return await deliveries.resident_get(ctx.session, principal=ctx.me, delivery_id=_id(ctx))


def register(api: Api) -> None:
    routes: list[tuple[Any, ...]] = [
        # method, path, handler, summary, action, body, query, response
        (
            "GET",
            f"{V1}/courier/day",
            courier_day,
            "The courier's deliveries of the day in planned order, with addresses (audited)",
            "delivery.courier",
            None,
            None,
            CourierDayRead,
        ),
        (
            "POST",
            f"{V1}/deliveries/{ID}/dispatch",
            dispatch,
            "Set out with a delivery: the resident gets a 6-digit code by SMS",
            "delivery.courier",
            None,
            None,
            DeliveryRead,
        ),
        (
            "POST",
            f"{V1}/deliveries/{ID}/fail",
            fail,
            "A failed attempt at the door: the reason, and a re-attempt on a later day",
            "delivery.courier",
            FailIn,
            None,
            DeliveryRead,
        ),
        (
            "POST",
            f"{V1}/deliveries/{ID}/proof",
            submit_proof,
            "Proof at the door (identity, code, photo, signature, GPS); a repeat under the same "
            "key answers as the first",
            "delivery.courier",
            ProofIn,
            None,
            ProofResult,
        ),
        (
            "GET",
            f"{V1}/deliveries",
            list_deliveries,
            "Deliveries of the caller's area, newest first",
            "delivery.read",
            None,
            DeliveryQuery,
            list[DeliveryRead],
        ),
        (
            "GET",
            f"{V1}/deliveries/{ID}/proof",
            get_proof,
            "A delivery's proof with short-lived links to its photo and signature (audited)",
            "delivery.read",
            None,
            None,
            ProofRead,
        ),
        (
            "POST",
            f"{V1}/deliveries/{ID}/release",
            release,
            "Release a locked delivery: it goes out again with a new code",
            "delivery.manage",
            None,
            None,
            DeliveryRead,
        ),
        (
            "GET",
            f"{V1}/cases/{{case_id:[0-9]+}}/licence-delivery",
            get_choice,
            "How the case's licence reaches the resident: at the hall or brought home",
            "delivery.choose",
            None,
            None,
            DeliveryChoiceRead,
        ),
        (
            "POST",
            f"{V1}/cases/{{case_id:[0-9]+}}/licence-delivery",
            choose,
            "Choose whether the case's licence is brought to the resident's home",
            "delivery.choose",
            DeliveryChoiceIn,
            None,
            DeliveryChoiceRead,
        ),
        (
            "GET",
            f"{V1}/resident/deliveries",
            resident_list,
            "The resident's deliveries",
            "delivery.own",
            None,
            None,
            list[ResidentDeliveryRead],
        ),
        (
            "GET",
            f"{V1}/resident/deliveries/{ID}",
            resident_get,
            "One of the resident's deliveries",
            "delivery.own",
            None,
            None,
            ResidentDeliveryRead,
        ),
    ]
    for method, path, handler, summary, action, body, query, response in routes:
        api.add(
            method,
            path,
            handler,
            summary=summary,
            action=action,
            body=body,
            query=query,
            response=response,
            tags=TAGS,
        )

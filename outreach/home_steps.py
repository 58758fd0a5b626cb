"""The steps of a home-service request after intake: triage, the visit, the case handled,
delivery; each checks where the request is, writes the step, its timeline event and its SMS.

requested -> (needs_info -> requested)* -> accepted -> scheduled (again when rescheduled) ->
visited -> handled -> delivered; declined or cancelled on the way (declined too when the
visit cannot confirm the basis). An illegal step is a 409 and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, cases, residents
from core.access import Principal, site_ancestry
from core.db import utcnow
from core.errors import Conflict, Invalid, NotFound
from core.models import Case, CaseEvent, CaseStatus, Role, Site, Staff, StaffSite
from core.pii import PiiCipher
from core.settings import Settings
from core.sms import SmsGateway
from outreach.home import (
    NOTES_MAX,
    VISIT_DAYS,
    check_due,
    local_today,
    notify,
    preferred_days,
    seal,
    unseal,
    visible,
)
from outreach.models import (
    HOME_CLOSED,
    HomeAnswerIn,
    HomeBasis,
    HomeRequest,
    HomeStaffChoice,
    HomeStatus,
    HomeVisit,
    VisitStatus,
)

S = HomeStatus

# Where each step may start from.
MOVES: dict[str, frozenset[HomeStatus]] = {
    "accept": frozenset({S.requested, S.needs_info}),
    "ask": frozenset({S.requested, S.needs_info}),
    "answer": frozenset({S.needs_info}),
    "decline": frozenset({S.requested, S.needs_info, S.accepted, S.scheduled}),
    "schedule": frozenset({S.accepted, S.scheduled}),
    "visit": frozenset({S.scheduled}),
    "handle": frozenset({S.visited}),
    "deliver": frozenset({S.handled}),
    "cancel": frozenset({S.requested, S.needs_info, S.accepted, S.scheduled}),
}
STATUS_WORDS: dict[HomeStatus, tuple[str, str]] = {
    S.requested: ("待协调员处理", "waiting for the coordinator"),
    S.needs_info: ("待补充信息", "waiting for more information"),
    S.accepted: ("已受理，待安排上门", "accepted, to be scheduled"),
    S.scheduled: ("已安排上门", "scheduled"),
    S.visited: ("已上门", "visited"),
    S.handled: ("已办结", "handled"),
    S.delivered: ("已送达", "delivered"),
    S.declined: ("未受理", "declined"),
    S.cancelled: ("已取消", "cancelled"),
}
MOVE_WORDS: dict[str, tuple[str, str]] = {
    "accept": ("受理", "accepted"),
    "ask": ("要求补充信息", "asked for information"),
    "answer": ("补充信息", "given information"),
    "decline": ("不予受理", "declined"),
    "schedule": ("安排上门", "scheduled"),
    "visit": ("记录上门结果", "marked visited"),
    "handle": ("办结", "marked handled"),
    "deliver": ("记录送达", "marked delivered"),
    "cancel": ("取消", "cancelled"),
}


def _may(req: HomeRequest, move: str) -> None:
    if req.status not in MOVES[move]:
        zh, en = STATUS_WORDS[HomeStatus(req.status)]
        mzh, men = MOVE_WORDS[move]
        raise Conflict("home.state", status=zh, status_en=en, action=mzh, action_en=men)


async def _case(session: AsyncSession, req: HomeRequest) -> Case:
    return await cases.get(session=session, case_id=req.case_id)


def _set(req: HomeRequest, status: HomeStatus, now: dt.datetime) -> None:
    req.status = status
    req.updated_at = now
    if status in HOME_CLOSED:
        req.closed_at = now


async def _event(
    session: AsyncSession,
    req: HomeRequest,
    kind: str,
    principal: Principal,
    data: dict[str, Any] | None = None,
) -> None:
    """A step on the case timeline; never the sensitive part (the timeline is read by the
    case's clerks too), only what happened and when."""
    case = await _case(session, req)
    cases.add_event(
        session,
        case,
        kind,
        actor_id=principal.staff_fk,
        data={"request_id": req.id, **(data or {})},
    )


async def _close_visits(session: AsyncSession, req: HomeRequest) -> None:
    rows = await session.exec(
        select(HomeVisit).where(
            HomeVisit.request_id == req.id, HomeVisit.status == VisitStatus.scheduled
        )
    )
    for v in rows.all():
        v.status = VisitStatus.cancelled
        session.add(v)
    await session.flush()


async def _close_case(
    session: AsyncSession, req: HomeRequest, principal: Principal, status: CaseStatus
) -> None:
    case = await _case(session, req)
    if case.status not in cases.CLOSED:
        cases.set_status(session, case, status, actor_id=principal.staff_fk)


class Lifecycle:
    """The steps after intake; each checks the status, writes the step, its timeline event
    and its SMS, in the caller's unit of work."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        principal: Principal,
        sms: SmsGateway,
        settings: Settings,
        cipher: PiiCipher,
        request_id: str = "",
        ip: str = "",
    ) -> None:
        self.session = session
        self.principal = principal
        self.sms = sms
        self.settings = settings
        self.cipher = cipher
        self.audit_kw: dict[str, Any] = {"actor": principal, "request_id": request_id, "ip": ip}

    async def _load(self, request_id: int, move: str) -> HomeRequest:
        req = await visible(
            session=self.session, principal=self.principal, request_id=request_id, lock=True
        )
        _may(req, move)
        return req

    async def _step(self, req: HomeRequest, move: str, **detail: Any) -> None:
        self.session.add(req)
        audit.record(
            self.session,
            action=f"home.request.{move}",
            target_type="home_request",
            target_id=req.id or 0,
            detail=detail,
            **self.audit_kw,
        )

    async def accept(self, request_id: int, note: str = "") -> HomeRequest:
        req = await self._load(request_id, "accept")
        _set(req, S.accepted, utcnow())
        req.info_question = ""
        await self._step(req, "accept")
        await _event(self.session, req, "home.accepted", self.principal, {"note": note})
        await self._notify(req, "accepted")
        return req

    async def ask(self, request_id: int, question: str) -> HomeRequest:
        req = await self._load(request_id, "ask")
        asked = await self._count_events(req, "home.info_requested")
        _set(req, S.needs_info, utcnow())
        req.info_question = question
        await self._step(req, "ask")
        await _event(self.session, req, "home.info_requested", self.principal)
        await self._notify(req, "needs_info", suffix=f":{asked + 1}")
        return req

    async def answer(self, request_id: int, answer: HomeAnswerIn) -> HomeRequest:
        """The resident (or staff for them) answers the coordinator's question; back in the
        queue. The answer joins the notes, sealed like them."""
        req = await self._load(request_id, "answer")
        today = local_today(self.settings)
        private = unseal(self.cipher, req)
        if answer.pregnant_due is not None:
            check_due(answer.pregnant_due, today)
            if private.basis is HomeBasis.pregnant:
                private.pregnant_due = answer.pregnant_due
        if answer.preferred is not None:
            req.preferred = preferred_days(answer.preferred, today)
        if answer.address:
            private.address = answer.address
            req.address_masked = residents.mask_address(answer.address)
        line = f"补充（{today:%m-%d}）：{answer.text}"
        private.notes = "\n".join(x for x in (private.notes, line) if x)[-NOTES_MAX:]
        seal(self.cipher, req, private)
        _set(req, S.requested, utcnow())
        await self._step(req, "answer")
        await _event(self.session, req, "home.info_given", self.principal)
        return req

    async def decline(self, request_id: int, reason: str) -> HomeRequest:
        req = await self._load(request_id, "decline")
        await self._decline(req, reason)
        return req

    async def _decline(self, req: HomeRequest, reason: str, code: str = "") -> None:
        _set(req, S.declined, utcnow())
        req.decline_reason = reason
        await _close_visits(self.session, req)
        await self._step(req, "decline", code=code)
        await _event(self.session, req, "home.declined", self.principal, {"code": code})
        await _close_case(self.session, req, self.principal, CaseStatus.cancelled)
        await self._notify(req, "declined")

    async def cancel(self, request_id: int, reason: str) -> HomeRequest:
        req = await self._load(request_id, "cancel")
        _set(req, S.cancelled, utcnow())
        req.decline_reason = reason
        await _close_visits(self.session, req)
        await self._step(req, "cancel")
        by = "resident" if self.principal.is_resident else "staff"
        await _event(self.session, req, "home.cancelled", self.principal, {"by": by})
        await _close_case(self.session, req, self.principal, CaseStatus.cancelled)
        await self._notify(req, "cancelled")
        return req

    async def field_staff(self, request_id: int) -> list[HomeStaffChoice]:
        """Field staff serving the request's community (bound to it, its town or district),
        with how many visits each has that day."""
        req = await visible(session=self.session, principal=self.principal, request_id=request_id)
        return await field_staff_for(session=self.session, settings=self.settings, req=req)

    async def schedule(
        self,
        request_id: int,
        *,
        starts_at: dt.datetime,
        minutes: int,
        staff_id: int,
        planned_by: str = "coordinator",  # "planner": a published visit plan (scheduler/plans.py)
    ) -> HomeRequest:
        """Set the visit: a time and a field staff member, by hand or from a published plan.
        Again on a scheduled request: the visit moves, and the resident is told again."""
        req = await self._load(request_id, "schedule")
        now = utcnow()
        if not now < starts_at <= now + dt.timedelta(days=VISIT_DAYS):
            raise Invalid("home.visit_time", days=VISIT_DAYS)
        ends_at = starts_at + dt.timedelta(minutes=minutes)
        staff = await self.session.get(Staff, staff_id)
        allowed = {s.id for s in await field_staff_rows(self.session, req)}
        if staff is None or staff.id not in allowed:
            raise Invalid("home.staff")
        busy = (
            await self.session.exec(
                select(HomeVisit.id).where(
                    HomeVisit.staff_id == staff_id,
                    HomeVisit.status == VisitStatus.scheduled,
                    HomeVisit.request_id != req.id,
                    col(HomeVisit.starts_at) < ends_at,
                    col(HomeVisit.ends_at) > starts_at,
                )
            )
        ).first()
        if busy is not None:
            raise Conflict("home.staff_busy", name=staff.display_name)
        moved = req.status == S.scheduled
        await _close_visits(self.session, req)
        visit = HomeVisit(
            request_id=req.id or 0,
            staff_id=staff_id,
            starts_at=starts_at,
            ends_at=ends_at,
            status=VisitStatus.scheduled,
            planned_by=planned_by,
            created_by=self.principal.staff_fk,
            created_at=now,
        )
        self.session.add(visit)
        await self.session.flush()
        _set(req, S.scheduled, now)
        await self._step(req, "schedule", visit_id=visit.id, staff_id=staff_id)
        await _event(
            self.session,
            req,
            "home.visit_scheduled",
            self.principal,
            {
                "visit_id": visit.id,
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
                "staff": staff.display_name,
                "moved": moved,
            },
        )
        when = starts_at.astimezone(ZoneInfo(self.settings.timezone))
        await self._notify(
            req,
            "scheduled",
            suffix=f":{visit.id}",
            extra={"time": f"{when.month}月{when.day}日{when:%H:%M}", "staff": staff.display_name},
        )
        return req

    async def visited(self, request_id: int, *, basis_confirmed: bool) -> HomeRequest:
        """The visit took place. Where it could not confirm the basis (a declared pregnancy
        is checked here), the request is declined and the resident told the alternatives."""
        req = await self._load(request_id, "visit")
        visit = (
            await self.session.exec(
                select(HomeVisit).where(
                    HomeVisit.request_id == req.id, HomeVisit.status == VisitStatus.scheduled
                )
            )
        ).one()
        if self.principal.role is Role.field_staff and visit.staff_id != self.principal.staff_id:
            raise NotFound(f"上门服务申请 {req.id}", f"Home-service request {req.id}")
        now = utcnow()
        visit.status = VisitStatus.done
        visit.done_at = now
        visit.basis_confirmed = basis_confirmed
        self.session.add(visit)
        await _event(
            self.session,
            req,
            "home.visit_done",
            self.principal,
            {"visit_id": visit.id, "confirmed": basis_confirmed},
        )
        if not basis_confirmed:
            await self._decline(
                req, "上门核实时未能确认申请条件，请改用其他办理方式", code="basis_not_confirmed"
            )
            return req
        _set(req, S.visited, now)
        await self._step(req, "visit", visit_id=visit.id)
        await self._notify(req, "visited")
        return req

    async def handled(self, request_id: int, note: str = "") -> HomeRequest:
        req = await self._load(request_id, "handle")
        _set(req, S.handled, utcnow())
        await self._step(req, "handle")
        await _event(self.session, req, "home.handled", self.principal, {"note": note})
        await _close_case(self.session, req, self.principal, CaseStatus.completed)
        await self._notify(req, "handled")
        return req

    async def delivered(self, request_id: int, note: str = "") -> HomeRequest:
        req = await self._load(request_id, "deliver")
        _set(req, S.delivered, utcnow())
        await self._step(req, "deliver")
        await _event(self.session, req, "home.delivered", self.principal, {"note": note})
        await self._notify(req, "delivered")
        return req

    async def _count_events(self, req: HomeRequest, kind: str) -> int:
        return (
            await self.session.exec(
                select(func.count())
                .select_from(CaseEvent)
                .where(CaseEvent.case_id == req.case_id, CaseEvent.kind == kind)
            )
        ).one()

    async def _notify(
        self, req: HomeRequest, step: str, *, suffix: str = "", extra: dict[str, str] | None = None
    ) -> None:
        await notify(
            self.session,
            sms=self.sms,
            settings=self.settings,
            req=req,
            step=step,
            suffix=suffix,
            extra=extra,
        )


async def field_staff_rows(session: AsyncSession, req: HomeRequest) -> list[Staff]:
    """Active field staff bound to the request's community, its town or the district."""
    up = [s.id for s in await site_ancestry(session, req.site_id)]
    bound = select(StaffSite.staff_id).where(col(StaffSite.site_id).in_(up))
    rows = await session.exec(
        select(Staff)
        .where(
            Staff.role == Role.field_staff,
            col(Staff.active).is_(True),
            col(Staff.id).in_(bound),
        )
        .order_by(col(Staff.id))
    )
    return list(rows.all())


async def field_staff_for(
    *, session: AsyncSession, settings: Settings, req: HomeRequest
) -> list[HomeStaffChoice]:
    people = await field_staff_rows(session, req)
    if not people:
        return []
    ids = [p.id or 0 for p in people]
    bound = await session.exec(
        select(StaffSite.staff_id, Site.name)
        .join(Site, col(Site.id) == col(StaffSite.site_id))
        .where(col(StaffSite.staff_id).in_(ids))
    )
    where: dict[int, list[str]] = {}
    for sid, name in bound.all():
        where.setdefault(sid, []).append(name)
    tz = ZoneInfo(settings.timezone)
    day = utcnow().astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    busy = Counter(
        (
            await session.exec(
                select(HomeVisit.staff_id).where(
                    col(HomeVisit.staff_id).in_(ids),
                    HomeVisit.status != VisitStatus.cancelled,
                    col(HomeVisit.starts_at) >= day,
                    col(HomeVisit.starts_at) < day + dt.timedelta(days=1),
                )
            )
        ).all()
    )
    return [
        HomeStaffChoice(
            id=p.id or 0,
            display_name=p.display_name,
            site_names=sorted(where.get(p.id or 0, [])),
            visits_today=busy.get(p.id or 0, 0),
        )
        for p in people
    ]

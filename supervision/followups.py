"""差评回访整改: every bad rating (1 非常不满意 or 2 不满意) and every written complaint opens a
follow-up for the department heads of the case's line, due in a number of working days; they
record the call-back (reached or not, what the resident said) and the rectification, and close
it. A follow-up still open past its deadline is an alert (supervision/lifecycle.py, kind
FOLLOWUP), raised once.

Opening is a sweep, not a hook in the rating: the rating is core's business, and a rating
written while no node swept (a restart, a deploy, a node down) is found by a later round all
the same. Each round reads the bad ratings from a little before the newest one followed up
(cheap, through the partial index `ix_case_rating_bad`); the first round of every process and
then one round in FULL_EVERY read them all, so no rating is missed whatever its time stamp. The
unique case_id keeps it to one follow-up per rating across nodes; the unique followup_id of the
alert, to one alert.

The deadline counts working days after the day of the rating with the public holidays and
adjusted workdays of `chinese-calendar`. That package knows only the years it was published
for; past its last year the count falls back to Monday to Friday, says so on the follow-up
(`calendar = weekdays`) and in the log.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
from sqlalchemy import func, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, residents
from core.access import Principal, require_followup
from core.errors import Conflict, Invalid, NotFound
from core.events import Audience, Outbox
from core.models import Case, CaseRating, Resident, ServiceItem, WindowLine
from core.settings import Settings
from core.sms import SmsGateway
from supervision import lifecycle
from supervision.alerts import department_heads
from supervision.events import (
    FollowupAlertChanged,
    FollowupAlertRaised,
    FollowupChanged,
    FollowupOpened,
)
from supervision.lifecycle import Kind, Scope
from supervision.line_alerts import site_supervisors
from supervision.models import (
    AlertStatus,
    CallbackOutcome,
    FollowupAlert,
    FollowupAlertRead,
    FollowupContact,
    FollowupRead,
    FollowupRecordIn,
    FollowupStatus,
    RatingFollowup,
)

log = logging.getLogger("cloudwindow.supervision")

BAD_SCORE = 2  # 1 非常不满意, 2 不满意 (GB/T 39734-2020's five levels, 5 非常满意)
OPEN_BATCH = 500  # follow-ups opened per round; a backlog is worked off over the next rounds
ALERT_BATCH = 200
# Ratings are stamped before their transaction commits, so one committed a little later can
# carry an earlier stamp than the newest follow-up: each round looks back this far.
LOOK_BACK = dt.timedelta(minutes=30)
FULL_EVERY = 360  # rounds (an hour at the default 10 s): a full pass, whatever the stamps
TARGET = "rating_followup"


@dataclass
class FollowupReport:
    opened: list[int] = field(default_factory=list)  # follow-ups this node opened
    overdue: list[int] = field(default_factory=list)  # overdue alerts this node raised
    weekdays: int = 0  # deadlines counted Monday to Friday: past the holiday calendar


# -- deadlines


def add_working_days(start: dt.date, days: int) -> tuple[dt.date, str]:
    """The date `days` working days after `start`, and the calendar that counted them:
    "holidays" (public holidays and adjusted workdays) or "weekdays" (Monday to Friday, for
    days past the last year chinese-calendar knows)."""
    day, left, calendar = start, days, "holidays"
    while left > 0:
        day += dt.timedelta(days=1)
        try:
            working = chinese_calendar.is_workday(day)
        except NotImplementedError:  # a year the package was not published for
            working, calendar = day.weekday() < 5, "weekdays"
        if working:
            left -= 1
    return day, calendar


def deadline(rated_at: dt.datetime, days: int, tz: str) -> tuple[dt.date, dt.datetime, str]:
    """The last working day, the moment after it (UTC, when it becomes overdue), the calendar."""
    zone = ZoneInfo(tz)
    due, calendar = add_working_days(rated_at.astimezone(zone).date(), days)
    end = dt.datetime.combine(due + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    return due, end, calendar


# -- opening


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


async def _audience(session: AsyncSession, line_id: int | None, site_id: int) -> list[int]:
    """Every supervisor whose area holds the line (or, without one, the case's site)."""
    line = await session.get(WindowLine, line_id) if line_id is not None else None
    if line is not None:
        return await site_supervisors(session, line.site_id, line_id=line.id)
    return await site_supervisors(session, site_id)


async def _heads(session: AsyncSession, line_id: int | None) -> list[Any]:
    line = await session.get(WindowLine, line_id) if line_id is not None else None
    return await department_heads(session, line) if line is not None else []


async def open_due(
    *,
    session: AsyncSession,
    settings: Settings,
    outbox: Outbox,
    now: dt.datetime,
    node_id: str,
    full: bool = False,
    report: FollowupReport | None = None,
) -> FollowupReport:
    """Open the follow-ups of bad ratings and complaints that have none yet."""
    report = report or FollowupReport()
    q = (
        select(CaseRating, Case)
        .join(Case, col(Case.id) == col(CaseRating.case_id))
        .outerjoin(RatingFollowup, col(RatingFollowup.case_id) == col(CaseRating.case_id))
        .where(
            or_(col(CaseRating.score) <= BAD_SCORE, col(CaseRating.complaint)),
            col(RatingFollowup.id).is_(None),
        )
        .order_by(col(CaseRating.rated_at), col(CaseRating.case_id))
        .limit(OPEN_BATCH)
    )
    if not full:
        newest = (await session.exec(select(func.max(RatingFollowup.rated_at)))).one()
        if newest is not None:
            q = q.where(col(CaseRating.rated_at) >= newest - LOOK_BACK)
    days, tz = settings.followup_deadline_working_days, settings.timezone
    for rating, case in (await session.exec(q)).all():
        due_date, due_at, calendar = deadline(rating.rated_at, days, tz)
        line_id = rating.line_id if rating.line_id is not None else case.line_id
        stmt = (
            _insert(session, RatingFollowup)
            .values(
                case_id=rating.case_id,
                line_id=line_id,
                site_id=case.site_id,
                score=rating.score,
                complaint=rating.complaint,
                rated_at=rating.rated_at,
                opened_at=now,
                opened_by_node=node_id[:100],
                due_date=due_date,
                due_at=due_at,
                calendar=calendar,
                status=FollowupStatus.open,
            )
            .on_conflict_do_nothing(index_elements=["case_id"])
            .returning(RatingFollowup.id)
        )
        row = (await session.exec(stmt)).first()  # type: ignore[call-overload]
        if row is None:
            continue  # another node opened it first
        followup_id = int(row[0])
        report.opened.append(followup_id)
        if calendar == "weekdays":
            report.weekdays += 1
        audit.record(
            session,
            actor=None,
            action="followup.open",
            target_type=TARGET,
            target_id=followup_id,
            detail={
                "case": rating.case_id,
                "score": rating.score,
                "complaint": rating.complaint,
                "due": due_date.isoformat(),
                "calendar": calendar,
            },
        )
        followup = await session.get(RatingFollowup, followup_id)
        assert followup is not None
        read = await read_followup(session, followup, now=now)
        for staff_id in await _audience(session, line_id, case.site_id):
            outbox.emit(FollowupOpened(followup=read), Audience.staff(staff_id))
    if report.weekdays:
        log.warning(
            "follow-up deadlines: %d counted Monday to Friday; the holiday calendar "
            "(chinese-calendar) knows years up to %d only: update the package",
            report.weekdays,
            max(chinese_calendar.holidays).year,
        )
    return report


# -- overdue alerts


async def raise_overdue(
    *,
    session: AsyncSession,
    sms: SmsGateway,
    outbox: Outbox,
    now: dt.datetime,
    node_id: str,
    report: FollowupReport | None = None,
) -> FollowupReport:
    """Raise the alert of every follow-up past its deadline and still open, once."""
    report = report or FollowupReport()
    due = await session.exec(
        select(RatingFollowup)
        .outerjoin(FollowupAlert, col(FollowupAlert.followup_id) == col(RatingFollowup.id))
        .where(
            RatingFollowup.status == FollowupStatus.open,
            col(RatingFollowup.due_at) <= now,
            col(FollowupAlert.id).is_(None),
        )
        .order_by(col(RatingFollowup.due_at))
        .limit(ALERT_BATCH)
    )
    for f in due.all():
        stmt = (
            _insert(session, FollowupAlert)
            .values(
                followup_id=f.id,
                line_id=f.line_id,
                site_id=f.site_id,
                due_at=f.due_at,
                status=AlertStatus.raised,
                raised_at=now,
                raised_by_node=node_id[:100],
            )
            .on_conflict_do_nothing(index_elements=["followup_id"])
            .returning(FollowupAlert.id)
        )
        row = (await session.exec(stmt)).first()  # type: ignore[call-overload]
        if row is None:
            continue  # another node raised it first
        alert_id = int(row[0])
        report.overdue.append(alert_id)
        detail = {"followup": f.id, "case": f.case_id, "due": f.due_date.isoformat()}
        _, read = await lifecycle.raised(session, outbox, FOLLOWUP, alert_id, detail)
        params = {
            "line": read.line_name,
            "case": read.case_number,
            "item": read.item_name,
            "due": f.due_date.isoformat(),
        }
        body = (
            f"【云窗口】{read.line_name}办件 {read.case_number}（{read.item_name}）的差评回访"
            f"已超过 {f.due_date:%Y-%m-%d} 的整改时限，请尽快回访并整改。"
        )
        for head in await _heads(session, f.line_id):
            if head.phone:
                await sms.send(
                    session,
                    phone=head.phone,
                    kind="followup.overdue",
                    params=params,
                    body=body,
                    key=f"followup-alert:{alert_id}:{head.id}",
                )
    return report


# -- reading


async def read_followup(
    session: AsyncSession, f: RatingFollowup, *, now: dt.datetime
) -> FollowupRead:
    case = await session.get(Case, f.case_id)
    rating = await session.get(CaseRating, f.case_id)
    item = await session.get(ServiceItem, case.item_id) if case else None
    line = await session.get(WindowLine, f.line_id) if f.line_id is not None else None
    resident_id = case.resident_id if case else None
    resident = await session.get(Resident, resident_id) if resident_id else None
    late = f.closed_at > f.due_at if f.closed_at else now >= f.due_at
    return FollowupRead(
        id=f.id or 0,
        case_id=f.case_id,
        case_number=case.number if case else "",
        item_name=item.name if item else "",
        line_id=f.line_id,
        line_name=line.name if line else "",
        site_id=f.site_id,
        score=f.score,
        complaint=f.complaint,
        comment=rating.comment if rating else "",
        resident_name=resident.name if resident else "",
        resident_phone_masked=residents.mask_phone(resident.phone) if resident else "",
        rated_at=f.rated_at,
        opened_at=f.opened_at,
        due_date=f.due_date,
        due_at=f.due_at,
        calendar=f.calendar,
        status=FollowupStatus(f.status),
        overdue=late,
        callback_outcome=f.callback_outcome,
        callback_note=f.callback_note,
        called_back_at=f.called_back_at,
        called_back_by=f.called_back_by,
        rectification=f.rectification,
        rectified_at=f.rectified_at,
        rectified_by=f.rectified_by,
        closed_at=f.closed_at,
        closed_by=f.closed_by,
    )


def _nf(followup_id: int) -> NotFound:
    return NotFound(f"差评回访 {followup_id}", f"Follow-up {followup_id}")


async def _mine(session: AsyncSession, principal: Principal, followup_id: int) -> RatingFollowup:
    f = await session.get(RatingFollowup, followup_id)
    if f is None:
        raise _nf(followup_id)
    await require_followup(session, principal, f, not_found=_nf(followup_id))
    return f


async def list_followups(
    *,
    session: AsyncSession,
    principal: Principal,
    open_only: bool,
    limit: int,
    now: dt.datetime,
) -> list[FollowupRead]:
    """The follow-ups of my area: open ones by deadline (the most urgent first), else newest."""
    scope = Scope(session, principal)
    q = select(RatingFollowup).where(await scope.where_visible(RatingFollowup.line_id))
    if open_only:
        q = q.where(RatingFollowup.status == FollowupStatus.open).order_by(
            col(RatingFollowup.due_at), col(RatingFollowup.id)
        )
    else:
        q = q.order_by(col(RatingFollowup.opened_at).desc(), col(RatingFollowup.id).desc())
    q = q.limit(limit + lifecycle.LINELESS_MARGIN)
    out: list[FollowupRead] = []
    for f in (await session.exec(q)).all():
        if await scope.followup(f):
            out.append(await read_followup(session, f, now=now))
            if len(out) >= limit:
                break
    return out


async def get_followup(
    *, session: AsyncSession, principal: Principal, followup_id: int, now: dt.datetime
) -> FollowupRead:
    return await read_followup(session, await _mine(session, principal, followup_id), now=now)


async def contact(
    *,
    session: AsyncSession,
    principal: Principal,
    followup_id: int,
    request_id: str = "",
    ip: str = "",
) -> FollowupContact:
    """The resident's full phone number for the call-back; every view is audited."""
    f = await _mine(session, principal, followup_id)
    case = await session.get(Case, f.case_id)
    resident = await session.get(Resident, case.resident_id) if case and case.resident_id else None
    if resident is None or not resident.phone:
        raise NotFound(f"差评回访 {followup_id} 的联系电话", f"Phone of follow-up {followup_id}")
    audit.record(
        session,
        actor=principal,
        action="resident.phone_view",
        target_type="resident",
        target_id=resident.id or 0,
        detail={"followup": followup_id, "case": f.case_id},
        request_id=request_id,
        ip=ip,
    )
    return FollowupContact(resident_name=resident.name, phone=resident.phone)


# -- recording


async def record(
    *,
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    followup_id: int,
    body: FollowupRecordIn,
    now: dt.datetime,
    request_id: str = "",
    ip: str = "",
) -> FollowupRead:
    """Record the call-back and/or the rectification, and close when asked and both are on
    record. Each part is its own audit entry; closing resolves the overdue alert, if any."""
    f = await _mine(session, principal, followup_id)
    if f.status == FollowupStatus.closed:
        raise Conflict("followup.closed")
    if body.callback_outcome is None and not body.rectification and not body.close:
        raise Invalid("followup.nothing")
    kw: dict[str, Any] = {"actor": principal, "request_id": request_id, "ip": ip}
    steps: list[tuple[str, dict[str, Any]]] = []
    if body.callback_outcome is not None:
        note = body.callback_note or ""
        if body.callback_outcome == CallbackOutcome.reached and not note:
            raise Invalid("followup.callback_note", details=[{"field": "callback_note"}])
        f.callback_outcome, f.callback_note = str(body.callback_outcome), note
        f.called_back_at, f.called_back_by = now, principal.staff_fk
        steps.append(("followup.callback", {"outcome": str(body.callback_outcome), "note": note}))
    if body.rectification:
        f.rectification = body.rectification
        f.rectified_at, f.rectified_by = now, principal.staff_fk
        steps.append(("followup.rectify", {"note": body.rectification}))
    if body.close:
        missing = [
            (zh, en)
            for zh, en, done in (
                ("回访结果", "the call-back", bool(f.callback_outcome)),
                ("整改说明", "the rectification", bool(f.rectification)),
            )
            if not done
        ]
        if missing:
            raise Conflict(
                "followup.incomplete",
                missing="和".join(m[0] for m in missing),
                missing_en=" and ".join(m[1] for m in missing),
            )
        f.status, f.closed_at, f.closed_by = FollowupStatus.closed, now, principal.staff_fk
        steps.append(("followup.close", {"on_time": now <= f.due_at}))
    session.add(f)
    await session.flush()
    for action, detail in steps:
        audit.record(
            session, action=action, target_type=TARGET, target_id=f.id or 0, detail=detail, **kw
        )
    if body.close:
        alert = (
            await session.exec(select(FollowupAlert).where(FollowupAlert.followup_id == f.id))
        ).first()
        if alert is not None:
            await lifecycle.resolve_by_itself(
                session, outbox, FOLLOWUP, alert.id or 0, now=now, resolution="closed"
            )
    read = await read_followup(session, f, now=now)
    for staff_id in await _audience(session, f.line_id, f.site_id):
        outbox.emit(FollowupChanged(followup=read), Audience.staff(staff_id))
    return read


# -- counts


async def counts(
    *,
    session: AsyncSession,
    principal: Principal,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> tuple[int, int, int]:
    """Of my area in [start, end): follow-ups opened (by rating time), closed by their deadline,
    and whose deadline passed (before now) without being closed by it."""
    in_period = or_(
        col(RatingFollowup.rated_at).between(start, end),
        col(RatingFollowup.closed_at).between(start, end),
        col(RatingFollowup.due_at).between(start, end),
    )
    scope = Scope(session, principal)
    mine = await scope.where_visible(RatingFollowup.line_id)
    rows = (await session.exec(select(RatingFollowup).where(in_period, mine))).all()
    opened = on_time = overdue = 0
    for f in rows:
        if not await scope.followup(f):
            continue
        if start <= f.rated_at < end:
            opened += 1
        if f.closed_at is not None and start <= f.closed_at < end and f.closed_at <= f.due_at:
            on_time += 1
        missed = f.closed_at is None or f.closed_at > f.due_at
        if start <= f.due_at < end and f.due_at <= now and missed:
            overdue += 1
    return opened, on_time, overdue


# -- the lifecycle of the overdue alerts


async def read_alert(session: AsyncSession, alert: FollowupAlert) -> FollowupAlertRead:
    f = await session.get(RatingFollowup, alert.followup_id)
    case = await session.get(Case, f.case_id) if f else None
    item = await session.get(ServiceItem, case.item_id) if case else None
    line = await session.get(WindowLine, alert.line_id) if alert.line_id is not None else None
    return FollowupAlertRead(
        id=alert.id or 0,
        followup_id=alert.followup_id,
        case_id=f.case_id if f else 0,
        case_number=case.number if case else "",
        item_name=item.name if item else "",
        line_id=alert.line_id,
        line_name=line.name if line else "",
        due_date=f.due_date if f else None,
        due_at=alert.due_at,
        status=AlertStatus(alert.status),
        raised_at=alert.raised_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        note=alert.note,
        resolved_at=alert.resolved_at,
        resolution=alert.resolution,
    )


async def _alert_audience(session: AsyncSession, alert: FollowupAlert) -> list[int]:
    return await _audience(session, alert.line_id, alert.site_id)


async def _may_see(scope: Scope, alert: FollowupAlert) -> bool:
    return await scope.followup(alert)


FOLLOWUP: Kind[FollowupAlert, FollowupAlertRead] = Kind(
    name="followup",
    table=FollowupAlert,
    target="followup_alert",
    prefix="followup_alert",
    what=("回访超时预警", "Overdue follow-up alert"),
    read=read_alert,
    audience=_alert_audience,
    may_see=_may_see,
    raised_event=lambda a: FollowupAlertRaised(alert=a),
    changed_event=lambda a: FollowupAlertChanged(alert=a),
)

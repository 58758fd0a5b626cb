"""Licence-expiry reminders: the daily run, the dispatch of reminders held over quiet hours, the
periodic jobs that drive them, and their counts per period for the statistics.

The daily run plans and then dispatches:
- **plan**: one set-based `INSERT … SELECT … ON CONFLICT DO NOTHING` per offset of the
  policies writes a row for every active licence whose reminder at that offset fell due today
  (or in the catch-up days before), unless its holder stopped such reminders. The unique key
  (licence, offset, channel) keeps a reminder to one row whatever runs twice; `ix_licence_due`
  makes each statement a range scan on the expiry date.
- **dispatch**: reminders whose send time has come, in batches (`FOR UPDATE SKIP LOCKED` on
  PostgreSQL), each one checked again (still in force, not stopped, a phone on record) and
  handed to the SMS outbox with a sign-in link to renew it, under the outbox key
  `reminder:<id>`, in the batch's transaction: a batch is queued whole or not at all.
Quiet hours hold a reminder planned at night until their end (its send_after).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import and_, exists, func, literal, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database, UTCDateTime
from core.jobs import Daily, Every, Jobs, Run
from core.models import Resident
from core.resident_links import issue_link
from core.settings import Settings
from core.sms import SmsGateway
from outreach import licences
from outreach.models import (
    Delivery,
    Licence,
    LicenceReminder,
    LicenceReminderOffset,
    LicenceType,
    OutboxStatus,
    ReminderCounts,
    ReminderOptOut,
    ReminderReason,
    ReminderStatus,
    ReminderTypeCount,
    SmsOutbox,
)
from outreach.outbox import Message
from outreach.sms import send_many

log = logging.getLogger("cloudwindow.reminders")

CHANNEL = "sms"
KIND = "reminder.expiry"
# The jobs, by name (core/jobs.py keeps each to one node per period).
DAILY = "reminders.daily"
DISPATCH = "reminders.dispatch"
FROM_CASES = "licences.from_cases"
# A run longer than a minute means a stalled node, not a slow one: the daily run at a million
# licences takes seconds (bench/reminders.py). Each batch commits, so a retaken run goes on.
LEASE = dt.timedelta(minutes=2)
# Transactions queuing side by side on PostgreSQL: enough to overlap the round trips of one
# batch with the Python of another, few enough to leave the pool to requests (pool_size 10).
DISPATCH_WORKERS = 4
# The page a reminder's link opens: the licence, and the ways to renew it.
PAGE = "/resident/reminders?licence={id}"


def key_of(reminder_id: int) -> str:
    """The reminder's message key in the SMS outbox (a second send with it is not sent)."""
    return f"reminder:{reminder_id}"


# -- time


def in_quiet_hours(now: dt.datetime, settings: Settings) -> bool:
    local = now.astimezone(ZoneInfo(settings.timezone)).time()
    start, end = settings.reminder_quiet_start, settings.reminder_quiet_end
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # over midnight: 21:00-08:00


def send_time(now: dt.datetime, settings: Settings) -> dt.datetime:
    """Now, or when the quiet hours that hold `now` end."""
    if not in_quiet_hours(now, settings):
        return now
    zone = ZoneInfo(settings.timezone)
    local = now.astimezone(zone)
    end = dt.datetime.combine(local.date(), settings.reminder_quiet_end, zone)
    if end <= local:
        end += dt.timedelta(days=1)
    return end.astimezone(dt.UTC)


def when_words(days_left: int) -> str:
    """How the message says the distance to the expiry date."""
    if days_left > 0:
        return f"还有{days_left}天到期"
    if days_left == 0:
        return "今天到期"
    return f"已过期{-days_left}天"


def _date_words(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


# -- plan: what fell due


def _insert(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    return (postgresql if dialect == "postgresql" else sqlite).insert(LicenceReminder)


def _plus_days(session: AsyncSession, day: Any, days: int) -> Any:
    """`day + days` in SQL (`days` is ours, an int: written into the statement)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return day + sa.literal_column(str(int(days)))
    return func.date(day, sa.literal_column(f"'{int(days):+d} days'"))


async def plan(session: AsyncSession, *, settings: Settings, now: dt.datetime) -> int:
    """Write the reminders that fell due (today or in the catch-up days); how many were new."""
    today = licences.local_date(now, settings)
    send_after = send_time(now, settings)
    offsets = (await session.exec(select(LicenceReminderOffset.offset_days).distinct())).all()
    stopped = exists().where(
        col(ReminderOptOut.resident_id) == col(Licence.resident_id),
        or_(
            col(ReminderOptOut.type_id).is_(None),
            col(ReminderOptOut.type_id) == col(Licence.type_id),
        ),
    )
    columns = [
        "licence_id",
        "offset_days",
        "channel",
        "due_on",
        "send_after",
        "status",
        "reason",
        "planned_at",
        "sms_key",
    ]
    planned = 0
    for offset in sorted(offsets):
        # due_on = expires_on + offset falls in [today - catch_up, today]
        last = today - dt.timedelta(days=offset)
        first = last - dt.timedelta(days=settings.reminder_catch_up_days)
        due = (
            select(  # type: ignore[call-overload]
                Licence.id,
                literal(offset),
                literal(CHANNEL),
                _plus_days(session, Licence.expires_on, offset),
                literal(send_after, UTCDateTime()),
                literal(ReminderStatus.scheduled.value),
                literal(""),
                literal(now, UTCDateTime()),
                literal(""),
            )
            .join(
                LicenceReminderOffset,
                and_(
                    col(LicenceReminderOffset.type_id) == col(Licence.type_id),
                    col(LicenceReminderOffset.offset_days) == offset,
                ),
            )
            .where(
                licences.ACTIVE,
                col(Licence.expires_on) >= first,
                col(Licence.expires_on) <= last,
                ~stopped,
            )
        )
        stmt = (
            _insert(session)
            .from_select(columns, due)
            .on_conflict_do_nothing(index_elements=["licence_id", "offset_days", "channel"])
        )
        done = await session.exec(stmt)  # type: ignore[call-overload]
        planned += max(int(done.rowcount or 0), 0)
    return planned


# -- dispatch: what may be sent now


@dataclass
class Dispatched:
    queued: int = 0
    renewed: int = 0
    opted_out: int = 0
    no_phone: int = 0
    held: bool = False  # quiet hours: nothing was sent


async def _batch(
    session: AsyncSession,
    *,
    settings: Settings,
    sms: SmsGateway,
    now: dt.datetime,
    report: Dispatched,
) -> int:
    """Queue (or cancel) one batch of reminders whose time has come; how many it took."""
    stopped = (
        exists()
        .where(
            col(ReminderOptOut.resident_id) == col(Licence.resident_id),
            or_(
                col(ReminderOptOut.type_id).is_(None),
                col(ReminderOptOut.type_id) == col(Licence.type_id),
            ),
        )
        .label("stopped")
    )
    rows = list(
        (
            await session.exec(
                select(
                    LicenceReminder.id,
                    Licence.id,
                    Licence.status,
                    Licence.expires_on,
                    Licence.resident_id,
                    LicenceType.name,
                    stopped,
                )
                .join(Licence, col(Licence.id) == col(LicenceReminder.licence_id))
                .join(LicenceType, col(LicenceType.id) == col(Licence.type_id))
                .where(licences.SCHEDULED, col(LicenceReminder.send_after) <= now)
                .order_by(col(LicenceReminder.send_after), col(LicenceReminder.id))
                .limit(settings.reminder_batch_size)
                .with_for_update(skip_locked=True, of=LicenceReminder)  # type: ignore[arg-type]
            )
        ).all()
    )
    if not rows:
        return 0
    # The holders, loaded once into this session: issue_link finds them here, not in a query.
    holders = {
        r.id: r
        for r in (
            await session.exec(
                select(Resident).where(col(Resident.id).in_({row[4] for row in rows}))
            )
        ).all()
    }
    today = licences.local_date(now, settings)
    cancel: dict[ReminderReason, list[int]] = {r: [] for r in ReminderReason}
    queued: list[int] = []
    messages: list[Message] = []
    not_before = send_time(now, settings)
    # The links wait in the session and go in one batch at the flush before the updates below,
    # not one flush per message before each statement the gateway sends.
    with session.no_autoflush:
        for reminder_id, licence_id, status, expires_on, resident_id, type_name, off in rows:
            holder = holders.get(resident_id)
            if status != "active":
                cancel[ReminderReason.renewed].append(reminder_id)
            elif off:
                cancel[ReminderReason.opted_out].append(reminder_id)
            elif holder is None or not holder.phone:
                cancel[ReminderReason.no_phone].append(reminder_id)
            else:
                link = await issue_link(
                    session,
                    resident_id=resident_id,
                    path=PAGE.format(id=licence_id),
                    settings=settings,
                )
                messages.append(
                    Message(
                        phone=holder.phone,
                        kind=KIND,
                        params={
                            "licence": type_name,
                            "date": _date_words(expires_on),
                            "when": when_words((expires_on - today).days),
                            "link": link,
                        },
                        key=key_of(reminder_id),
                        not_before=not_before,
                    )
                )
                queued.append(reminder_id)
    # The batch's messages go into the outbox together: one INSERT, not one per message.
    await send_many(sms, session, messages)
    scheduled = licences.SCHEDULED
    if queued:
        await session.exec(
            update(LicenceReminder)  # type: ignore[call-overload]
            .where(col(LicenceReminder.id).in_(queued), scheduled)
            .values(
                status=ReminderStatus.queued,
                queued_at=now,
                sms_key=literal("reminder:") + sa.cast(col(LicenceReminder.id), sa.String),
            )
            .execution_options(synchronize_session=False)
        )
    for reason, ids in cancel.items():
        if ids:
            await session.exec(
                update(LicenceReminder)  # type: ignore[call-overload]
                .where(col(LicenceReminder.id).in_(ids), scheduled)
                .values(status=ReminderStatus.cancelled, reason=reason)
                .execution_options(synchronize_session=False)
            )
            setattr(report, reason.value, getattr(report, reason.value) + len(ids))
    report.queued += len(queued)
    return len(rows)


async def dispatch(
    db: Database, *, settings: Settings, sms: SmsGateway, now: dt.datetime
) -> Dispatched:
    """Queue every reminder whose time has come, a batch per transaction; none in quiet hours.

    On PostgreSQL several transactions run side by side, each on the rows it locked (SKIP
    LOCKED): queuing is a round trip per message, and they overlap. SQLite has one writer.
    """
    report = Dispatched()
    if in_quiet_hours(now, settings):
        report.held = True
        return report

    async def batches() -> None:
        while True:
            async with db.session() as session:
                took = await _batch(session, settings=settings, sms=sms, now=now, report=report)
                await session.commit()
            if took < settings.reminder_batch_size:
                return

    workers = DISPATCH_WORKERS if db.dialect == "postgresql" else 1
    await asyncio.gather(*(batches() for _ in range(workers)))
    return report


async def daily_run(
    db: Database, *, settings: Settings, sms: SmsGateway, now: dt.datetime
) -> dict[str, Any]:
    """The day's run: plan what fell due, commit, then queue what may be sent now."""
    async with db.session() as session:
        planned = await plan(session, settings=settings, now=now)
        await session.commit()
    sent = await dispatch(db, settings=settings, sms=sms, now=now)
    return {"planned": planned, **asdict(sent)}


# -- the jobs


async def _daily_job(run: Run, *, settings: Settings, sms: Callable[[], SmsGateway]) -> Any:
    return await daily_run(run.db, settings=settings, sms=sms(), now=run.now())


async def _dispatch_job(run: Run, *, settings: Settings, sms: Callable[[], SmsGateway]) -> Any:
    return asdict(await dispatch(run.db, settings=settings, sms=sms(), now=run.now()))


async def _cases_job(run: Run, *, settings: Settings) -> Any:
    async with run.db.session() as session:
        made = await licences.issue_from_cases(session, settings=settings, now=run.now())
        await session.commit()
    return made


def register_jobs(jobs: Jobs, *, settings: Settings, sms: Callable[[], SmsGateway]) -> None:
    """The register's and the reminders' periodic work, on the node's runner.

    `sms` is asked for the gateway at each run, so the app may install its gateway later.
    """
    jobs.add(
        DAILY,
        Daily(settings.reminder_run_at, settings.timezone),
        partial(_daily_job, settings=settings, sms=sms),
        lease=LEASE,
    )
    jobs.add(
        DISPATCH,
        Every(settings.reminder_dispatch_seconds),
        partial(_dispatch_job, settings=settings, sms=sms),
        lease=LEASE,
    )
    jobs.add(
        FROM_CASES,
        Every(settings.licence_case_interval_seconds),
        partial(_cases_job, settings=settings),
        lease=LEASE,
    )


# -- counts for the statistics


async def counts(
    session: AsyncSession,
    *,
    start: dt.datetime,
    end: dt.datetime,
    site_ids: Collection[int] | None = None,
) -> ReminderCounts:
    """Reminders in [start, end): due, queued, and what became of them; by licence type.

    `site_ids` keeps it to licences of those registers (the caller's area); None: all.
    Planned and cancelled count by when the reminder fell due, the rest by when it was queued.
    """
    area = [col(Licence.site_id).in_(sorted(site_ids))] if site_ids is not None else []
    planned_in = and_(
        col(LicenceReminder.planned_at) >= start, col(LicenceReminder.planned_at) < end
    )
    queued_in = and_(col(LicenceReminder.queued_at) >= start, col(LicenceReminder.queued_at) < end)

    def n(cond: Any) -> Any:
        return func.coalesce(func.sum(sa.case((cond, 1), else_=0)), 0)

    reason = col(LicenceReminder.reason)
    outbox = SmsOutbox.__table__  # type: ignore[attr-defined]
    sent_states = (OutboxStatus.sent.value,)
    failed_states = (OutboxStatus.failed.value, OutboxStatus.expired.value)
    q = (
        select(
            col(Licence.type_id),
            n(planned_in),
            n(queued_in),
            n(and_(queued_in, outbox.c.status.in_(sent_states))),
            n(and_(queued_in, outbox.c.delivery == Delivery.delivered.value)),
            n(
                and_(
                    queued_in,
                    or_(
                        outbox.c.status.in_(failed_states),
                        outbox.c.delivery == Delivery.undelivered.value,
                    ),
                )
            ),
            n(and_(planned_in, reason == ReminderReason.renewed.value)),
            n(and_(planned_in, reason == ReminderReason.opted_out.value)),
            n(and_(planned_in, reason == ReminderReason.no_phone.value)),
        )
        .select_from(LicenceReminder)
        .join(Licence, col(Licence.id) == col(LicenceReminder.licence_id))
        .outerjoin(outbox, outbox.c.key == col(LicenceReminder.sms_key))
        .where(or_(planned_in, queued_in), *area)
        .group_by(col(Licence.type_id))
    )
    per_type = {row[0]: [int(v) for v in row[1:]] for row in (await session.exec(q)).all()}
    types = {
        t.id: t
        for t in (await session.exec(select(LicenceType).where(col(LicenceType.id).in_(per_type))))
    }
    opt_q = select(func.count(func.distinct(ReminderOptOut.resident_id))).where(
        col(ReminderOptOut.created_at) >= start, col(ReminderOptOut.created_at) < end
    )
    if site_ids is not None:
        opt_q = opt_q.where(
            col(ReminderOptOut.resident_id).in_(
                select(Licence.resident_id).where(col(Licence.site_id).in_(sorted(site_ids)))
            )
        )
    opt_outs = int((await session.exec(opt_q)).one())
    totals = [sum(v[i] for v in per_type.values()) for i in range(8)]
    return ReminderCounts(
        start=start,
        end=end,
        planned=totals[0],
        queued=totals[1],
        sent=totals[2],
        delivered=totals[3],
        failed=totals[4],
        cancelled_renewed=totals[5],
        cancelled_opted_out=totals[6],
        cancelled_no_phone=totals[7],
        opt_outs=opt_outs,
        by_type=[
            ReminderTypeCount(
                type_id=type_id,
                type_code=types[type_id].code if type_id in types else "",
                type_name=types[type_id].name if type_id in types else "",
                planned=v[0],
                queued=v[1],
                delivered=v[3],
            )
            for type_id, v in sorted(per_type.items())
        ],
    )

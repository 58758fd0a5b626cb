"""The durable SMS outbox: a row added in the caller's transaction, sent by each node's sender.

Queuing is an insert in the caller's session, so a message exists exactly when the caller's
work committed; `key` is unique and the insert does nothing on a second message with the same
key (ON CONFLICT DO NOTHING, on SQLite and PostgreSQL alike).

Every node runs one `Sender`. A round claims due rows under a lease (PostgreSQL: SELECT ... FOR
UPDATE SKIP LOCKED, then one UPDATE ... RETURNING, so two nodes never claim one row; SQLite is
one process, and its BEGIN IMMEDIATE serialises the claim), commits, calls the carrier, and
records the answer in a second unit of work fenced by (lease_owner, attempts): a node whose
lease ran out cannot overwrite the row another node has taken over.

What this guarantees, honestly (docs/sms.md, "Exactly once?"): a committed message is never
lost (an outage leaves it pending and it is retried with backoff), and a message is never
handed to the carrier twice while nodes answer within their lease. A node that dies after the
carrier took a message but before it recorded that, or a timeout after the carrier took it,
leads to a second attempt with the same out_id: at least once, never silently twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, event, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database, utcnow
from core.settings import Settings
from outreach import templates
from outreach.carriers import Carrier, CarrierError, Outgoing, mask_phone, scrub
from outreach.models import OutboxStatus, SmsOutbox

log = logging.getLogger("cloudwindow.sms")

# Retries of the write that records the carrier's answer when the database blips; after the
# last one the lease runs out and another node re-sends (at least once, see above).
FINISH_RETRY_DELAYS = (0.2, 1.0, 5.0)


@dataclass(frozen=True)
class Queued:
    """A message as queued; `id` is None when its key was already in the outbox."""

    id: int | None
    out_id: str
    body: str  # the text with its parameters, secrets shown (the recording gateway keeps it)


@dataclass(frozen=True)
class Message:
    """One message to queue (the arguments of `enqueue`)."""

    phone: str
    kind: str
    params: Mapping[str, object] | None = None
    body: str = ""
    key: str | None = None
    not_before: dt.datetime | None = None


def _row(m: Message, *, sign: str, now: dt.datetime, recorded: bool) -> tuple[dict[str, Any], str]:
    """The outbox row of a message, and its text with secrets shown."""
    template = templates.get(m.kind)
    values = template.check(m.params)
    due = max(now, m.not_before) if m.not_before is not None else now
    out_id = uuid.uuid4().hex
    shown = template.render(values, sign=sign)
    stored = template.render(values, sign=sign, masked=True) if template.secret else m.body or shown
    row: dict[str, Any] = {
        "key": (m.key or f"once:{out_id}")[:200],
        "out_id": out_id,
        "phone": m.phone,
        "kind": m.kind,
        "params": {} if recorded and template.secret else values,
        "body": stored[:500],
        "status": OutboxStatus.sent if recorded else OutboxStatus.pending,
        "carrier": "recording" if recorded else "",
        "attempts": 0,
        "lease_expiries": 0,
        "not_before": m.not_before,
        "next_attempt_at": due,
        "expires_at": due + template.ttl if template.ttl else None,
        "error_code": "",
        "error_message": "",
        "created_at": now,
        "sent_at": now if recorded else None,
        "delivery": "",
        "delivery_code": "",
    }
    return row, shown


async def enqueue(
    session: AsyncSession,
    *,
    phone: str,
    kind: str,
    sign: str,
    body: str = "",
    params: Mapping[str, object] | None = None,
    key: str | None = None,
    not_before: dt.datetime | None = None,
    now: dt.datetime | None = None,
    recorded: bool = False,
) -> Queued:
    """Add a message to the outbox in the caller's transaction; nothing when its key exists.

    TemplateError when `kind` is unknown or the parameters do not fit it. `recorded`: the
    recording gateway's messages, marked sent at once (nothing leaves the machine).
    """
    m = Message(phone, kind, params, body, key, not_before)
    (queued,) = await enqueue_many(session, [m], sign=sign, now=now, recorded=recorded)
    return queued


# Rows per INSERT of a batch (23 columns each: well under either database's parameter limit).
INSERT_ROWS = 500


async def enqueue_many(
    session: AsyncSession,
    messages: list[Message],
    *,
    sign: str,
    now: dt.datetime | None = None,
    recorded: bool = False,
) -> list[Queued]:
    """`enqueue` for many messages: one INSERT per INSERT_ROWS messages, not one per message.

    Every template is checked before anything is written (TemplateError: nothing queued).
    The answer is in the order of `messages`; a message whose key is already in the outbox, or
    repeats an earlier key of the batch, has id None.
    """
    now = now or utcnow()
    built = [_row(m, sign=sign, now=now, recorded=recorded) for m in messages]
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(SmsOutbox)
    ids: dict[str, int] = {}
    for i in range(0, len(built), INSERT_ROWS):
        rows = [row for row, _ in built[i : i + INSERT_ROWS]]
        stmt = insert.values(rows).on_conflict_do_nothing(index_elements=["key"])
        result = await session.exec(stmt.returning(SmsOutbox.id, SmsOutbox.key))  # type: ignore[call-overload]
        ids.update({k: int(n) for n, k in result.all()})
    out: list[Queued] = []
    for m, (row, shown) in zip(messages, built, strict=True):
        n = ids.pop(row["key"], None)  # popped: a repeated key of the batch is not queued twice
        if n is None:
            log.info(
                "sms %s to %s already queued (key %s)", m.kind, mask_phone(m.phone), row["key"]
            )
        out.append(Queued(n, row["out_id"], shown))
    return out


def wake_after_commit(session: AsyncSession, wake: asyncio.Event) -> None:
    """Wake this node's sender once the caller's transaction commits (not before: the row
    would not be visible yet, and not at all on a rollback)."""

    def fire(_session: Any) -> None:
        wake.set()

    event.listen(session.sync_session, "after_commit", fire, once=True)


@dataclass(frozen=True)
class Claim:
    id: int
    out_id: str
    phone: str
    kind: str
    params: dict[str, str]
    attempts: int  # with the node's id, the fencing token of this claim
    expires_at: dt.datetime | None
    resumed: bool  # the previous claim's lease ran out mid-send


@dataclass
class RoundReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0
    lost_lease: int = 0
    outcomes: dict[int, str] = field(default_factory=dict)  # row id -> what happened


class Sender:
    """One node's sender: claims due messages, hands them to the carrier, records answers."""

    def __init__(
        self,
        *,
        db: Database,
        carrier: Carrier,
        settings: Settings,
        node_id: str,
        wake: asyncio.Event | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        if settings.sms_lease_seconds <= 2 * settings.sms_timeout_seconds:
            raise ValueError(
                "sms_lease_seconds must exceed twice sms_timeout_seconds, or another node "
                "would re-send a message whose first attempt is still under way"
            )
        self.db = db
        self.carrier = carrier
        self.settings = settings
        self.node_id = node_id[:100]
        self.wake = wake or asyncio.Event()
        self.clock = clock
        self.rng = rng or random.Random()
        self._stopping = False
        self._slots = asyncio.Semaphore(settings.sms_concurrency)

    # -- one round

    async def run_once(self) -> RoundReport:
        """Claim what is due, send it, record every answer."""
        report = RoundReport()
        claims = await self.claim()
        report.claimed = len(claims)
        outcomes = await asyncio.gather(*(self._one(c) for c in claims))
        for claim, outcome in zip(claims, outcomes, strict=True):
            report.outcomes[claim.id] = outcome
            setattr(report, outcome, getattr(report, outcome) + 1)
        return report

    async def claim(self) -> list[Claim]:
        """Take up to sms_batch_size due rows under this node's lease, and commit."""
        now = self.clock()
        due = or_(
            and_(
                col(SmsOutbox.status) == OutboxStatus.pending,
                col(SmsOutbox.next_attempt_at) <= now,
            ),
            and_(col(SmsOutbox.status) == OutboxStatus.sending, col(SmsOutbox.lease_until) < now),
        )
        pick = (
            select(col(SmsOutbox.id), col(SmsOutbox.status))
            .where(due)
            .order_by(col(SmsOutbox.next_attempt_at), col(SmsOutbox.id))
            .limit(self.settings.sms_batch_size)
        )
        async with self.db.session() as session:
            if self.db.dialect == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            picked = (await session.exec(pick)).all()  # type: ignore[call-overload]
            if not picked:
                return []
            resumed = {r[0] for r in picked if r[1] == OutboxStatus.sending}
            stmt = (
                update(SmsOutbox)
                .where(col(SmsOutbox.id).in_([r[0] for r in picked]))
                .values(
                    status=OutboxStatus.sending,
                    carrier=self.carrier.name,
                    lease_owner=self.node_id,
                    lease_until=now + dt.timedelta(seconds=self.settings.sms_lease_seconds),
                    attempts=col(SmsOutbox.attempts) + 1,
                    lease_expiries=col(SmsOutbox.lease_expiries)
                    + case((col(SmsOutbox.status) == OutboxStatus.sending, 1), else_=0),
                )
                .returning(
                    col(SmsOutbox.id),
                    col(SmsOutbox.out_id),
                    col(SmsOutbox.phone),
                    col(SmsOutbox.kind),
                    col(SmsOutbox.params),
                    col(SmsOutbox.attempts),
                    col(SmsOutbox.expires_at),
                )
            )
            rows = (await session.exec(stmt)).all()  # type: ignore[call-overload]
            await session.commit()
        claims = [
            Claim(r[0], r[1], r[2], r[3], dict(r[4] or {}), r[5], r[6], r[0] in resumed)
            for r in rows
        ]
        for c in claims:
            if c.resumed:
                log.warning(
                    "sms #%d %s to %s: the lease of its last attempt ran out mid-send; "
                    "sending again with the same out_id %s",
                    c.id,
                    c.kind,
                    mask_phone(c.phone),
                    c.out_id,
                )
        return sorted(claims, key=lambda c: c.id)

    async def _one(self, claim: Claim) -> str:
        now = self.clock()
        if claim.expires_at is not None and now >= claim.expires_at:
            log.warning("sms #%d %s to %s expired unsent", claim.id, claim.kind, _m(claim))
            return await self._finish(claim, status=OutboxStatus.expired, outcome="expired")
        if claim.kind not in templates.TEMPLATES:  # queued before its template was removed
            log.error("sms #%d: no template %r any more; given up", claim.id, claim.kind)
            return await self._finish(
                claim, status=OutboxStatus.failed, outcome="failed", error_code="no_template"
            )
        message = Outgoing(claim.out_id, claim.phone, claim.kind, claim.params)
        try:
            async with self._slots:
                accepted = await self.carrier.send(message)
        except CarrierError as e:
            values = {"error_code": e.code, "error_message": e.message}
            if e.permanent:
                log.warning(
                    "sms #%d %s to %s refused for good by %s: %s",
                    *(claim.id, claim.kind, _m(claim), self.carrier.name, e.code),
                )
                return await self._finish(
                    claim, status=OutboxStatus.failed, outcome="failed", **values
                )
            delay = self.backoff(claim.attempts)
            log.warning(
                "sms #%d %s to %s not taken by %s (%s); attempt %d, again in %.0f s",
                *(claim.id, claim.kind, _m(claim), self.carrier.name, e.code),
                *(claim.attempts, delay),
            )
            return await self._finish(
                claim,
                status=OutboxStatus.pending,
                outcome="retried",
                next_attempt_at=now + dt.timedelta(seconds=delay),
                **values,
            )
        except Exception as e:  # a bug in an adapter must not lose the message: retry it
            log.exception(
                "sms #%d %s to %s: the carrier call failed", claim.id, claim.kind, _m(claim)
            )
            return await self._finish(
                claim,
                status=OutboxStatus.pending,
                outcome="retried",
                next_attempt_at=now + dt.timedelta(seconds=self.backoff(claim.attempts)),
                error_code=type(e).__name__[:64],
                error_message=scrub(str(e)),
            )
        log.info(
            "sms #%d %s to %s sent by %s as %s",
            *(claim.id, claim.kind, _m(claim), self.carrier.name, accepted.message_id),
        )
        return await self._finish(
            claim,
            status=OutboxStatus.sent,
            outcome="sent",
            message_id=accepted.message_id[:100],
            sent_at=self.clock(),
            error_code="",
            error_message="",
        )

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try: doubling from the base up to the cap, with jitter
        (between half and all of it), so a carrier coming back is not hit by every row at once."""
        s = self.settings
        ceiling = min(s.sms_retry_max_seconds, s.sms_retry_base_seconds * 2 ** max(attempts - 1, 0))
        return ceiling * (0.5 + 0.5 * self.rng.random())

    async def _finish(self, claim: Claim, *, status: str, outcome: str, **values: Any) -> str:
        """Record the answer, if this node still holds the claim; the outcome, or lost_lease."""
        values["status"] = status
        values["lease_owner"] = None
        values["lease_until"] = None
        done = status in (OutboxStatus.sent, OutboxStatus.failed, OutboxStatus.expired)
        template = templates.TEMPLATES.get(claim.kind)
        if done and (template is None or template.secret):
            values["params"] = {}  # a login code is not kept once it is out (or given up)
        stmt = (
            update(SmsOutbox)
            .where(
                col(SmsOutbox.id) == claim.id,
                col(SmsOutbox.status) == OutboxStatus.sending,
                col(SmsOutbox.lease_owner) == self.node_id,
                col(SmsOutbox.attempts) == claim.attempts,
            )
            .values(**values)
        )
        for delay in (*FINISH_RETRY_DELAYS, None):
            try:
                async with self.db.session() as session:
                    result = await session.exec(stmt)  # type: ignore[call-overload]
                    await session.commit()
                break
            except Exception:
                if delay is None:
                    log.exception("sms #%d: answer not recorded; its lease will run out", claim.id)
                    return "lost_lease"
                await asyncio.sleep(delay)
        if result.rowcount == 0:
            log.warning("sms #%d: lease lost before the answer (%s) was recorded", claim.id, status)
            return "lost_lease"
        return outcome

    # -- the loop

    async def run(self) -> None:
        """Rounds until stopped: at once when this node queued a message, else every poll."""
        while not self._stopping:
            self.wake.clear()
            try:
                report = await self.run_once()
            except Exception:  # the database is away: the next round tries again
                log.exception("sms sender round failed")
                report = RoundReport()
            if self._stopping:
                break
            if report.claimed >= self.settings.sms_batch_size:
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), self.settings.sms_poll_seconds)
            except TimeoutError:
                pass

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Let the round under way finish (its carrier calls are in threads that cannot be
        cancelled; an answer left unrecorded would mean a second send), then end."""
        self._stopping = True
        self.wake.set()
        grace = 2 * self.settings.sms_timeout_seconds + 5
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _m(claim: Claim) -> str:
    return mask_phone(claim.phone)


async def record_report(
    session: AsyncSession,
    *,
    carrier: str,
    delivered: bool,
    code: str,
    at: dt.datetime,
    message_id: str = "",
    out_id: str = "",
) -> int:
    """Put a carrier's delivery report on its message; the rows changed (0 or 1).

    Carriers retry their pushes, so the first report of a message is kept and a repeat is a
    no-op. A message is found by our out_id where the report names it (Aliyun), else by the
    carrier's message id.
    """
    if not message_id and not out_id:
        return 0
    which = (
        col(SmsOutbox.out_id) == out_id
        if out_id
        else and_(col(SmsOutbox.carrier) == carrier, col(SmsOutbox.message_id) == message_id)
    )
    stmt = (
        update(SmsOutbox)
        .where(which, col(SmsOutbox.delivery) == "")
        .values(
            delivery="delivered" if delivered else "undelivered",
            delivery_code=code[:64],
            delivered_at=at,
        )
    )
    result = await session.exec(stmt)  # type: ignore[call-overload]
    return int(result.rowcount or 0)

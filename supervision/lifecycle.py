"""One lifecycle for every kind of alert: raised -> acknowledged (who, when, a note) ->
resolved, by itself or by hand, each step written to the audit log and told to the alert's
audience.

A kind (a resident waiting too long, a busy line, an overdue follow-up) names its table, how a
row is read, who hears of it and who may act on it. Everything else lives here once: which
state may follow which, what the audit entry of each step holds, the 404 outside the caller's
area, the event after each step, and the conditional update that lets exactly one node
resolve an alert by itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.access import FollowupFacts, Principal, lines_in_scope, may_see_followup
from core.errors import Conflict, NotFound
from core.events import Audience, Event, Outbox
from supervision.models import OPEN_ALERT, AlertStatus


class Alert(Protocol):
    """The columns of the lifecycle, which every alert table has."""

    id: int | None
    status: str
    raised_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: int | None
    note: str
    resolved_at: dt.datetime | None
    resolved_by: int | None
    resolution: str


A = TypeVar("A", bound=Alert)
# Lists read this many rows beyond their limit: those without a line (a follow-up of a case
# that had none) are checked per row against the caller's area.
LINELESS_MARGIN = 100
R = TypeVar("R")


@dataclass(frozen=True)
class Kind(Generic[A, R]):
    """One kind of alert: its table and the few things that differ between kinds."""

    name: str  # wait, line, followup (the UI's word for it)
    table: type[A]
    target: str  # the audit log's target_type
    prefix: str  # audit actions are f"{prefix}.raise", ".acknowledge", ".resolve", ...
    what: tuple[str, str]  # how a 404 names it, zh and en
    read: Callable[[AsyncSession, A], Awaitable[R]]
    audience: Callable[[AsyncSession, A], Awaitable[list[int]]]  # staff ids told of each step
    may_see: Callable[[Scope, A], Awaitable[bool]]
    raised_event: Callable[[R], Event]
    changed_event: Callable[[R], Event]

    def not_found(self, alert_id: int) -> NotFound:
        return NotFound(f"{self.what[0]} {alert_id}", f"{self.what[1]} {alert_id}")


class Scope:
    """What the caller may see, per line (and per follow-up's place), each asked once: a list
    of alerts holds many rows of few lines. The rules are core.access's."""

    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session, self.principal = session, principal
        self._lines: set[int] | None = None
        self._places: dict[tuple[int | None, int], bool] = {}

    async def visible_lines(self) -> set[int]:
        """The lines of the area, in one query the first time it is asked."""
        if self._lines is None:
            self._lines = {
                ln.id for ln in await lines_in_scope(self.session, self.principal) if ln.id
            }
        return self._lines

    async def line(self, line_id: int | None) -> bool:
        return line_id is not None and line_id in await self.visible_lines()

    async def where_visible(self, line_id: Any) -> Any:
        """A filter on a `line_id` column: the area's lines, or no line (then ask per row)."""
        return or_(col(line_id).in_(sorted(await self.visible_lines())), col(line_id).is_(None))

    async def lines(self, line_ids: Iterable[int | None]) -> set[int]:
        return {i for i in set(line_ids) if i is not None and await self.line(i)}

    async def followup(self, f: FollowupFacts) -> bool:
        key = (f.line_id, f.site_id)
        if key not in self._places:
            self._places[key] = await may_see_followup(self.session, self.principal, f)
        return self._places[key]


def record(
    session: AsyncSession,
    kind: Kind[Any, Any],
    alert_id: int,
    step: str,
    *,
    actor: Principal | None = None,
    detail: dict[str, Any] | None = None,
    request_id: str = "",
    ip: str = "",
) -> None:
    """The audit entry of one step; `actor` None for what a sweep did by itself."""
    audit.record(
        session,
        actor=actor,
        action=f"{kind.prefix}.{step}",
        target_type=kind.target,
        target_id=alert_id,
        detail=detail,
        request_id=request_id,
        ip=ip,
    )


async def announce(
    session: AsyncSession, outbox: Outbox, kind: Kind[A, R], alert: A, *, raised: bool
) -> R:
    """The alert as read now, queued for its audience: `raised` asks to be taken on."""
    out = await kind.read(session, alert)
    event = kind.raised_event(out) if raised else kind.changed_event(out)
    for staff_id in await kind.audience(session, alert):
        outbox.emit(event, Audience.staff(staff_id))
    return out


async def raised(
    session: AsyncSession,
    outbox: Outbox,
    kind: Kind[A, R],
    alert_id: int,
    detail: dict[str, Any],
    *,
    step: str = "raise",
) -> tuple[A, R]:
    """After this node's statement raised (or raised again) an alert: audit it, tell people."""
    alert = await session.get(kind.table, alert_id, populate_existing=True)
    assert alert is not None
    record(session, kind, alert_id, step, detail=detail)
    return alert, await announce(session, outbox, kind, alert, raised=True)


async def resolve_by_itself(
    session: AsyncSession,
    outbox: Outbox,
    kind: Kind[A, R],
    alert_id: int,
    *,
    now: dt.datetime,
    resolution: str,
    where: Iterable[Any] = (),
    detail: dict[str, Any] | None = None,
    **values: Any,
) -> bool:
    """Resolve an open alert because its cause went away. The update is conditional on the
    alert still being open, so of several nodes only one resolves it, audits and tells."""
    table: Any = kind.table
    done = await session.exec(  # type: ignore[call-overload]
        update(table)
        .where(col(table.id) == alert_id, col(table.status).in_(OPEN_ALERT), *where)
        .values(status=AlertStatus.resolved, resolved_at=now, resolution=resolution, **values)
    )
    if not done.rowcount:
        return False
    alert = await session.get(kind.table, alert_id, populate_existing=True)
    assert alert is not None
    record(session, kind, alert_id, "resolve", detail={"resolution": resolution, **(detail or {})})
    await announce(session, outbox, kind, alert, raised=False)
    return True


async def mine(session: AsyncSession, principal: Principal, kind: Kind[A, R], alert_id: int) -> A:
    """The alert if it is in the caller's area, else 404 (whether or not it exists)."""
    alert = await session.get(kind.table, alert_id)
    if alert is None or not await kind.may_see(Scope(session, principal), alert):
        raise kind.not_found(alert_id)
    return alert


async def acknowledge(
    kind: Kind[A, R],
    *,
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    alert_id: int,
    note: str,
    now: dt.datetime,
    request_id: str = "",
    ip: str = "",
) -> R:
    """Someone of the area takes the alert on: who, when and what they will do."""
    alert = await mine(session, principal, kind, alert_id)
    if alert.status != AlertStatus.raised:
        raise Conflict("alert.state", status=alert.status)
    alert.status = AlertStatus.acknowledged
    alert.acknowledged_at, alert.acknowledged_by, alert.note = now, principal.staff_id, note
    return await _acted(session, principal, outbox, kind, alert, "acknowledge", request_id, ip)


async def resolve(
    kind: Kind[A, R],
    *,
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    alert_id: int,
    note: str,
    now: dt.datetime,
    request_id: str = "",
    ip: str = "",
) -> R:
    """Close an alert by hand (the resident was helped another way, for example)."""
    alert = await mine(session, principal, kind, alert_id)
    if alert.status == AlertStatus.resolved:
        raise Conflict("alert.state", status=alert.status)
    alert.status, alert.resolved_at, alert.resolved_by = (
        AlertStatus.resolved,
        now,
        principal.staff_id,
    )
    alert.resolution = "manual"
    if note:
        alert.note = note
    return await _acted(session, principal, outbox, kind, alert, "resolve", request_id, ip)


async def _acted(
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    kind: Kind[A, R],
    alert: A,
    step: str,
    request_id: str,
    ip: str,
) -> R:
    session.add(alert)
    await session.flush()
    record(
        session,
        kind,
        alert.id or 0,
        step,
        actor=principal,
        detail={"note": alert.note} if alert.note else None,
        request_id=request_id,
        ip=ip,
    )
    return await announce(session, outbox, kind, alert, raised=False)


async def list_alerts(
    kind: Kind[A, R],
    *,
    session: AsyncSession,
    principal: Principal,
    open_only: bool,
    limit: int,
) -> list[R]:
    """The alerts of the caller's area, newest first."""
    table: Any = kind.table
    scope = Scope(session, principal)
    q = (
        select(table)
        .where(await scope.where_visible(table.line_id))
        .order_by(col(table.raised_at).desc(), col(table.id).desc())
        # Rows without a line are checked one by one and may be someone else's: a margin.
        .limit(limit + LINELESS_MARGIN)
    )
    if open_only:
        q = q.where(col(table.status).in_(OPEN_ALERT))
    out: list[R] = []
    for alert in (await session.exec(q)).all():
        if await kind.may_see(scope, alert):
            out.append(await kind.read(session, alert))
            if len(out) >= limit:
                break
    return out

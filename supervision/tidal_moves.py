"""Tidal moves: applying a suggestion, closing a move by hand, ending it at its time.

Applying binds the clerk to the target line (a staff_line row) in the same transaction as the
move and its audit entry; ending removes that binding. HTTP reads staff_line on every
request; a socket reads it on connect and on `state:sync`, which the clerk's console sends
when it hears `tidal:changed` (on any node), so its rooms and call next follow at once. Ending
is an update conditional on the move being active: two nodes expiring it at once end it once.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.access import Principal, may_see_tidal_move, require_line, require_tidal_move
from core.errors import Conflict, Invalid, NotFound
from core.events import Audience, Outbox
from core.models import Role, Staff, StaffLine, WindowLine
from core.settings import Settings
from supervision import tidal
from supervision.line_alerts import area_supervisors
from supervision.models import (
    TidalApply,
    TidalEnd,
    TidalFit,
    TidalMove,
    TidalMoveRead,
    TidalStatus,
)
from supervision.tidal_events import TidalChanged

TARGET = "tidal_move"
# Moves ended per sweep round; a backlog is worked off over the next rounds.
EXPIRE_BATCH = 200


def _nf(move_id: int) -> NotFound:
    return NotFound(f"潮汐调配 {move_id}", f"Tidal move {move_id}")


async def read(session: AsyncSession, move: TidalMove) -> TidalMoveRead:
    out = TidalMoveRead.model_validate(move, from_attributes=True)
    staff = await session.get(Staff, move.staff_id)
    src = await session.get(WindowLine, move.from_line_id)
    dst = await session.get(WindowLine, move.to_line_id)
    out.staff_name = staff.display_name if staff else ""
    out.from_line_name = src.name if src else ""
    out.to_line_name = dst.name if dst else ""
    return out


async def _tell(session: AsyncSession, outbox: Outbox, move: TidalMove) -> TidalMoveRead:
    """The move to its clerk and to every supervisor of either line's area."""
    out = await read(session, move)
    event = TidalChanged(move=out)
    outbox.emit(event, Audience.staff(move.staff_id))
    heads: set[int] = set()
    for line_id in (move.to_line_id, move.from_line_id):
        line = await session.get(WindowLine, line_id)
        if line is not None:
            heads.update(await area_supervisors(session, line))
    for staff_id in sorted(heads):
        outbox.emit(event, Audience.staff(staff_id))
    return out


async def _line(session: AsyncSession, principal: Principal, line_id: int) -> WindowLine:
    line = await session.get(WindowLine, line_id)
    nf = NotFound(f"窗口 {line_id}", f"Window line {line_id}")
    if line is None or not line.active:
        raise nf
    await require_line(session, principal, line, not_found=nf)
    return line


async def apply(
    *,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    outbox: Outbox,
    move_in: TidalApply,
    now: dt.datetime,
    request_id: str = "",
    ip: str = "",
) -> TidalMoveRead:
    """Put the clerk on the target line until the end time, if the rule suggests it now."""
    await _line(session, principal, move_in.from_line_id)
    await _line(session, principal, move_in.to_line_id)
    staff = await session.get(Staff, move_in.staff_id)
    bound = (
        await session.exec(select(StaffLine.line_id).where(StaffLine.staff_id == move_in.staff_id))
    ).all()
    if (
        staff is None
        or staff.role != Role.clerk
        or not staff.active
        or move_in.from_line_id not in bound
    ):
        raise NotFound(f"窗口人员 {move_in.staff_id}", f"Clerk {move_in.staff_id}")
    low, high = settings.tidal_min_stay_minutes, settings.tidal_max_stay_minutes
    stay = (move_in.until - now).total_seconds() / 60
    if not low <= stay <= high:
        raise Invalid("tidal.until", min=low, max=high)
    running = await session.exec(
        select(TidalMove.id).where(
            TidalMove.staff_id == move_in.staff_id, TidalMove.status == TidalStatus.active
        )
    )
    if running.first() is not None:
        raise Conflict("tidal.busy", name=staff.display_name)
    found = await tidal.overview(session=session, settings=settings, principal=principal, now=now)
    match = next(
        (
            s
            for s in found.suggestions
            if (s.staff_id, s.from_line_id, s.to_line_id)
            == (move_in.staff_id, move_in.from_line_id, move_in.to_line_id)
        ),
        None,
    )
    if match is None:
        raise Conflict("tidal.stale")
    move = TidalMove(
        staff_id=move_in.staff_id,
        from_line_id=move_in.from_line_id,
        to_line_id=move_in.to_line_id,
        fit=match.fit,
        status=TidalStatus.active,
        started_at=now,
        until=move_in.until.astimezone(dt.UTC),
        applied_by=principal.staff_fk,
        target_sl_before=match.target_sl_before,
        target_sl_after=match.target_sl_after,
        donor_sl_before=match.donor_sl_before,
        donor_sl_after=match.donor_sl_after,
        note=move_in.note,
    )
    session.add(move)
    session.add(StaffLine(staff_id=move_in.staff_id, line_id=move_in.to_line_id))
    try:
        await session.flush()
    except IntegrityError:  # the same clerk moved by someone else a moment ago
        raise Conflict("tidal.busy", name=staff.display_name) from None
    audit.record(
        session,
        actor=principal,
        action="tidal.apply",
        target_type=TARGET,
        target_id=move.id or 0,
        detail={
            "staff": move.staff_id,
            "from_line": move.from_line_id,
            "to_line": move.to_line_id,
            "until": move.until.isoformat(),
            "fit": str(TidalFit(move.fit)),
            "target_sl": [move.target_sl_before, move.target_sl_after],
            "donor_sl": [move.donor_sl_before, move.donor_sl_after],
        },
        request_id=request_id,
        ip=ip,
    )
    return await _tell(session, outbox, move)


async def _end(
    session: AsyncSession,
    move: TidalMove,
    *,
    reason: TidalEnd,
    now: dt.datetime,
    by: int | None,
    node_id: str = "",
    note: str = "",
) -> bool:
    """End the move if it is still active (True when this call ended it) and unbind the clerk."""
    values: dict[str, object] = {
        "status": TidalStatus.ended,
        "ended_at": now,
        "ended_by": by,
        "end_reason": reason,
        "ended_by_node": node_id[:100],
    }
    if note:
        values["note"] = note
    done = await session.exec(
        update(TidalMove)  # type: ignore[call-overload]
        .where(col(TidalMove.id) == move.id, col(TidalMove.status) == TidalStatus.active)
        .values(**values)
    )
    if not done.rowcount:
        return False
    await session.exec(
        delete(StaffLine).where(  # type: ignore[call-overload]
            col(StaffLine.staff_id) == move.staff_id, col(StaffLine.line_id) == move.to_line_id
        )
    )
    await session.refresh(move)
    return True


async def close(
    *,
    session: AsyncSession,
    principal: Principal,
    outbox: Outbox,
    move_id: int,
    note: str,
    now: dt.datetime,
    request_id: str = "",
    ip: str = "",
) -> TidalMoveRead:
    """End a move by hand before its time (the clerk goes back to their own lines only)."""
    move = await session.get(TidalMove, move_id)
    if move is None:
        raise _nf(move_id)
    await require_tidal_move(session, principal, move)
    if not await _end(
        session, move, reason=TidalEnd.closed, now=now, by=principal.staff_fk, note=note
    ):
        raise Conflict("tidal.ended")
    audit.record(
        session,
        actor=principal,
        action="tidal.close",
        target_type=TARGET,
        target_id=move_id,
        detail={"note": note} if note else None,
        request_id=request_id,
        ip=ip,
    )
    return await _tell(session, outbox, move)


async def expire_due(
    *, session: AsyncSession, outbox: Outbox, now: dt.datetime, node_id: str
) -> list[int]:
    """End the moves whose time has come; the ids this node ended (others ended the rest)."""
    due = await session.exec(
        select(TidalMove)
        .where(TidalMove.status == TidalStatus.active, col(TidalMove.until) <= now)
        .order_by(col(TidalMove.until), col(TidalMove.id))
        .limit(EXPIRE_BATCH)
    )
    ended = []
    for move in due.all():
        if not await _end(
            session, move, reason=TidalEnd.expired, now=now, by=None, node_id=node_id
        ):
            continue  # another node ended it first
        ended.append(move.id or 0)
        audit.record(
            session,
            actor=None,
            action="tidal.expire",
            target_type=TARGET,
            target_id=move.id or 0,
            detail={"staff": move.staff_id, "to_line": move.to_line_id, "node": node_id[:100]},
        )
        await _tell(session, outbox, move)
    return ended


async def list_moves(
    *, session: AsyncSession, principal: Principal, active_only: bool, limit: int
) -> list[TidalMoveRead]:
    """Moves touching the lines of the caller's area, newest first."""
    q = select(TidalMove).order_by(col(TidalMove.started_at).desc(), col(TidalMove.id).desc())
    if active_only:
        q = q.where(TidalMove.status == TidalStatus.active)
    out = []
    for move in (await session.exec(q)).all():
        if await may_see_tidal_move(session, principal, move):
            out.append(await read(session, move))
            if len(out) >= limit:
                break
    return out


async def mine(*, session: AsyncSession, principal: Principal) -> list[TidalMoveRead]:
    """The clerk's own running move (none or one)."""
    rows = await session.exec(
        select(TidalMove).where(
            TidalMove.staff_id == principal.staff_id, TidalMove.status == TidalStatus.active
        )
    )
    return [await read(session, m) for m in rows.all()]

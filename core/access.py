"""Who may do what, and where: every role, site and record check goes through here.

Two questions, answered only in this module:
- may this role perform this action at all (POLICY, checked by the HTTP and socket layers);
- may this caller see or act on this record: a site, a resident, a case and everything
  hanging off a case (its ticket, materials, recordings and calls). A record outside the
  caller's area answers 404, so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import AppError, Forbidden, NotFound
from core.models import Call, CallParticipant, Case, Resident, Role, Site, WindowLine

R = Role
EVERYONE = frozenset(Role)
ALL_STAFF = EVERYONE - {R.resident}

# action -> roles allowed. Site scope is checked separately with require_site().
POLICY: dict[str, frozenset[Role]] = {
    "catalog.read": EVERYONE,
    "sites.read": EVERYONE,
    "resident.create": frozenset({R.community_worker, R.clerk, R.coordinator, R.admin}),
    "resident.read": frozenset(
        {R.community_worker, R.clerk, R.expert, R.supervisor, R.coordinator, R.admin}
    ),
    "resident.reveal_id": frozenset({R.clerk, R.admin}),
    "case.create": frozenset({R.community_worker, R.clerk, R.admin}),
    "case.read": frozenset(
        {R.community_worker, R.resident, R.clerk, R.expert, R.supervisor, R.coordinator, R.admin}
    ),
    "case.rate": frozenset({R.community_worker, R.resident}),
    # the clerk serving a case takes it on despite an eligibility mismatch, with a reason
    "case.accept_eligibility": frozenset({R.clerk}),
    "queue.list": frozenset({R.clerk, R.supervisor, R.admin}),
    "experts.read": frozenset({R.clerk, R.supervisor, R.admin}),
    "staff.read": frozenset({R.supervisor, R.admin}),
    "staff.manage": frozenset({R.admin}),
    "audit.read": frozenset({R.supervisor, R.admin}),
    # supervision (every read is scoped to the lines of the caller's area)
    "alert.read": frozenset({R.supervisor, R.admin}),
    "alert.manage": frozenset({R.supervisor, R.admin}),
    "appointment.book": frozenset(
        {R.community_worker, R.resident, R.clerk, R.coordinator, R.admin}
    ),
    # home-visit planning: solving a day's plan (a problem in docs/planning.md's format)
    "plan.solve": frozenset({R.coordinator, R.admin}),
    # cloud-window queue and calls (socket events)
    "line.watch": frozenset({R.community_worker, R.clerk, R.supervisor, R.admin}),
    "queue.take": frozenset({R.community_worker, R.resident, R.admin}),
    "queue.answer": frozenset({R.community_worker, R.resident, R.admin}),
    "queue.cancel": frozenset({R.community_worker, R.resident, R.clerk, R.admin}),
    "queue.watch": frozenset({R.community_worker, R.resident, R.clerk, R.supervisor, R.admin}),
    "queue.serve": frozenset({R.clerk}),
    "presence.set": frozenset({R.clerk, R.expert}),
    "expert.accept": frozenset({R.expert}),
    "call.participate": frozenset({R.community_worker, R.resident, R.clerk, R.expert, R.admin}),
    # materials (who may see one is decided per case: participants and its line's supervisors)
    "material.upload": frozenset({R.community_worker, R.resident, R.clerk, R.admin}),
    "material.review": frozenset({R.clerk}),
    "recording.play": frozenset({R.clerk, R.supervisor}),
    "material.view": frozenset(
        {R.community_worker, R.resident, R.clerk, R.expert, R.supervisor, R.admin}
    ),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated staff member (or resident, on their own device) behind a request."""

    staff_id: int  # 0 for a resident
    username: str
    display_name: str
    role: Role
    site_ids: frozenset[int] = field(default_factory=frozenset)
    line_ids: frozenset[int] = field(default_factory=frozenset)
    skills: tuple[str, ...] = ()
    session_id: str = ""
    resident_id: int | None = None  # set for a resident signed in on their own device

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    @property
    def is_resident(self) -> bool:
        return self.role is Role.resident

    @property
    def staff_fk(self) -> int | None:
        """The staff id to record as actor; None when the actor is a resident."""
        return None if self.is_resident else self.staff_id


def can(principal: Principal, action: str) -> bool:
    return principal.role in POLICY[action]


def authorize(principal: Principal, action: str) -> None:
    """Raise Forbidden unless the principal's role may perform the action."""
    if not can(principal, action):
        raise Forbidden("forbidden_role")


# district > town > community is 3 deep; 8 guards against a cycle in broken data.
MAX_SITE_DEPTH = 8


def site_ancestry_cte(start: Any, name: str = "up") -> Any:
    """The walk up the site tree as SQL: rows (id, parent_id, depth) from the site `start`.

    `start` is a site id, a bind parameter or a scalar subquery; site_ancestry() and the
    recording policy read it in one statement.
    """
    sites = Site.__table__  # type: ignore[attr-defined]
    up = (
        sa.select(sites.c.id, sites.c.parent_id, sa.literal(1).label("depth"))
        .where(sites.c.id == start)
        .cte(name, recursive=True)
    )
    return up.union_all(
        sa.select(sites.c.id, sites.c.parent_id, (up.c.depth + 1).label("depth"))
        .join(up, sites.c.id == up.c.parent_id)
        .where(up.c.depth < MAX_SITE_DEPTH)
    )


async def site_ancestry(session: AsyncSession, site_id: int) -> list[Site]:
    """The site and its ancestors, nearest first: the one walk up the site tree.

    One recursive query, not a read per level: access checks and the recording policy walk it
    on every call join.
    """
    up = site_ancestry_cte(site_id)
    rows = await session.exec(select(Site).join(up, col(Site.id) == up.c.id).order_by(up.c.depth))
    return list(rows.all())


async def site_in_scope(session: AsyncSession, principal: Principal, site_id: int) -> bool:
    """True when the site, or one of its ancestors, is bound to the principal (admins: always)."""
    if principal.is_admin:
        return True
    if not principal.site_ids:
        return False
    return any(s.id in principal.site_ids for s in await site_ancestry(session, site_id))


async def require_site(session: AsyncSession, principal: Principal, site_id: int) -> None:
    if not await site_in_scope(session, principal, site_id):
        raise Forbidden("forbidden_site")


# -- records


def _case_nf(case_id: int | None) -> NotFound:
    return NotFound(f"办件 {case_id}", f"Case {case_id}")


class CaseUse(StrEnum):
    """What a caller wants to do with a case or with something hanging off it."""

    read = "read"  # the case, its timeline and checklist
    add_material = "add_material"  # upload, ask for, or reuse a document
    view_material = "view_material"  # open a document of the case
    review = "review"  # accept or reject a document
    play = "play"  # list and play the case's recordings
    serve = "serve"  # what serving it needs: the resident's summary and earlier cases


async def was_in_call(session: AsyncSession, principal: Principal, case_id: int) -> bool:
    """Whether the principal took part in any call of the case (as staff or as the resident)."""
    q = (
        select(CallParticipant.id)
        .join(Call, col(Call.id) == col(CallParticipant.call_id))
        .where(Call.case_id == case_id)
    )
    if principal.is_resident:
        q = q.where(CallParticipant.resident_id == principal.resident_id)
    else:
        q = q.where(CallParticipant.staff_id == principal.staff_id)
    return (await session.exec(q.limit(1))).first() is not None


async def supervises(session: AsyncSession, principal: Principal, case: Case) -> bool:
    """A supervisor of the case's line, or of the site area it belongs to."""
    if principal.role is not Role.supervisor:
        return False
    if case.line_id is not None and case.line_id in principal.line_ids:
        return True
    return await site_in_scope(session, principal, case.site_id)


def _own_case(principal: Principal, case: Case) -> bool:
    if principal.is_resident:
        return case.resident_id is not None and case.resident_id == principal.resident_id
    return case.created_by == principal.staff_id


def _line_clerk(principal: Principal, case: Case) -> bool:
    return (
        principal.role is Role.clerk
        and case.line_id is not None
        and case.line_id in principal.line_ids
    )


async def _participant(session: AsyncSession, principal: Principal, case: Case) -> bool:
    """Whoever took the case, its resident, the clerks of its line, and anyone in its calls."""
    if _own_case(principal, case) or _line_clerk(principal, case):
        return True
    return await was_in_call(session, principal, case.id or 0)


async def may_use_case(
    session: AsyncSession, principal: Principal, case: Case, use: CaseUse = CaseUse.read
) -> bool:
    """The one rule for a case and everything hanging off it; see docs/architecture.md."""
    if principal.is_resident:
        # A resident on their own device: only their own cases, never review, playback or
        # the staff's view of them.
        return _own_case(principal, case) and use not in (
            CaseUse.review,
            CaseUse.play,
            CaseUse.serve,
        )
    if use is CaseUse.read:
        if principal.is_admin or case.created_by == principal.staff_id:
            return True
        if case.line_id is not None and case.line_id in principal.line_ids:
            return True
        return await site_in_scope(session, principal, case.site_id)
    if use is CaseUse.add_material:
        return principal.is_admin or await _participant(session, principal, case)
    if use is CaseUse.view_material:
        if principal.role is Role.supervisor:
            return await supervises(session, principal, case)
        return await _participant(session, principal, case)
    if use is CaseUse.serve:
        return await _participant(session, principal, case)
    if use is CaseUse.review:
        return principal.role is Role.clerk and (
            _line_clerk(principal, case) or await was_in_call(session, principal, case.id or 0)
        )
    # CaseUse.play
    if await supervises(session, principal, case):
        return True
    return principal.role is Role.clerk and (
        _line_clerk(principal, case) or await was_in_call(session, principal, case.id or 0)
    )


async def require_case(
    session: AsyncSession,
    principal: Principal,
    case: Case,
    use: CaseUse = CaseUse.read,
    *,
    not_found: AppError | None = None,
) -> None:
    """Raise 404 (the case's, or `not_found`) unless `may_use_case`.

    Reviewing is the one exception: a caller whose role never reviews gets 403, since the
    role, unlike the case, is no secret.
    """
    if use is CaseUse.review and principal.role is not Role.clerk:
        raise Forbidden("forbidden_role")
    if not await may_use_case(session, principal, case, use):
        raise not_found or _case_nf(case.id)


class TicketFacts(Protocol):
    """What the ticket rule reads of a ticket (signaling owns the table)."""

    id: int | None
    resident_id: int | None
    taken_by: int | None
    called_by: int | None
    line_id: int
    point_site_id: int


async def require_ticket(session: AsyncSession, principal: Principal, t: TicketFacts) -> None:
    """The taker, the clerk who called it, clerks of the line, staff of the point's area and
    admins see a ticket; a resident on their own device only their own."""
    if principal.is_resident:
        if t.resident_id is not None and t.resident_id == principal.resident_id:
            return
    elif (
        principal.is_admin
        or t.taken_by == principal.staff_id
        or t.called_by == principal.staff_id
        or t.line_id in principal.line_ids
        or await site_in_scope(session, principal, t.point_site_id)
    ):
        return
    raise NotFound(f"号码 {t.id}", f"Ticket {t.id}")


async def require_resident(session: AsyncSession, principal: Principal, resident: Resident) -> None:
    """Admins, whoever registered the resident, and staff of their community's area may act
    for them; a resident only for themself."""
    if principal.is_resident:
        if principal.resident_id == resident.id:
            return
    elif principal.is_admin or resident.created_by == principal.staff_id:
        return
    elif resident.community_id is not None and await site_in_scope(
        session, principal, resident.community_id
    ):
        return
    raise NotFound(f"居民 {resident.id}", f"Resident {resident.id}")


async def may_see_line(session: AsyncSession, principal: Principal, line: WindowLine) -> bool:
    """Staff bound to the line, or to a site at or above its hall; admins: every line."""
    if principal.is_resident:
        return False
    return line.id in principal.line_ids or await site_in_scope(session, principal, line.site_id)


async def require_line(
    session: AsyncSession,
    principal: Principal,
    line: WindowLine,
    *,
    not_found: AppError | None = None,
) -> None:
    """The line (and its queue, alerts and figures) if `may_see_line`, else 404."""
    if not await may_see_line(session, principal, line):
        raise not_found or NotFound(f"窗口 {line.id}", f"Window line {line.id}")

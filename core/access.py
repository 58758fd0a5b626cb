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
    "resident.create": frozenset({R.community_worker, R.clerk, R.coordinator, R.operator, R.admin}),
    "resident.read": frozenset(
        {R.community_worker, R.clerk, R.expert, R.supervisor, R.coordinator, R.admin}
    ),
    "resident.reveal_id": frozenset({R.clerk, R.admin}),
    "case.create": frozenset({R.community_worker, R.clerk, R.admin}),
    "case.read": frozenset(
        {
            R.community_worker,
            R.resident,
            R.clerk,
            R.expert,
            R.supervisor,
            R.coordinator,
            R.field_staff,  # the case of their visit, served at the home
            R.admin,
        }
    ),
    # field staff record the resident's rating at the home, as a point's worker does
    "case.rate": frozenset({R.community_worker, R.resident, R.field_staff}),
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
    # supervision: the live board and the hall's wall display (lines_in_scope)
    "board.read": frozenset({R.supervisor, R.admin}),
    # supervision: alert thresholds and bad-rating follow-ups (scoped to the caller's area)
    "threshold.read": frozenset({R.supervisor, R.admin}),
    "threshold.manage": frozenset({R.supervisor, R.admin}),
    "followup.read": frozenset({R.supervisor, R.admin}),
    "followup.manage": frozenset({R.supervisor, R.admin}),
    # supervision: tidal windows (suggestions and moves scoped to the caller's area; a clerk
    # reads their own move)
    "tidal.read": frozenset({R.supervisor, R.admin}),
    "tidal.manage": frozenset({R.supervisor, R.admin}),
    "tidal.mine": frozenset({R.clerk}),
    # statistics: figures, charts and exports of the lines in the caller's area
    "stats.read": frozenset({R.supervisor, R.admin}),
    # appointments: booking, a line's slots (may_book_line scopes the line, require_resident
    # the resident); the hotline operator books for callers
    "appointment.book": frozenset(
        {R.community_worker, R.resident, R.clerk, R.coordinator, R.operator, R.admin}
    ),
    # home-visit planning: solving a day's plan (a problem in docs/planning.md's format)
    "plan.solve": frozenset({R.coordinator, R.admin}),
    # visit plans: versions of a day's plan of an area (require_visit_plan scopes each one);
    # the visit day: field staff read their own route and check in at the door
    "plan.read": frozenset({R.coordinator, R.admin}),
    "plan.manage": frozenset({R.coordinator, R.admin}),
    "field.route": frozenset({R.field_staff}),
    "field.check_in": frozenset({R.field_staff}),
    # cloud-window queue and calls (socket events)
    "line.watch": frozenset({R.community_worker, R.clerk, R.supervisor, R.admin}),
    # field staff at a resident's home are a mobile service point: they take a number for
    # their visit's case only (scheduler/field.py checks the visit), and join its call
    "queue.take": frozenset({R.community_worker, R.resident, R.field_staff, R.admin}),
    "queue.answer": frozenset({R.community_worker, R.resident, R.field_staff, R.admin}),
    "queue.cancel": frozenset({R.community_worker, R.resident, R.clerk, R.field_staff, R.admin}),
    "queue.watch": frozenset(
        {R.community_worker, R.resident, R.clerk, R.supervisor, R.field_staff, R.admin}
    ),
    "queue.serve": frozenset({R.clerk}),
    "presence.set": frozenset({R.clerk, R.expert}),
    "expert.accept": frozenset({R.expert}),
    "call.participate": frozenset(
        {R.community_worker, R.resident, R.clerk, R.expert, R.field_staff, R.admin}
    ),
    # materials (who may see one is decided per case: participants and its line's supervisors)
    "material.upload": frozenset({R.community_worker, R.resident, R.clerk, R.field_staff, R.admin}),
    "material.review": frozenset({R.clerk}),
    "recording.play": frozenset({R.clerk, R.supervisor}),
    "material.view": frozenset(
        {R.community_worker, R.resident, R.clerk, R.expert, R.supervisor, R.field_staff, R.admin}
    ),
    # home service (上门服务): who takes, follows and triages requests (scoped per record by
    # require_home_request); home.private: who sees a request's sensitive part (basis,
    # expected date, full address, notes), besides the resident themself
    "home.request": frozenset({R.operator, R.community_worker, R.coordinator, R.resident, R.admin}),
    "home.read": frozenset(
        {R.operator, R.community_worker, R.coordinator, R.field_staff, R.resident, R.admin}
    ),
    "home.answer": frozenset({R.operator, R.community_worker, R.coordinator, R.resident, R.admin}),
    "home.cancel": frozenset({R.operator, R.community_worker, R.coordinator, R.resident, R.admin}),
    "home.intake": frozenset({R.operator, R.community_worker, R.coordinator, R.admin}),
    "home.triage": frozenset({R.coordinator, R.admin}),
    "home.visit": frozenset({R.field_staff, R.coordinator, R.admin}),
    "home.private": frozenset({R.coordinator, R.field_staff, R.admin}),
    "home.counts": frozenset({R.coordinator, R.supervisor, R.admin}),
    # resident pages: a resident checks an item's rules against themself before taking a
    # number (require_resident keeps them to their own record)
    "eligibility.check": frozenset(
        {
            R.community_worker,
            R.clerk,
            R.expert,
            R.supervisor,
            R.coordinator,
            R.operator,
            R.resident,
            R.admin,
        }
    ),
    # licences and expiry reminders: staff browse the register of their area (each licence by
    # may_see_licence), coordinators and admins import existing licences, admins set a type's
    # reminder policy; a resident sees and stops their own reminders
    "licence.read": frozenset({R.coordinator, R.supervisor, R.operator, R.admin}),
    "licence.import": frozenset({R.coordinator, R.admin}),
    "licence.policy": frozenset({R.admin}),
    "reminder.own": frozenset({R.resident}),
    # courier deliveries (证照速递): the courier works their own deliveries (require_delivery);
    # staff of the area follow them and open a proof (audited); supervisors release a locked
    # one; whoever may read a case, and its resident, choose delivery for it
    "delivery.courier": frozenset({R.courier}),
    "delivery.read": frozenset({R.supervisor, R.coordinator, R.admin}),
    "delivery.manage": frozenset({R.supervisor, R.admin}),
    "delivery.own": frozenset({R.resident}),
    "delivery.choose": frozenset({R.clerk, R.community_worker, R.field_staff, R.resident}),
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


async def may_book_line(session: AsyncSession, principal: Principal, line: WindowLine) -> bool:
    """Appointments: residents at any hall; staff at the lines they may see and at the halls
    above their own sites (a community worker books at the town and the district)."""
    if principal.is_resident or await may_see_line(session, principal, line):
        return True
    for site_id in principal.site_ids:
        if any(s.id == line.site_id for s in await site_ancestry(session, site_id)):
            return True
    return False


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


# -- supervision: the live board


async def lines_in_scope(session: AsyncSession, principal: Principal) -> list[WindowLine]:
    """Every line `may_see_line` allows, in one query (the board reads a whole area at once).

    The walk goes down from the caller's sites (a town's head: the town hall and its
    communities) instead of up from each line; a test holds both rules to the same answer.
    """
    q = select(WindowLine).order_by(col(WindowLine.site_id), col(WindowLine.id))
    if principal.is_resident:
        return []
    if not principal.is_admin:
        sites = Site.__table__  # type: ignore[attr-defined]
        down = (
            sa.select(sites.c.id, sa.literal(1).label("depth"))
            .where(sites.c.id.in_(sorted(principal.site_ids) or [0]))
            .cte("down", recursive=True)
        )
        down = down.union_all(
            sa.select(sites.c.id, (down.c.depth + 1).label("depth"))
            .join(down, sites.c.parent_id == down.c.id)
            .where(down.c.depth < MAX_SITE_DEPTH)
        )
        q = q.where(
            sa.or_(
                col(WindowLine.site_id).in_(sa.select(down.c.id)),
                col(WindowLine.id).in_(sorted(principal.line_ids) or [0]),
            )
        )
    return list((await session.exec(q)).all())


# -- supervision: bad-rating follow-ups (and their overdue alerts)


class FollowupFacts(Protocol):
    """What the follow-up rule reads of a follow-up or its alert (supervision owns them)."""

    id: int | None
    line_id: int | None
    site_id: int


async def may_see_followup(session: AsyncSession, principal: Principal, f: FollowupFacts) -> bool:
    """The supervisors of the case's line (as for its alerts); a case without a line: of its
    site's area."""
    if principal.is_resident:
        return False
    line = await session.get(WindowLine, f.line_id) if f.line_id is not None else None
    if line is not None:
        return await may_see_line(session, principal, line)
    return await site_in_scope(session, principal, f.site_id)


async def require_followup(
    session: AsyncSession,
    principal: Principal,
    f: FollowupFacts,
    *,
    not_found: AppError | None = None,
) -> None:
    """The follow-up (or its alert) if `may_see_followup`, else 404."""
    if not await may_see_followup(session, principal, f):
        raise not_found or NotFound(f"差评回访 {f.id}", f"Follow-up {f.id}")


# -- supervision: tidal windows


class TidalMoveFacts(Protocol):
    """What the tidal rule reads of a move (supervision owns the table)."""

    id: int | None
    from_line_id: int
    to_line_id: int


async def may_see_tidal_move(
    session: AsyncSession, principal: Principal, move: TidalMoveFacts
) -> bool:
    """Whoever may see either of its lines: the move takes from one and gives to the other."""
    for line_id in (move.to_line_id, move.from_line_id):
        line = await session.get(WindowLine, line_id)
        if line is not None and await may_see_line(session, principal, line):
            return True
    return False


async def require_tidal_move(
    session: AsyncSession, principal: Principal, move: TidalMoveFacts
) -> None:
    """The move if `may_see_tidal_move`, else 404. Applying one needs both lines (the
    service checks each with require_line) and a clerk bound to the donor line."""
    if not await may_see_tidal_move(session, principal, move):
        raise NotFound(f"潮汐调配 {move.id}", f"Tidal move {move.id}")


# -- home service: requests and their visits


class HomeRequestFacts(Protocol):
    """What the home-request rule reads of a request (outreach owns the table)."""

    id: int | None
    resident_id: int
    site_id: int
    created_by: int | None


async def may_see_home_request(
    session: AsyncSession,
    principal: Principal,
    req: HomeRequestFacts,
    *,
    visitors: frozenset[int] = frozenset(),
) -> bool:
    """The resident themself; whoever took the request; field staff sent on its visits
    (`visitors`); operators, community workers and coordinators of its community's area."""
    if principal.is_resident:
        return req.resident_id == principal.resident_id
    if principal.is_admin or req.created_by == principal.staff_id:
        return True
    if principal.role is Role.field_staff:
        return principal.staff_id in visitors
    if principal.role in (Role.operator, Role.community_worker, Role.coordinator):
        return await site_in_scope(session, principal, req.site_id)
    return False


async def require_home_request(
    session: AsyncSession,
    principal: Principal,
    req: HomeRequestFacts,
    *,
    visitors: frozenset[int] = frozenset(),
) -> None:
    """The request if `may_see_home_request`, else 404."""
    if not await may_see_home_request(session, principal, req, visitors=visitors):
        raise NotFound(f"上门服务申请 {req.id}", f"Home-service request {req.id}")


def may_see_home_private(principal: Principal, req: HomeRequestFacts) -> bool:
    """Of a request already visible: its sensitive part goes to the resident and to the roles
    of `home.private` only (an operator or community worker sees the masked request)."""
    if principal.is_resident:
        return req.resident_id == principal.resident_id
    return can(principal, "home.private")


# -- licences: the register of each office, and its holders


class LicenceFacts(Protocol):
    """What the licence rule reads of a licence (outreach owns the table)."""

    id: int | None
    resident_id: int
    site_id: int  # the office whose register holds it


def area_sites(principal: Principal) -> Any:
    """The caller's sites and every site below them, as a subquery of ids (for lists that
    apply the rules below in SQL); admins: None, every site."""
    if principal.is_admin:
        return None
    sites = Site.__table__  # type: ignore[attr-defined]
    down = (
        sa.select(sites.c.id, sa.literal(1).label("depth"))
        .where(sites.c.id.in_(sorted(principal.site_ids) or [0]))
        .cte("area_down", recursive=True)
    )
    down = down.union_all(
        sa.select(sites.c.id, (down.c.depth + 1).label("depth"))
        .join(down, sites.c.parent_id == down.c.id)
        .where(down.c.depth < MAX_SITE_DEPTH)
    )
    return sa.select(down.c.id)


async def may_see_licence(session: AsyncSession, principal: Principal, lic: LicenceFacts) -> bool:
    """The holder on their own device; admins; staff whose area holds the issuing office or
    the holder's community. outreach/licences.py applies the same rule to its lists through
    area_sites()."""
    if principal.is_resident:
        return lic.resident_id == principal.resident_id
    if principal.is_admin or await site_in_scope(session, principal, lic.site_id):
        return True
    holder = await session.get(Resident, lic.resident_id)
    return bool(
        holder is not None
        and holder.community_id is not None
        and await site_in_scope(session, principal, holder.community_id)
    )


async def require_licence(session: AsyncSession, principal: Principal, lic: LicenceFacts) -> None:
    """The licence if `may_see_licence`, else 404."""
    if not await may_see_licence(session, principal, lic):
        raise NotFound(f"证照 {lic.id}", f"Licence {lic.id}")


# -- visit plans and the visit day (scheduler/plans.py, scheduler/field.py)


class VisitPlanFacts(Protocol):
    """What the plan rule reads of a plan version (scheduler owns the table)."""

    id: int | None
    site_id: int  # the area planned: a town or the district


async def require_visit_plan(
    session: AsyncSession, principal: Principal, plan: VisitPlanFacts
) -> None:
    """Coordinators of the plan's area (bound to it or above it) and admins; else 404."""
    if (
        principal.is_resident
        or principal.role not in (Role.coordinator, Role.admin)
        or not await site_in_scope(session, principal, plan.site_id)
    ):
        raise NotFound(f"上门服务方案 {plan.id}", f"Visit plan {plan.id}")


class HomeVisitFacts(Protocol):
    """What the visit rule reads of a home visit (outreach owns the table)."""

    id: int | None
    staff_id: int


def require_own_visit(principal: Principal, visit: HomeVisitFacts) -> None:
    """A field staff member's own visit (their route, check-in, number at the door); else 404."""
    if principal.role is not Role.field_staff or visit.staff_id != principal.staff_id:
        raise NotFound(f"上门服务 {visit.id}", f"Home visit {visit.id}")


# -- courier deliveries (scheduler/deliveries.py)


class DeliveryFacts(Protocol):
    """What the delivery rule reads of a delivery (scheduler owns the table)."""

    id: int | None
    resident_id: int
    courier_id: int | None
    from_site_id: int  # the issuing hall
    to_site_id: int  # the resident's community


async def may_see_delivery(session: AsyncSession, principal: Principal, d: DeliveryFacts) -> bool:
    """Its courier; its resident on their own device; admins; and the supervisors and
    coordinators whose area holds the issuing hall or the resident's community. Other couriers
    never: the address is the assigned courier's alone."""
    if principal.is_resident:
        return d.resident_id == principal.resident_id
    if principal.role is Role.courier:
        return d.courier_id == principal.staff_id
    if principal.is_admin:
        return True
    if principal.role not in (Role.supervisor, Role.coordinator):
        return False
    return await site_in_scope(session, principal, d.from_site_id) or await site_in_scope(
        session, principal, d.to_site_id
    )


async def require_delivery(session: AsyncSession, principal: Principal, d: DeliveryFacts) -> None:
    """The delivery if `may_see_delivery`, else 404."""
    if not await may_see_delivery(session, principal, d):
        raise NotFound(f"配送单 {d.id}", f"Delivery {d.id}")

"""Who may do what, and where: every role and site check goes through here."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Forbidden
from core.models import Role, Site

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
    "queue.list": frozenset({R.clerk, R.supervisor, R.admin}),
    "experts.read": frozenset({R.clerk, R.supervisor, R.admin}),
    "staff.read": frozenset({R.supervisor, R.admin}),
    "staff.manage": frozenset({R.admin}),
    "audit.read": frozenset({R.supervisor, R.admin}),
    "appointment.book": frozenset(
        {R.community_worker, R.resident, R.clerk, R.coordinator, R.admin}
    ),
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


async def site_in_scope(session: AsyncSession, principal: Principal, site_id: int) -> bool:
    """True when the site, or one of its ancestors, is bound to the principal (admins: always)."""
    if principal.is_admin:
        return True
    current: int | None = site_id
    for _ in range(8):  # district > town > community is 3 deep; 8 guards against a cycle
        if current is None:
            return False
        if current in principal.site_ids:
            return True
        current = (await session.exec(select(Site.parent_id).where(Site.id == current))).first()
    return False


async def require_site(session: AsyncSession, principal: Principal, site_id: int) -> None:
    if not await site_in_scope(session, principal, site_id):
        raise Forbidden("forbidden_site")

"""Who a service item is for: the catalog's age, disability and residence rules, checked
against a resident before a number is taken (the clerk may still accept with a reason)."""

from __future__ import annotations

import datetime as dt

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import cases
from core.errors import Conflict
from core.models import (
    BundleItem,
    Case,
    CaseEligibilityProblem,
    CaseEligibilityRead,
    CaseEvent,
    EligibilityAcceptance,
    EligibilityProblem,
    EligibilityRead,
    EligibilityRules,
    Resident,
    ServiceItem,
)
from core.residents import age_of

ACCEPTED = "eligibility.accepted"  # the timeline event of the clerk's acceptance


def rules(item: ServiceItem) -> EligibilityRules:
    return EligibilityRules(
        min_age=item.min_age,
        max_age=item.max_age,
        disability=item.needs_disability,
        local_residence=item.needs_local_residence,
    )


def problems(item: ServiceItem, resident: Resident, today: dt.date) -> list[EligibilityProblem]:
    """Each rule the resident does not meet, in words a community worker can say aloud."""
    age = age_of(resident.birth_date, today)
    out: list[EligibilityProblem] = []
    if item.min_age is not None and age < item.min_age:
        out.append(
            EligibilityProblem(
                code="eligibility.too_young",
                message=f"此事项须年满 {item.min_age} 周岁，该居民 {age} 岁",
                message_en=f"This item is for people aged {item.min_age} or over; "
                f"the resident is {age}",
            )
        )
    if item.max_age is not None and age > item.max_age:
        out.append(
            EligibilityProblem(
                code="eligibility.too_old",
                message=f"此事项限 {item.max_age} 周岁及以下，该居民 {age} 岁",
                message_en=f"This item is for people aged {item.max_age} or under; "
                f"the resident is {age}",
            )
        )
    if item.needs_disability and not resident.disabled:
        out.append(
            EligibilityProblem(
                code="eligibility.needs_disability",
                message="此事项须持有残疾人证，该居民未登记残疾",
                message_en="This item needs a disability certificate; "
                "the resident is not registered as disabled",
            )
        )
    if item.needs_local_residence and resident.community_id is None:
        out.append(
            EligibilityProblem(
                code="eligibility.needs_local_residence",
                message="此事项须为本区户籍居民，该居民未登记所在社区",
                message_en="This item is for registered residents of the district; "
                "the resident has no community on record",
            )
        )
    return out


def check(item: ServiceItem, resident: Resident, today: dt.date) -> EligibilityRead:
    found = problems(item, resident, today)
    return EligibilityRead(
        item_code=item.code,
        resident_id=resident.id or 0,
        eligible=not found,
        problems=found,
        remote_capable=item.remote_capable,
    )


async def _items(session: AsyncSession, case: Case) -> list[ServiceItem]:
    """The case's item, or every item of its bundle (the tablet checked them all)."""
    if case.bundle_id is None:
        item = await session.get(ServiceItem, case.item_id)
        return [item] if item else []
    rows = await session.exec(
        select(ServiceItem)
        .join(BundleItem, col(BundleItem.item_id) == col(ServiceItem.id))
        .where(BundleItem.bundle_id == case.bundle_id)
        .order_by(col(ServiceItem.id))
    )
    return list(rows.all())


async def for_case(*, session: AsyncSession, case: Case, today: dt.date) -> CaseEligibilityRead:
    """The case's items against its resident as of today, with the latest acceptance."""
    assert case.id is not None
    resident = await session.get(Resident, case.resident_id) if case.resident_id else None
    found: list[CaseEligibilityProblem] = []
    if resident is not None:
        for item in await _items(session, case):
            found += [
                CaseEligibilityProblem(item_code=item.code, **p.model_dump())
                for p in problems(item, resident, today)
            ]
    ev = (
        await session.exec(
            select(CaseEvent)
            .where(CaseEvent.case_id == case.id, CaseEvent.kind == ACCEPTED)
            .order_by(col(CaseEvent.id).desc())
            .limit(1)
        )
    ).first()
    accepted = None
    if ev is not None:
        accepted = EligibilityAcceptance(
            at=ev.at,
            actor_id=ev.actor_id,
            reason=str(ev.data.get("reason", "")),
            rules=[str(r) for r in ev.data.get("rules", [])],
        )
    return CaseEligibilityRead(
        case_id=case.id, checked=resident is not None, problems=found, accepted=accepted
    )


async def accept(
    *, session: AsyncSession, case: Case, actor_id: int | None, reason: str, today: dt.date
) -> CaseEligibilityRead:
    """The clerk accepts the case although the resident does not meet a rule; the reason and
    the rules go on the timeline. Refused when there is nothing to accept, or once done."""
    now = await for_case(session=session, case=case, today=today)
    if not now.problems:
        raise Conflict("eligibility.nothing_to_accept")
    if now.accepted is not None:
        raise Conflict("eligibility.already_accepted")
    rules = list(dict.fromkeys(p.code for p in now.problems))
    ev = cases.add_event(
        session,
        case,
        ACCEPTED,
        actor_id=actor_id,
        data={
            "reason": reason,
            "rules": rules,
            "items": list(dict.fromkeys(p.item_code for p in now.problems)),
        },
    )
    now.accepted = EligibilityAcceptance(at=ev.at, actor_id=actor_id, reason=reason, rules=rules)
    return now

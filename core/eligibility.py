"""Who a service item is for: the catalog's age, disability and residence rules, checked
against a resident before a number is taken (the clerk may still accept with a reason)."""

from __future__ import annotations

import datetime as dt

from core.models import (
    EligibilityProblem,
    EligibilityRead,
    EligibilityRules,
    Resident,
    ServiceItem,
)
from core.residents import age_of


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

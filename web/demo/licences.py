"""Demo licence types: what each is, how long it is valid, its reminder policy, and the catalog
items whose completed cases issue it."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import ServiceItem
from outreach.licences import ensure_type

DEFAULT_POLICY = (-90, -30, -7, 1)
# code, name, English name, validity in months, reminder offsets, items that issue it
TYPES = (
    ("SFZ", "居民身份证", "Resident ID card", 120, DEFAULT_POLICY, ("HJ-003",)),
    # A one-year permit: a reminder three months ahead would come a quarter of its life early.
    ("JZZ", "居住证", "Residence permit", 12, (-30, -7, 1), ("HJ-004",)),
    ("SPJY", "食品经营许可证", "Food business licence", 60, DEFAULT_POLICY, ("SJ-003",)),
    ("YPJY", "药品经营许可证", "Drug business licence", 60, DEFAULT_POLICY, ("SJ-004",)),
    ("GGWS", "公共场所卫生许可证", "Public-place hygiene licence", 48, DEFAULT_POLICY, ("WJ-006",)),
)


async def seed_licence_types(session: AsyncSession, items: dict[str, ServiceItem]) -> int:
    """The demo's licence types, and the items that yield them; returns how many types."""
    for code, name, name_en, months, offsets, item_codes in TYPES:
        kind = await ensure_type(
            session,
            code=code,
            name=name,
            name_en=name_en,
            validity_months=months,
            offsets=offsets,
        )
        for item_code in item_codes:
            if item_code in items:
                items[item_code].licence_type_id = kind.id
                session.add(items[item_code])
    await session.flush()
    return len(TYPES)

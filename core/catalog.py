"""Service items (事项), their material specs, bundles (一事联办) and keyword search."""

from __future__ import annotations

import unicodedata
from collections import defaultdict

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import eligibility
from core.errors import NotFound
from core.models import (
    Bundle,
    BundleItem,
    BundleRead,
    Department,
    DepartmentRead,
    ItemLevel,
    ItemRead,
    MaterialSpec,
    MaterialSpecRead,
    ServiceItem,
)

# At most this many LIKE patterns go to the database for one query; the rest is scoring.
MAX_PATTERNS = 12


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower()


def search_text(name: str, keywords: list[str], code: str) -> str:
    """The denormalized column search filters on."""
    return normalize(" ".join([name, *keywords, code]))[:1000]


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def bigrams(token: str) -> list[str]:
    return [token[i : i + 2] for i in range(len(token) - 1)]


def _patterns(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for t in tokens:
        out.append(t)
        if len(t) > 2 and any(_is_cjk(c) for c in t):
            out.extend(bigrams(t))
    return list(dict.fromkeys(out))[:MAX_PATTERNS]


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def score(item: ServiceItem, tokens: list[str]) -> float:
    """Relevance of an item to the query tokens; 0 means no match."""
    name = normalize(item.name)
    keywords = [normalize(k) for k in item.keywords]
    total = 0.0
    for t in tokens:
        if t == item.code.lower():
            s = 100.0
        elif name == t:
            s = 90.0
        elif name.startswith(t):
            s = 70.0
        elif t in name:
            s = 55.0
        elif t in keywords:
            s = 45.0
        elif any(t in k for k in keywords):
            s = 35.0
        elif any(len(k) >= 2 and k in t for k in keywords) or (len(name) >= 2 and name in t):
            s = 25.0
        else:
            grams = bigrams(t)
            hay = name + " " + " ".join(keywords)
            hit = sum(g in hay for g in grams) / len(grams) if grams else 0.0
            s = 30.0 * hit if hit >= 0.5 else 0.0
        if s and t in normalize(item.description):
            s += 5.0
        if not s:
            return 0.0  # every token must match somewhere
        total += s
    # Among equal matches the shorter name is the closer one (食品 -> 食品经营许可 before longer).
    return total + 1.0 / (1 + len(name))


async def _departments(session: AsyncSession) -> dict[str, Department]:
    return {d.code: d for d in (await session.exec(select(Department))).all()}


async def _materials(session: AsyncSession, item_ids: list[int]) -> dict[int, list[MaterialSpec]]:
    by_item: dict[int, list[MaterialSpec]] = defaultdict(list)
    if item_ids:
        rows = await session.exec(
            select(MaterialSpec)
            .where(col(MaterialSpec.item_id).in_(item_ids))
            .order_by(col(MaterialSpec.item_id), col(MaterialSpec.position))
        )
        for m in rows.all():
            by_item[m.item_id].append(m)
    return by_item


async def read_items(
    session: AsyncSession, items: list[ServiceItem], scores: dict[int, float] | None = None
) -> list[ItemRead]:
    depts = await _departments(session)
    mats = await _materials(session, [i.id for i in items if i.id is not None])
    out = []
    for i in items:
        assert i.id is not None
        dept = depts.get(i.department)
        out.append(
            ItemRead(
                id=i.id,
                code=i.code,
                name=i.name,
                name_en=i.name_en,
                department=i.department,
                department_name=dept.name if dept else i.department,
                level=ItemLevel(i.level),
                keywords=list(i.keywords),
                remote_capable=i.remote_capable,
                retention_days=i.retention_days,
                description=i.description,
                eligibility=eligibility.rules(i),
                materials=[
                    MaterialSpecRead(
                        id=m.id or 0,
                        name=m.name,
                        required=m.required,
                        accepted_types=list(m.accepted_types),
                        note=m.note,
                    )
                    for m in mats.get(i.id, [])
                ],
                score=round(scores[i.id], 3) if scores else None,
            )
        )
    return out


async def search(
    *,
    session: AsyncSession,
    query: str = "",
    department: str | None = None,
    remote_only: bool = False,
    limit: int = 20,
) -> list[ItemRead]:
    """Items matching the keywords ranked by relevance; with no query, the listing by code."""
    stmt = select(ServiceItem).where(col(ServiceItem.active).is_(True))
    if department:
        stmt = stmt.where(ServiceItem.department == department)
    if remote_only:
        stmt = stmt.where(col(ServiceItem.remote_capable).is_(True))
    tokens = normalize(query).split()
    if not tokens:
        rows = (await session.exec(stmt.order_by(col(ServiceItem.code)).limit(limit))).all()
        return await read_items(session, list(rows))
    stmt = stmt.where(
        or_(*[col(ServiceItem.search_text).like(_like(p), escape="\\") for p in _patterns(tokens)])
    )
    candidates = (await session.exec(stmt)).all()
    scored = [(score(i, tokens), i) for i in candidates]
    ranked = sorted((x for x in scored if x[0] > 0), key=lambda x: (-x[0], x[1].code))[:limit]
    return await read_items(session, [i for _, i in ranked], {i.id: s for s, i in ranked if i.id})


async def get_item(*, session: AsyncSession, code: str) -> ServiceItem:
    item = (await session.exec(select(ServiceItem).where(ServiceItem.code == code))).first()
    if item is None:
        raise NotFound(f"事项 {code}", f"Service item {code}")
    return item


async def list_departments(*, session: AsyncSession) -> list[DepartmentRead]:
    counts = dict(
        (
            await session.exec(
                select(ServiceItem.department, func.count()).group_by(ServiceItem.department)
            )
        ).all()
    )
    depts = (await session.exec(select(Department).order_by(col(Department.code)))).all()
    return [
        DepartmentRead(
            code=d.code, name=d.name, name_en=d.name_en, item_count=counts.get(d.code, 0)
        )
        for d in depts
    ]


async def read_bundle(*, session: AsyncSession, bundle: Bundle) -> BundleRead:
    rows = await session.exec(
        select(ServiceItem)
        .join(BundleItem, col(BundleItem.item_id) == col(ServiceItem.id))
        .where(BundleItem.bundle_id == bundle.id)
        .order_by(col(BundleItem.position))
    )
    items = await read_items(session, list(rows.all()))
    names = [m.name for i in items for m in i.materials]
    distinct = list(dict.fromkeys(names))
    assert bundle.id is not None
    return BundleRead(
        id=bundle.id,
        code=bundle.code,
        name=bundle.name,
        name_en=bundle.name_en,
        description=bundle.description,
        lead_department=bundle.lead_department,
        items=items,
        materials=distinct,
        documents_saved=len(names) - len(distinct),
    )


async def list_bundles(*, session: AsyncSession) -> list[BundleRead]:
    bundles = (await session.exec(select(Bundle).order_by(col(Bundle.code)))).all()
    return [await read_bundle(session=session, bundle=b) for b in bundles]


async def get_bundle(*, session: AsyncSession, code: str) -> Bundle:
    bundle = (await session.exec(select(Bundle).where(Bundle.code == code))).first()
    if bundle is None:
        raise NotFound(f"联办事项 {code}", f"Bundle {code}")
    return bundle

"""Seed the demo district (海川区): deterministic sites, lines, catalog and staff for every role."""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass, field

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from tqdm import tqdm

from core.catalog import search_text
from core.db import Database
from core.models import (
    Bundle,
    BundleItem,
    Department,
    MaterialSpec,
    Role,
    ServiceItem,
    Site,
    SiteKind,
    Staff,
    StaffLine,
    StaffSite,
    WindowLine,
)
from core.staff import Passwords
from scheduler.calendars import seed_hours
from web.demo import catalog as data
from web.demo import geography as geo
from web.demo.licences import seed_licence_types

DISTRICT_CODE = "D00"
# Ticket prefix letter of each department's window line (M023 = the 23rd civil-affairs ticket).
TICKET_PREFIX = {
    "civil_affairs": "M",
    "human_resources": "R",
    "medical_insurance": "Y",
    "household": "H",
    "market": "S",
    "health": "W",
    "disabled": "C",
}
# Community points lie within this distance of their town center (km); towns are ~8 km apart.
COMMUNITY_SPREAD_KM = 3.5
# Clerks trained for another department's work too (skills name it): the tidal windows may
# move them there when its queue grows. The district's health clerk is a comprehensive window.
CROSS_TRAINED = {"market": ("户籍",), "health": ("综合窗口",)}
EXPERTS = (
    ("expert", "周敏（社会救助专家）", ["社会救助政策", "养老服务"]),
    ("expert.yb", "吴磊（医保政策专家）", ["医保政策", "异地就医"]),
    ("expert.hj", "郑洁（户籍政策专家）", ["户籍政策", "居住证"]),
    ("expert.sj", "王涛（食品安全专家）", ["食品安全", "市场准入"]),
    ("expert.rs", "陈静（社保政策专家）", ["社保政策", "就业服务"]),
    ("expert.cl", "刘洋（残疾人服务专家）", ["残疾人服务", "社会救助政策"]),
)


@dataclass
class DemoLogin:
    role: Role
    username: str
    display_name: str
    where: str


@dataclass
class DemoSummary:
    created: bool
    password: str
    logins: list[DemoLogin] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def community_coords(town: dict, index: int) -> tuple[float, float]:
    """A deterministic spot within COMMUNITY_SPREAD_KM of the town center."""
    rng = random.Random(f"{town['code']}-{index}")
    r = COMMUNITY_SPREAD_KM * math.sqrt(rng.random())
    theta = rng.random() * 2 * math.pi
    dlat = (r * math.sin(theta)) / 111.32
    dlng = (r * math.cos(theta)) / (111.32 * math.cos(math.radians(town["lat"])))
    return round(town["lat"] + dlat, 6), round(town["lng"] + dlng, 6)


def _row_count() -> int:
    communities = sum(len(t["communities"]) for t in geo.TOWNS)
    items = len(data.ITEMS) + sum(len(i["materials"]) for i in data.ITEMS)
    return 1 + len(geo.TOWNS) + communities + items + len(data.BUNDLES)


async def is_seeded(session: AsyncSession) -> bool:
    return (
        await session.exec(select(Site.id).where(Site.code == DISTRICT_CODE))
    ).first() is not None


async def seed_demo(
    db: Database, passwords: Passwords, password: str, *, progress: bool | None = None
) -> DemoSummary:
    """Insert the demo district once; a second call changes nothing and says so."""
    async with db.session() as session:
        if await is_seeded(session):
            return DemoSummary(created=False, password=password, logins=demo_logins())
        disable = (not sys.stderr.isatty()) if progress is None else not progress
        bar = tqdm(
            total=_row_count(), desc="播种演示数据 seeding demo", unit="row", disable=disable
        )
        try:
            counts = await _seed(session, bar)
            counts["staff"] = await _seed_staff(session, await passwords.hash(password))
            await session.commit()
        finally:
            bar.close()
    return DemoSummary(created=True, password=password, logins=demo_logins(), counts=counts)


async def _seed(session: AsyncSession, bar: tqdm) -> dict[str, int]:
    session.add_all(
        Department(code=d["code"], name=d["name"], name_en=d["name_en"], town_line=d["town_line"])
        for d in data.DEPARTMENTS
    )
    d = geo.DISTRICT
    district = Site(
        code=DISTRICT_CODE,
        kind=SiteKind.district,
        name=d["name"],
        name_en=d["name_en"],
        address=d["address"],
        lat=d["lat"],
        lng=d["lng"],
        opening_hours=d["opening_hours"],
    )
    session.add(district)
    await session.flush()
    bar.update(1)
    lines = [_line(district, dept, "海川区") for dept in data.DEPARTMENTS]
    n_sites, n_points = 1, 0
    for t in geo.TOWNS:
        town = Site(
            code=t["code"],
            kind=SiteKind.town,
            parent_id=district.id,
            name=t["name"],
            name_en=t["name_en"],
            address=t["address"],
            lat=t["lat"],
            lng=t["lng"],
            opening_hours=t.get("opening_hours", geo.WEEKDAY_HOURS),
        )
        session.add(town)
        await session.flush()
        lines += [_line(town, dept, t["name"]) for dept in data.DEPARTMENTS if dept["town_line"]]
        for i, name in enumerate(t["communities"], start=1):
            lat, lng = community_coords(t, i)
            session.add(
                Site(
                    code=f"{t['code']}-C{i:02d}",
                    kind=SiteKind.community,
                    parent_id=town.id,
                    name=name,
                    name_en="",
                    address=f"{t['name']}{name}便民服务点",
                    lat=lat,
                    lng=lng,
                    opening_hours=geo.WEEKDAY_HOURS,
                )
            )
            n_points += 1
        n_sites += 1 + len(t["communities"])
        bar.update(1 + len(t["communities"]))
    session.add_all(lines)
    await session.flush()
    await seed_hours(session)  # the booking calendars' table of hours (scheduler/calendars.py)

    items: dict[str, ServiceItem] = {}
    for it in data.ITEMS:
        row = ServiceItem(
            code=it["code"],
            name=it["name"],
            name_en=it["name_en"],
            department=it["department"],
            level=it["level"],
            keywords=list(it["keywords"]),
            search_text=search_text(it["name"], list(it["keywords"]), it["code"]),
            remote_capable=it["remote_capable"],
            retention_days=it["retention_days"],
            description=it.get("description", ""),
            **{f"{k}": v for k, v in it.get("eligibility", {}).items()},
            home_visit=it["code"] in data.HOME_VISIT,
            home_visit_for=list(data.HOME_VISIT.get(it["code"], ())),
            # visit planning: minutes at the door and the visitor's skills (scheduler/plans.py)
            home_visit_minutes=data.HOME_VISIT_PLAN.get(it["code"], (40, ()))[0],
            home_visit_skills=list(data.HOME_VISIT_PLAN.get(it["code"], (40, ()))[1]),
        )
        session.add(row)
        items[it["code"]] = row
    await session.flush()
    for it in data.ITEMS:
        item_id = items[it["code"]].id
        assert item_id is not None
        for pos, m in enumerate(it["materials"]):
            session.add(
                MaterialSpec(
                    item_id=item_id,
                    position=pos,
                    name=m["name"],
                    required=m["required"],
                    accepted_types=list(m["accepted_types"]),
                    note=m.get("note", ""),
                )
            )
        bar.update(1 + len(it["materials"]))
    licence_types = await seed_licence_types(session, items)
    for b in data.BUNDLES:
        bundle = Bundle(
            code=b["code"],
            name=b["name"],
            name_en=b["name_en"],
            description=b["description"],
            lead_department=b["lead_department"],
        )
        session.add(bundle)
        await session.flush()
        assert bundle.id is not None
        for pos, code in enumerate(b["item_codes"]):
            session.add(BundleItem(bundle_id=bundle.id, item_id=items[code].id or 0, position=pos))
        bar.update(1)
    await session.flush()
    return {
        "sites": n_sites,
        "service_points": n_points,
        "window_lines": len(lines),
        "items": len(items),
        "bundles": len(data.BUNDLES),
        "licence_types": licence_types,
    }


def _line(site: Site, dept: dict, place: str) -> WindowLine:
    return WindowLine(
        code=f"{site.code}-{dept['code']}",
        site_id=site.id or 0,
        department=dept["code"],
        name=f"{place}·{dept['name']}",
        ticket_prefix=TICKET_PREFIX[dept["code"]],
    )


async def _seed_staff(session: AsyncSession, pw_hash: str) -> int:
    """Demo staff for every role. One hash for all (demo only: same password, same salt)."""
    sites = {s.code: s for s in (await session.exec(select(Site))).all()}
    lines = list((await session.exec(select(WindowLine))).all())
    staff: list[tuple[Staff, list[int], list[int]]] = []

    def add(
        username: str,
        name: str,
        role: Role,
        site_codes: list[str],
        line_ids: list[int],
        skills: list[str] | None = None,
    ) -> None:
        row = Staff(
            username=username,
            display_name=name,
            role=role,
            password_hash=pw_hash,
            skills=skills or [],
        )
        staff.append((row, [sites[c].id or 0 for c in site_codes], line_ids))

    add("admin", "系统管理员", Role.admin, [DISTRICT_CODE], [])
    add("supervisor", "区数据局·督查科", Role.supervisor, [DISTRICT_CODE], [])
    add("coordinator", "上门服务协调员", Role.coordinator, [DISTRICT_CODE], [])
    add("courier", "证照速递员", Role.courier, [DISTRICT_CODE], [])
    add("operator", "12345 热线接线员", Role.operator, [DISTRICT_CODE], [])
    for username, name, skills in EXPERTS:
        add(username, name, Role.expert, [DISTRICT_CODE], [], skills)
    gaoqiao = next(t for t in geo.TOWNS if t["name"] == "高桥镇")
    for ln in lines:
        site = next(s for s in sites.values() if s.id == ln.site_id)
        dept_letter = TICKET_PREFIX[ln.department].lower()
        username = f"clerk.{site.code.lower()}.{dept_letter}"
        if site.code == gaoqiao["code"] and ln.department == "civil_affairs":
            username = "clerk"
        trained = list(CROSS_TRAINED.get(ln.department, ()))
        add(username, f"{ln.name}窗口", Role.clerk, [site.code], [ln.id or 0], trained)
    for t in geo.TOWNS:
        add(
            f"supervisor.{t['code'].lower()}",
            f"{t['name']}便民服务中心主任",
            Role.supervisor,
            [t["code"]],
            [],
        )
        # Home service in each town: its coordinator triages, its field staff go on visits.
        add(
            f"coordinator.{t['code'].lower()}",
            f"{t['name']}上门服务协调员",
            Role.coordinator,
            [t["code"]],
            [],
        )
        add(
            f"field.{t['code'].lower()}",
            f"{t['name']}上门服务人员",
            Role.field_staff,
            [t["code"]],
            [],
        )
        # visit planning: a second visitor per town centre, trained for the assessments and
        # registrations some home visits need (scheduler/plans.py matches the item's skills)
        add(
            f"field.{t['code'].lower()}.b",
            f"{t['name']}上门服务专员",
            Role.field_staff,
            [t["code"]],
            [],
            list(FIELD_SKILLS),
        )
        for i, name in enumerate(t["communities"], start=1):
            code = f"{t['code']}-C{i:02d}"
            username = f"worker.{code.lower()}"
            if t is gaoqiao and i == 1:
                username = "worker"
            add(username, f"{name}社工", Role.community_worker, [code], [])
    session.add_all(row for row, _, _ in staff)
    await session.flush()
    for row, site_ids, line_ids in staff:
        assert row.id is not None
        session.add_all(StaffSite(staff_id=row.id, site_id=s) for s in site_ids)
        session.add_all(StaffLine(staff_id=row.id, line_id=ln) for ln in line_ids)
    return len(staff)


# Skills of the second field visitor of each town (visit planning, scheduler/plans.py).
FIELD_SKILLS = ("disability_assessment", "hukou_officer")


def demo_logins() -> list[DemoLogin]:
    gaoqiao = next(t for t in geo.TOWNS if t["name"] == "高桥镇")
    first = gaoqiao["communities"][0]
    return [
        DemoLogin(Role.community_worker, "worker", f"{first}社工", f"高桥镇{first}便民服务点"),
        DemoLogin(Role.clerk, "clerk", "高桥镇·民政窗口", "高桥镇·民政"),
        DemoLogin(Role.expert, "expert", EXPERTS[0][1], "专家库"),
        DemoLogin(Role.supervisor, "supervisor", "区数据局·督查科", "全区"),
        DemoLogin(Role.coordinator, "coordinator", "上门服务协调员", "全区"),
        DemoLogin(Role.courier, "courier", "证照速递员", "全区"),
        DemoLogin(Role.operator, "operator", "12345 热线接线员", "全区"),
        DemoLogin(Role.field_staff, "field.t07", "高桥镇上门服务人员", "高桥镇"),
        DemoLogin(Role.admin, "admin", "系统管理员", "全区"),
    ]

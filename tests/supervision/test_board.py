"""The live board: per line and per hall figures that equal a plain SQL recomputation, a
line's waiting tickets page by page, the hall's wall display, and the caller's area only."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from core.access import lines_in_scope, may_see_line
from core.db import Database
from core.models import Case, CaseStatus, Role, Site, Staff, StaffLine, WindowLine
from core.settings import Settings
from core.staff import principal_for
from outreach.sms import RecordingSmsGateway
from signaling.models import Presence, Ticket
from supervision.board import PRIORITIES, day_start, line_queue, snapshot
from supervision.board_models import BoardFigures, BoardRead
from supervision.models import LineAlert, LineThreshold, WaitAlert
from supervision.sweeps import sweep_alerts, sweep_line_alerts
from tests.factories import site_by_code
from tests.scheduler.appointment_helpers import insert_appointment
from tests.signaling.helpers import gaoqiao_setup, measured_handling, new_resident, take_payload

LINE_A = "T07-civil_affairs"  # 高桥镇·民政, default target (15 minutes)
OTHER_TOWN = "T03"
FIGURES = set(BoardFigures.model_fields)


def _min(m: float) -> dt.timedelta:
    return dt.timedelta(minutes=m)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    d = Database(settings.effective_database_url)
    yield d
    await d.dispose()


async def _line(s: Any, code: str) -> WindowLine:
    return (await s.exec(select(WindowLine).where(WindowLine.code == code))).one()


async def _principal(s: Any, username: str) -> Any:
    staff = (await s.exec(select(Staff).where(Staff.username == username))).one()
    return await principal_for(s, staff)


class Scene:
    """Tickets of every kind on a line, placed in time around `now`."""

    def __init__(self, s: Any, now: dt.datetime) -> None:
        self.s, self.now, self.n = s, now, 0

    async def ticket(
        self,
        line: WindowLine,
        status: str,
        waited: float,
        *,
        ago: float = 0,
        called: float | None = None,
        answered: float | None = None,
        finished: float | None = None,
        priority: int = 0,
        by: int | None = None,
    ) -> Ticket:
        """A ticket taken `ago + waited` minutes before now; the other times in minutes ago."""
        self.n += 1
        point = (await self.s.exec(select(Site).where(Site.parent_id == line.site_id))).first()
        case = Case(
            number=f"BD{self.n:06d}",
            item_id=1,
            site_id=point.id,
            line_id=line.id,
            status=CaseStatus.open,
        )
        self.s.add(case)
        await self.s.flush()
        taken = self.now - _min(ago + waited)

        def at(m: float | None) -> dt.datetime | None:
            return None if m is None else self.now - _min(m)

        t = Ticket(
            line_id=line.id,
            case_id=case.id,
            day=taken.date(),
            seq=500 + self.n,
            number=f"Z{self.n:03d}",
            status=status,
            priority=priority,
            item_id=1,
            item_code="MZ-004",
            item_name="高龄津贴",
            point_site_id=point.id,
            waiting_since=taken,
            created_at=taken,
            called_at=at(called),
            called_by=by,
            answered_at=at(answered),
            finished_at=at(finished),
        )
        self.s.add(t)
        await self.s.flush()
        return t

    async def clerk(self, line: WindowLine, status: str, *, fresh: bool = True) -> int:
        self.n += 1
        staff = Staff(
            username=f"bd.clerk{self.n}", display_name="x", role=Role.clerk, password_hash="x"
        )
        self.s.add(staff)
        await self.s.flush()
        self.s.add(StaffLine(staff_id=staff.id, line_id=line.id))
        seen = self.now - (dt.timedelta(seconds=5) if fresh else dt.timedelta(hours=1))
        self.s.add(Presence(staff_id=staff.id, node_id="n1", status=status, updated_at=seen))
        await self.s.flush()
        return int(staff.id or 0)


async def _build(db: Database, now: dt.datetime) -> dict[str, int]:
    """Two lines of 高桥镇 with every kind of ticket, clerk and alert, and a line elsewhere."""
    async with db.session() as s:
        a = await _line(s, LINE_A)
        lines = list(
            (await s.exec(select(WindowLine).where(WindowLine.site_id == a.site_id))).all()
        )
        b = next(ln for ln in lines if ln.id != a.id)
        elsewhere = (
            await s.exec(select(WindowLine).where(WindowLine.code.startswith(f"{OTHER_TOWN}-")))
        ).first()
        s.add(LineThreshold(line_id=b.id, wait_alert_seconds=300))  # B's target: 5 minutes
        sc = Scene(s, now)
        busy = await sc.clerk(a, "available")
        await sc.clerk(a, "available")  # free
        await sc.clerk(a, "away")  # online, not free
        await sc.clerk(a, "available", fresh=False)  # gone: not online
        await sc.clerk(b, "available")
        # A: waiting 20 min (past target, alerted), 5 min (taken in the last hour), 50 min
        # (priority); called within target; a miss served in the last hour; a no-show; an
        # abandoned wait and a short cancel; one being served; yesterday's; a transfer-free set.
        late = await sc.ticket(a, "waiting", 20)
        await sc.ticket(a, "waiting", 5)
        await sc.ticket(a, "waiting", 50, priority=1)
        await sc.ticket(a, "done", 10, ago=110, called=110, answered=109, finished=90)
        await sc.ticket(a, "done", 16, ago=40, called=40, answered=39, finished=20, priority=1)
        await sc.ticket(a, "no_show", 4, ago=200, called=200, finished=195)
        await sc.ticket(a, "cancelled", 30, ago=60, finished=60)
        await sc.ticket(a, "cancelled", 2, ago=10, finished=10)
        await sc.ticket(a, "serving", 3, ago=5, called=5, answered=4, by=busy)
        await sc.ticket(
            a, "done", 5, ago=60 * 26, called=60 * 26, answered=60 * 26, finished=60 * 25
        )
        # B: 6 minutes is past its own 5-minute target; one served within it.
        await sc.ticket(b, "waiting", 6)
        await sc.ticket(b, "done", 4, ago=30, called=30, answered=29, finished=25)
        # Elsewhere: never on 高桥镇's board.
        far = await sc.ticket(elsewhere, "waiting", 99)
        s.add(
            WaitAlert(ticket_id=late.id, line_id=a.id, threshold_seconds=900, waited_seconds=1200)
        )
        s.add(
            WaitAlert(
                ticket_id=far.id, line_id=elsewhere.id, threshold_seconds=900, waited_seconds=1
            )
        )
        for level, measure, status in (
            ("red", "waiting", "raised"),
            ("yellow", "taken", "acknowledged"),
            ("yellow", "waiting", "resolved"),
        ):
            s.add(
                LineAlert(
                    line_id=a.id,
                    measure=measure,
                    level=level,
                    value=1,
                    threshold=1,
                    status=status,
                    cleared_at=now if status == "resolved" else None,
                )
            )
        await s.commit()
        return {"a": int(a.id or 0), "b": int(b.id or 0), "elsewhere": int(elsewhere.id or 0)}


def _secs(dialect: str, later: str, earlier: str) -> str:
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM {later} - {earlier})"
    return f"(julianday({later}) - julianday({earlier})) * 86400"


def _ts(v: Any) -> dt.datetime:
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v)
    return v if v.tzinfo else v.replace(tzinfo=dt.UTC)


async def _recompute(
    s: Any, settings: Settings, line_id: int, target: int, now: dt.datetime
) -> dict[str, Any]:
    """The line's figures again, in plain SQL over the ticket rows (docs/supervision.md)."""
    d = s.bind.dialect.name
    midnight, hour_ago = day_start(settings, now), now - dt.timedelta(hours=1)
    p = {"l": line_id, "t": target, "now": now, "m": midnight, "h": hour_ago}
    if d == "sqlite":  # as the column stores them: UTC, no zone
        p = {
            k: v.astimezone(dt.UTC).replace(tzinfo=None) if isinstance(v, dt.datetime) else v
            for k, v in p.items()
        }

    async def one(sql: str) -> Any:
        return (await s.exec(text(sql), params=p)).one()  # type: ignore[call-overload]

    waiting, oldest = await one(
        "SELECT COUNT(*), MIN(waiting_since) FROM ticket WHERE line_id = :l AND status = 'waiting'"
    )
    over = (
        await one(
            "SELECT COUNT(*) FROM ticket WHERE line_id = :l AND status = 'waiting' AND "
            f"{_secs(d, ':now', 'waiting_since')} > :t"
        )
    )[0]
    (arrivals,) = await one("SELECT COUNT(*) FROM ticket WHERE line_id = :l AND waiting_since > :h")
    (served,) = await one(
        "SELECT COUNT(*) FROM ticket WHERE line_id = :l AND status = 'done' AND finished_at > :h"
    )
    (called,) = await one("SELECT COUNT(*) FROM ticket WHERE line_id = :l AND called_at >= :m")
    (within,) = await one(
        "SELECT COUNT(*) FROM ticket WHERE line_id = :l AND called_at >= :m AND "
        f"{_secs(d, 'called_at', 'waiting_since')} <= :t"
    )
    (abandoned,) = await one(
        "SELECT COUNT(*) FROM ticket WHERE line_id = :l AND status = 'cancelled' AND "
        "called_at IS NULL AND finished_at >= :m AND "
        f"{_secs(d, 'finished_at', 'waiting_since')} > :t"
    )
    handled, handling = await one(
        f"SELECT COUNT(*), AVG({_secs(d, 'finished_at', 'answered_at')}) FROM ticket "
        "WHERE line_id = :l AND status = 'done' AND finished_at >= :m AND answered_at IS NOT NULL"
    )
    fresh = now - dt.timedelta(seconds=settings.presence_ttl_seconds)
    p["f"] = fresh if d != "sqlite" else fresh.astimezone(dt.UTC).replace(tzinfo=None)
    (online,) = await one(
        "SELECT COUNT(DISTINCT p.staff_id) FROM presence p JOIN staff_line sl "
        "ON sl.staff_id = p.staff_id WHERE sl.line_id = :l AND p.updated_at >= :f"
    )
    (free,) = await one(
        "SELECT COUNT(DISTINCT p.staff_id) FROM presence p JOIN staff_line sl "
        "ON sl.staff_id = p.staff_id WHERE sl.line_id = :l AND p.updated_at >= :f "
        "AND p.status = 'available' AND p.staff_id NOT IN (SELECT called_by FROM ticket "
        "WHERE called_by IS NOT NULL AND status IN ('called', 'serving'))"
    )
    (serving,) = await one(
        "SELECT COUNT(DISTINCT called_by) FROM ticket WHERE line_id = :l "
        "AND status IN ('called', 'serving')"
    )
    (red,) = await one(
        "SELECT COUNT(*) FROM line_alert WHERE line_id = :l AND level = 'red' "
        "AND status IN ('raised', 'acknowledged')"
    )
    (yellow,) = await one(
        "SELECT COUNT(*) FROM line_alert WHERE line_id = :l AND level = 'yellow' "
        "AND status IN ('raised', 'acknowledged')"
    )
    (wait_alerts,) = await one(
        "SELECT COUNT(*) FROM wait_alert WHERE line_id = :l "
        "AND status IN ('raised', 'acknowledged')"
    )
    counted = called + abandoned + over
    oldest_at = _ts(oldest) if oldest else None
    return {
        "waiting": waiting,
        "oldest_waiting_since": oldest_at,
        "longest_wait_seconds": int((now - oldest_at).total_seconds()) if oldest_at else 0,
        "clerks_serving": serving,
        "clerks_free": free,
        "clerks_online": online,
        "arrivals_last_hour": arrivals,
        "served_last_hour": served,
        "sl_within": within,
        "sl_counted": counted,
        "service_level": round(within / counted, 4) if counted else None,
        "handling_seconds": round(float(handling)) if handled else None,
        "handled_today": handled,
        "alerts_red": red,
        "alerts_yellow": yellow,
        "alerts_wait": wait_alerts,
    }


def _noon(settings: Settings) -> dt.datetime:
    """Noon of today in the district: every "minutes ago" of the scene falls on today."""
    return day_start(settings, dt.datetime.now(dt.UTC)) + dt.timedelta(hours=12)


async def test_the_board_equals_a_raw_sql_recomputation(db: Database, settings: Settings) -> None:
    now = _noon(settings)
    ids = await _build(db, now)
    async with db.session() as s:
        head = await _principal(s, "supervisor.t07")
        board = await snapshot(session=s, principal=head, settings=settings, now=now)
        assert [h.site_name for h in board.halls] == ["高桥镇"]
        hall = board.halls[0]
        assert ids["elsewhere"] not in {ln.line_id for ln in hall.lines}
        for ln in hall.lines:
            want = await _recompute(s, settings, ln.line_id, ln.target_seconds, now)
            got = ln.model_dump(include=FIGURES)
            assert got == want, ln.line_name

    a = next(ln for ln in hall.lines if ln.line_id == ids["a"])
    b = next(ln for ln in hall.lines if ln.line_id == ids["b"])
    # The same figures, as a supervisor would count them on the scene.
    assert (a.waiting, a.longest_wait_seconds, a.target_seconds) == (3, 50 * 60, 900)
    assert (a.clerks_online, a.clerks_free, a.clerks_serving) == (3, 1, 1)
    # taken in the last hour: the three waiting, the 16-minute miss (56 minutes ago), the short
    # cancel and the one being served; served in it: the miss.
    assert (a.arrivals_last_hour, a.served_last_hour) == (6, 1)
    # called within 15 min: 10, 4 and 3 minutes; missed: 16 (served), 30 (left), 20 and 50
    # (still waiting); the 2-minute cancel and the 5-minute wait are not decided yet.
    assert (a.sl_within, a.sl_counted, a.service_level) == (3, 7, round(3 / 7, 4))
    assert (a.handled_today, a.handling_seconds) == (2, round((19 + 19) * 60 / 2))
    assert (a.alerts_red, a.alerts_yellow, a.alerts_wait) == (1, 1, 1)
    assert (b.target_seconds, b.sl_within, b.sl_counted) == (300, 1, 2)
    # The hall totals its lines; a clerk is counted once.
    assert hall.waiting == sum(ln.waiting for ln in hall.lines)
    assert hall.clerks_online == sum(ln.clerks_online for ln in hall.lines)
    assert (hall.sl_within, hall.sl_counted) == (
        sum(ln.sl_within for ln in hall.lines),
        sum(ln.sl_counted for ln in hall.lines),
    )
    assert hall.longest_wait_seconds == max(ln.longest_wait_seconds for ln in hall.lines)
    assert board.total.model_dump() == hall.model_dump(include=FIGURES)
    BoardRead.model_validate_json(board.model_dump_json())  # the payload round-trips


async def test_handling_time_is_no_data_until_a_ticket_is_finished(
    db: Database, settings: Settings
) -> None:
    now = _noon(settings)
    async with db.session() as s:
        head = await _principal(s, "supervisor.t07")
        a = await _line(s, LINE_A)
        board = await snapshot(session=s, principal=head, settings=settings, now=now)
        line = next(ln for hall in board.halls for ln in hall.lines if ln.line_id == a.id)
        assert (line.handling_seconds, line.handled_today, line.service_level) == (None, 0, None)
        await Scene(s, now).ticket(a, "done", 2, ago=30, called=30, answered=28, finished=20)
        await s.commit()
        board = await snapshot(session=s, principal=head, settings=settings, now=now)
        line = next(ln for hall in board.halls for ln in hall.lines if ln.line_id == a.id)
        assert (line.handling_seconds, line.handled_today, line.service_level) == (480, 1, 1.0)


async def test_every_priority_the_queue_gives_is_on_the_board(
    sock: Any, settings: Settings
) -> None:
    """Walk-in, aged 80+, disabled and an appointment: the board's index reads name them all."""
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    residents = [
        await new_resident(worker.user, years=40, seq=601),
        await new_resident(worker.user, years=84, seq=603),
        await new_resident(worker.user, years=50, seq=605, disabled=True),
        await new_resident(worker.user, years=41, seq=607),
    ]
    # In ten minutes, whatever the hall's calendar says (booking rules: test_calendars.py).
    booking = (await insert_appointment(settings, setup, residents[3], 10))["id"]
    taken = [await worker.ok("ticket:take", take_payload(setup, r)) for r in residents[:3]]
    taken.append(
        await worker.ok("ticket:take", take_payload(setup, residents[3], appointment_id=booking))
    )
    assert [t["priority_reason"] for t in taken] == ["", "age80", "disabled", "appointment"]
    assert {t["priority"] for t in taken} <= set(PRIORITIES)
    head = await sock("supervisor.t07")
    board = await (await head.user.get("/api/v1/board")).json()
    line = next(ln for ln in board["halls"][0]["lines"] if ln["line_id"] == setup["line"]["id"])
    assert line["waiting"] == 4
    # Served today: every one of them counts once called and finished.
    clerk = await sock("clerk")
    for _ in taken:
        got = await clerk.ok("queue:call_next")
        await clerk.ok(
            "ticket:finish",
            {"ticket_id": got["ticket"]["id"], "outcome": "returned", "reason": "测试"},
        )
    board = await (await head.user.get("/api/v1/board")).json()
    line = next(ln for ln in board["halls"][0]["lines"] if ln["line_id"] == setup["line"]["id"])
    assert (line["waiting"], line["sl_within"], line["sl_counted"]) == (0, 4, 4)
    assert line["served_last_hour"] == 4


async def test_lines_in_scope_agrees_with_may_see_line(db: Database) -> None:
    async with db.session() as s:
        lines = list((await s.exec(select(WindowLine))).all())
        staff = list(
            (await s.exec(select(Staff).where(Staff.role.in_(["supervisor", "admin"])))).all()
        )
        staff += (await s.exec(select(Staff).where(Staff.role == "clerk").limit(3))).all()
        assert len(staff) > 15
        for member in staff:
            me = await principal_for(s, member)
            by_site: dict[int, bool] = {}  # may_see_line reads only the line's id and site
            want = set()
            for ln in lines:
                if ln.id in me.line_ids or ln.site_id not in by_site:
                    seen = await may_see_line(s, me, ln)
                    if ln.id not in me.line_ids:
                        by_site[ln.site_id] = seen
                else:
                    seen = by_site[ln.site_id]
                if seen:
                    want.add(ln.id)
            assert {ln.id for ln in await lines_in_scope(s, me)} == want, member.username


# -- over HTTP: the caller's area only


async def test_a_town_head_sees_only_the_town(as_user: Any, db: Database) -> None:
    head = await as_user("supervisor.t07")
    boss = await as_user("supervisor")
    mine = await (await head.get("/api/v1/board")).json()
    assert [h["site_name"] for h in mine["halls"]] == ["高桥镇"]
    codes = {ln["line_id"] for ln in mine["halls"][0]["lines"]}
    everything = await (await boss.get("/api/v1/board")).json()
    assert len(everything["halls"]) > 10
    async with db.session() as s:
        t07 = {
            ln.id for ln in (await s.exec(select(WindowLine))).all() if ln.code.startswith("T07-")
        }
        other = (await s.exec(select(Site).where(Site.code == OTHER_TOWN))).one()
        foreign = (await _line(s, f"{OTHER_TOWN}-civil_affairs")).id
        own = (await _line(s, LINE_A)).id
    assert codes == t07
    # Another town's hall, line or wall: 404, as if it did not exist.
    for path in (
        f"/api/v1/board?hall_id={other.id}",
        f"/api/v1/board/lines/{foreign}/waiting",
        f"/api/v1/board/wall?hall_id={other.id}",
        "/api/v1/board/lines/99999999/waiting",
    ):
        resp = await head.get(path)
        assert resp.status == 404, (path, await resp.text())
        assert (await boss.get(path)).status == (404 if "99999999" in path else 200), path
    assert (await head.get(f"/api/v1/board/lines/{own}/waiting")).status == 200
    wall_ = await (await head.get("/api/v1/board/wall")).json()
    assert wall_["site_name"] == "高桥镇"
    # Roles that do not supervise: refused.
    clerk = await as_user("clerk")
    for path in ("/api/v1/board", f"/api/v1/board/lines/{own}/waiting", "/api/v1/board/wall"):
        assert (await clerk.get(path)).status == 403, path
    # Bad input: a clear 4xx.
    assert (await head.get(f"/api/v1/board/lines/{own}/waiting?limit=0")).status == 422
    assert (await head.get(f"/api/v1/board/lines/{own}/waiting?limit=1000")).status == 422
    assert (await head.get("/api/v1/board?hall_id=abc")).status == 422
    assert (await head.get("/api/v1/board?extra=1")).status == 422


async def test_drill_down_pages_oldest_first_without_personal_data(
    db: Database, settings: Settings
) -> None:
    now = _noon(settings)
    async with db.session() as s:
        a = await _line(s, LINE_A)
        sc = Scene(s, now)
        made = [await sc.ticket(a, "waiting", 30 - i, priority=i % 3 == 0) for i in range(25)]
        s.add(
            WaitAlert(ticket_id=made[0].id, line_id=a.id, threshold_seconds=900, waited_seconds=1)
        )
        await s.commit()
        head = await _principal(s, "supervisor.t07")
        first = await line_queue(
            session=s, principal=head, settings=settings, now=now, line_id=a.id, limit=10, offset=0
        )
        last = await line_queue(
            session=s, principal=head, settings=settings, now=now, line_id=a.id, limit=10, offset=20
        )
    assert (first.total, len(first.tickets), len(last.tickets)) == (25, 10, 5)
    waits = [t.wait_seconds for t in first.tickets + last.tickets]
    assert waits == sorted(waits, reverse=True)  # longest waiting first, priority or not
    assert first.tickets[0].number == made[0].number and first.tickets[0].alerted
    assert not any(t.alerted for t in first.tickets[1:])
    assert [t.over_target for t in first.tickets[:3]] == [True, True, True]
    assert last.tickets[-1].over_target is False
    assert first.tickets[0].item_name == "高龄津贴" and first.tickets[0].priority == 1


async def test_the_wall_shows_numbers_in_call_order_and_no_names(sock: Any) -> None:
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    walk = await new_resident(worker.user, years=40, seq=701)
    old = await new_resident(worker.user, years=86, seq=703)
    first = await worker.ok("ticket:take", take_payload(setup, walk))
    second = await worker.ok("ticket:take", take_payload(setup, None))
    aged_ = await worker.ok("ticket:take", take_payload(setup, old))
    third = await worker.ok("ticket:take", take_payload(setup, None))
    head = await sock("supervisor.t07")
    resp = await head.user.get("/api/v1/board/wall")
    body = await resp.text()
    shown = json.loads(body)
    line = next(ln for ln in shown["lines"] if ln["line_id"] == setup["line"]["id"])
    assert [n["number"] for n in line["next"]] == [
        aged_["number"],
        first["number"],
        second["number"],
    ]
    assert third["number"] not in body  # three are shown
    assert line["serving"] == [] and line["next"][0]["item_name"] == setup["item"]["name"]
    # Nothing that names a resident: not the name, not the masked ID number.
    residents = await (await worker.user.get(f"/api/v1/residents/{old}")).json()
    assert residents["name"] not in body and residents["id_masked"] not in body
    assert "resident" not in body

    clerk = await sock("clerk")
    called = await clerk.ok("queue:call_next")
    assert called["ticket"]["number"] == aged_["number"]
    shown = await (await head.user.get("/api/v1/board/wall")).json()
    line = next(ln for ln in shown["lines"] if ln["line_id"] == setup["line"]["id"])
    assert line["serving"] == [aged_["number"]]
    assert [n["number"] for n in line["next"]] == [
        first["number"],
        second["number"],
        third["number"],
    ]
    assert (line["clerks_serving"], shown["hall"]["clerks_serving"]) == (1, 1)


# -- events: a supervisor hears only the lines of their area


async def test_line_status_reaches_only_the_supervisors_of_the_line(sock: Any) -> None:
    head = await sock("supervisor.t07")  # 高桥镇
    boss = await sock("supervisor")  # the district
    mine = await (await head.user.get("/api/v1/board")).json()
    own = [ln["line_id"] for ln in mine["halls"][0]["lines"]]
    await head.ok("line:watch", {"line_ids": own})
    there = await sock(f"worker.{OTHER_TOWN.lower()}-c01")
    far = await gaoqiao_setup(there.user)  # the same item, from a point of the other town
    far["point"] = await site_by_code(there.user, f"{OTHER_TOWN}-C01")
    lines = await (
        await there.user.get("/api/v1/lines", params={"site_id": str(far["point"]["parent_id"])})
    ).json()
    far["line"] = next(ln for ln in lines if ln["department"] == "civil_affairs")
    foreign = far["line"]["id"]
    err = await head.err("line:watch", {"line_ids": [foreign]})
    assert err["code"] == "not_found"
    await boss.ok("line:watch", {"line_ids": [foreign]})

    # A number taken on the other town's line: the district hears it, the town's head does not.
    await there.ok("ticket:take", take_payload(far, None))
    await boss.wait("line:status", lambda d: d["line_id"] == foreign and d["waiting"] == 1)
    # ...and a number on the town's own line reaches the head, after the other one.
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    await worker.ok("ticket:take", take_payload(setup, None))
    await head.wait(
        "line:status", lambda d: d["line_id"] == setup["line"]["id"] and d["waiting"] == 1
    )
    assert all(d["line_id"] in own for d in head.heard["line:status"])


async def test_a_wait_is_never_estimated_from_an_assumed_handling_time(
    sock: Any, settings: Settings
) -> None:
    """Until the line has finished a ticket its handling time is unknown, and so is every wait
    estimated from it: the tablet's, the hall ranking's, the line status's."""
    clerk = await sock("clerk")  # online: only the handling time is missing
    worker = await sock("worker")
    setup = await gaoqiao_setup(worker.user)
    first = await worker.ok("ticket:take", take_payload(setup, None))
    assert first["eta_seconds"] is None
    status = (await clerk.ok("line:watch", {"line_ids": [setup["line"]["id"]]}))[0]
    assert (status["clerks_online"], status["avg_handling_seconds"]) == (1, None)
    halls = await (
        await worker.user.get(
            f"/api/v1/items/{setup['item']['code']}/halls",
            params={"site_id": str(setup["point"]["id"])},
        )
    ).json()
    home = next(h for h in halls if h["line_id"] == setup["line"]["id"])
    assert home["wait_seconds"] is None and home["total_minutes"] is None

    await measured_handling(settings.effective_database_url, seconds=300)
    second = await worker.ok("ticket:take", take_payload(setup, None))
    assert second["eta_seconds"] == 2 * 300
    status = await clerk.wait(
        "line:status", lambda d: d["line_id"] == setup["line"]["id"] and d["waiting"] == 2
    )
    assert status["avg_handling_seconds"] == 300


async def test_alert_events_reach_only_the_supervisors_of_the_lines_area(
    db: Database, settings: Settings
) -> None:
    """The board refreshes on alert events: each goes to supervisors whose area holds the line."""
    now = dt.datetime.now(dt.UTC)
    async with db.session() as s:
        home, far = await _line(s, LINE_A), await _line(s, f"{OTHER_TOWN}-civil_affairs")
        sc = Scene(s, now)
        for line in (home, far):
            await sc.ticket(line, "waiting", 20)
            s.add(LineThreshold(line_id=line.id, waiting_yellow=1, waiting_red=50))
        await s.commit()
        rooms = {
            u: f"staff:{(await s.exec(select(Staff).where(Staff.username == u))).one().id}"
            for u in ("supervisor.t07", f"supervisor.{OTHER_TOWN.lower()}", "supervisor")
        }
    heard: list[Any] = []

    async def deliver(deliveries: list[Any]) -> None:
        heard.extend(deliveries)

    kw = {"db": db, "settings": settings, "sms": RecordingSmsGateway(), "deliver": deliver}
    await sweep_alerts(**kw, node_id="n1", now=now)
    await sweep_line_alerts(**kw, node_id="n1", now=now)
    by_line: dict[int, set[str]] = {home.id or 0: set(), far.id or 0: set()}
    for d in heard:
        if d.event.name in ("alert:raised", "line_alert:raised"):
            by_line[d.event.alert.line_id].add(d.to.room)
    assert rooms["supervisor.t07"] in by_line[home.id or 0]
    assert rooms["supervisor.t07"] not in by_line[far.id or 0]
    assert rooms[f"supervisor.{OTHER_TOWN.lower()}"] in by_line[far.id or 0]
    assert rooms[f"supervisor.{OTHER_TOWN.lower()}"] not in by_line[home.id or 0]
    assert rooms["supervisor"] in by_line[home.id or 0] & by_line[far.id or 0]  # line alerts

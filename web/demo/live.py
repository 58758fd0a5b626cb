"""Today's queue for the demo: a few elderly residents waiting at 高桥镇·民政 now, the first of
them for longer than the wait-alert threshold (15 minutes by default), so a minute after
`cloudwindow demo` starts, the server's sweep raises a live wait alert: the board, the wall
display and the head's alert list show it, and the clerk has someone to call.

The numbers are taken as the tablet takes them (signaling.flows.take_ticket, by the demo's
community worker, with the residents' consent), then moved back in time to how long each has
waited. Nothing is added while tickets of today still wait on the line (a second start the same
day changes nothing).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from sqlmodel import select

from core import idnumber, residents
from core.db import Database, utcnow
from core.errors import NotFound
from core.models import Case, ResidentCreate, Site, Staff, WindowLine
from core.pii import PiiCipher
from core.settings import Settings
from core.staff import principal_for
from signaling import queue
from signaling.flows import take_ticket
from signaling.models import Ticket, TicketStatus
from signaling.outbox import Outbox
from web.demo.geography import DIVISION_CODE

LINE = "T07-civil_affairs"  # 高桥镇·民政
POINT = "T07-C01"  # the demo worker's service point
ITEM = "MZ-004"  # 高龄津贴申领 (80 and over)
WORKER = "worker"


@dataclass(frozen=True)
class Waiting:
    name: str
    born: dt.date
    seq: int  # the ID number's sequence digits (odd: male)
    minutes: int  # waited so far


QUEUE = (
    Waiting("王秀英", dt.date(1941, 3, 12), 902, 18),  # past the threshold: the live alert
    Waiting("李建国", dt.date(1944, 8, 2), 913, 9),
    Waiting("张桂兰", dt.date(1939, 11, 25), 924, 4),
    Waiting("刘德明", dt.date(1945, 1, 30), 935, 1),
)


def _id_number(w: Waiting) -> str:
    first17 = f"{DIVISION_CODE}{w.born:%Y%m%d}{w.seq:03d}"
    return first17 + idnumber.check_char(first17)


async def seed_live_queue(db: Database, settings: Settings) -> int:
    """Put today's demo queue in place; how many tickets it added (0: already there)."""
    cipher = PiiCipher(await asyncio.to_thread(settings.load_secret_key))
    now = utcnow()
    today = queue.working_day(settings, now)
    async with db.session() as session:
        line = (await session.exec(select(WindowLine).where(WindowLine.code == LINE))).first()
        point = (await session.exec(select(Site).where(Site.code == POINT))).first()
        worker = (await session.exec(select(Staff).where(Staff.username == WORKER))).first()
        if line is None or point is None or worker is None or line.id is None:
            return 0  # not the demo district
        waiting = await session.exec(
            select(Ticket.id).where(
                Ticket.line_id == line.id,
                Ticket.day == today,
                Ticket.status == TicketStatus.waiting,
            )
        )
        if waiting.first() is not None:
            return 0
        principal = await principal_for(session, worker)
        outbox = Outbox()  # nobody listens yet: the server starts after this
        added = 0
        for w in QUEUE:
            number = _id_number(w)
            try:
                who = await residents.find_by_number(
                    session=session, cipher=cipher, id_number=number
                )
            except NotFound:  # not registered yet
                who = await residents.create(
                    session=session,
                    cipher=cipher,
                    resident_in=ResidentCreate(
                        name=w.name,
                        id_number=number,
                        phone=f"1390574{w.seq:04d}",
                        community_id=point.id,
                    ),
                    created_by=worker.id,
                )
            ticket = await take_ticket(
                session=session,
                settings=settings,
                principal=principal,
                outbox=outbox,
                line_id=line.id,
                item_code=ITEM,
                site_id=point.id or 0,
                resident_id=who.id,
                consent=True,
            )
            since = now - dt.timedelta(minutes=w.minutes)
            ticket.waiting_since = ticket.created_at = ticket.consent_at = since
            session.add(ticket)
            case = await session.get(Case, ticket.case_id)
            if case is not None:
                case.created_at = case.updated_at = since
                session.add(case)
            added += 1
        await session.commit()
        return added

"""Test data builders: valid resident ID numbers and the demo district's ids."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.idnumber import check_char

DIVISION = "330299"  # the demo district's division code


def id_number(birth: dt.date, seq: int = 123, *, male: bool = True) -> str:
    """A checksum-valid 18-character ID number for a birth date (seq: 3 digits, parity = sex)."""
    seq = seq - seq % 2 + (1 if male else 0)
    first17 = f"{DIVISION}{birth:%Y%m%d}{seq % 1000:03d}"
    return first17 + check_char(first17)


def aged(years: int, seq: int = 123, *, male: bool = True) -> str:
    today = dt.date.today()
    birth = today.replace(year=today.year - years, day=min(today.day, 28)) - dt.timedelta(days=1)
    return id_number(birth, seq, male=male)


async def site_by_name(user: Any, name: str, kind: str) -> dict[str, Any]:
    sites = await (await user.get("/api/v1/sites", params={"kind": kind})).json()
    return next(s for s in sites if s["name"] == name)


async def site_by_code(user: Any, code: str) -> dict[str, Any]:
    for kind in ("district", "town", "community"):
        sites = await (await user.get("/api/v1/sites", params={"kind": kind})).json()
        for s in sites:
            if s["code"] == code:
                return s
    raise LookupError(code)

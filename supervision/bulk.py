"""Bulk writes for the statistics rollups and the generated history: COPY on PostgreSQL, one
executemany on SQLite, both inside the caller's transaction.

SQLAlchemy's executemany types and keys every value of every row; at millions of rows that is
most of the time. Here rows are tuples in the table's column order (or `columns`) of what the
driver stores: timestamps aware datetimes, days dates, JSON as text. On SQLite the timestamps,
days and booleans are spelled as SQLAlchemy spells them (timestamps are compared as text
there, so a bulk-written one must read exactly like one the ORM wrote).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import UTCDateTime

BATCH = 20_000


def _sqlite_timestamp(v: dt.datetime | None) -> str | None:
    if v is None:
        return None
    if v.utcoffset():
        v = v.astimezone(dt.UTC)
    return v.replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_date(v: dt.date | None) -> str | None:
    return None if v is None else v.isoformat()


def _sqlite_bool(v: bool | None) -> int | None:
    return None if v is None else int(v)


def _converters(table: sa.Table, names: Sequence[str]) -> list[tuple[int, Callable[[Any], Any]]]:
    """The columns SQLite stores differently from the Python value, with how."""
    out: list[tuple[int, Callable[[Any], Any]]] = []
    for i, name in enumerate(names):
        kind = table.c[name].type
        if isinstance(kind, UTCDateTime | sa.DateTime):
            out.append((i, _sqlite_timestamp))
        elif isinstance(kind, sa.Date):
            out.append((i, _sqlite_date))
        elif isinstance(kind, sa.Boolean):
            out.append((i, _sqlite_bool))
    return out


async def insert_rows(
    session: AsyncSession,
    table: sa.Table,
    rows: Iterable[Sequence[Any]],
    columns: Sequence[str] | None = None,
) -> int:
    """Insert rows (tuples in `columns` order, default: every column); how many were written."""
    names = list(columns or [c.name for c in table.columns])
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    n = 0
    batch: list[Sequence[Any]] = []
    postgres = conn.dialect.name == "postgresql"
    convert = [] if postgres else _converters(table, names)
    marks = ", ".join("?" for _ in names)
    cols = ", ".join(f'"{c}"' for c in names)
    sql = f'INSERT INTO "{table.name}" ({cols}) VALUES ({marks})'

    async def flush() -> None:
        if not batch:
            return
        if postgres:
            await raw.copy_records_to_table(table.name, records=batch, columns=names)
        else:
            if convert:
                values = []
                for r in batch:
                    v = list(r)
                    for i, f in convert:
                        v[i] = f(v[i])
                    values.append(v)
                await raw.executemany(sql, values)
            else:
                await raw.executemany(sql, batch)
        batch.clear()

    for row in rows:
        batch.append(row)
        n += 1
        if len(batch) >= BATCH:
            await flush()
    await flush()
    return n

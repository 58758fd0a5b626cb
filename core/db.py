"""Async database engine and sessions for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import DateTime, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import AppError

# SQLite waits this long for a write lock held by another connection before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the writer; synchronous=FULL: a committed case survives power
    # loss, not just a crash of the process.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()
    # Let SQLAlchemy, not the driver, emit BEGIN (see _sqlite_begin_immediate).
    dbapi_conn.isolation_level = None


def _sqlite_begin_immediate(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead
    # of failing on a read-to-write lock upgrade. The embedded profile is one process: this
    # serialisation is what makes "call next" atomic there.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An async engine configured for the backend named in the URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)
    event.listen(engine.sync_engine, "checkout", _drop_closed)
    return engine


def _drop_closed(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    # A liveness check with no round trip, in place of pool_pre_ping (a BEGIN and a ROLLBACK
    # before every transaction: a third of the queue's round trips). asyncpg learns that the
    # server closed a connection (a restart, an idle timeout) as soon as its socket does; the
    # pool then discards it and hands out another. A connection that dies while in use fails
    # that one request, which the pool also invalidates.
    driver = getattr(record, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise exc.DisconnectionError("connection closed by the server")


async def single_statements(session: AsyncSession) -> None:
    """The unit of work ahead writes only in statements that are atomic on their own.

    On PostgreSQL they then run without BEGIN and COMMIT, two round trips fewer for the
    queue's hot path. Call it before the first statement. SQLite keeps its transaction: its
    BEGIN IMMEDIATE is what serialises writers there.
    """
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


async def driver_fetchrow(session: AsyncSession, sql: str, *args: Any) -> Mapping[str, Any] | None:
    """PostgreSQL, after single_statements(): one statement straight through asyncpg.

    For the hot path's few statements, whose SQLAlchemy result handling (every column matched
    and typed on each execution) cost more CPU than the statement itself.
    """
    conn = await session.connection()
    options = conn.sync_connection.get_execution_options() if conn.sync_connection else {}
    if options.get("isolation_level") != "AUTOCOMMIT":
        raise RuntimeError("driver_fetchrow runs only in a single_statements() unit of work")
    raw = await conn.get_raw_connection()
    try:
        return await raw.driver_connection.fetchrow(sql, *args)  # type: ignore[union-attr]
    except asyncpg.IntegrityConstraintViolationError as e:
        # As SQLAlchemy reports it elsewhere, so callers catch one error on every backend.
        raise exc.IntegrityError(sql, args, e) from e


class Database:
    """The engine and a session factory; one per app, created and disposed in a cleanup context."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo, pool_size=pool_size)
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session; commit explicitly, anything uncommitted is rolled back on exit."""
        async with self.sessionmaker() as session:
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def keep_refusals(session: AsyncSession) -> AsyncIterator[None]:
    """Commit before an error whose writes must stay (see AppError.keep_changes): a failed
    login is counted, an expired session deleted, even though the request is refused."""
    try:
        yield
    except AppError as e:
        if e.keep_changes and session.in_transaction():
            await session.commit()
        raise

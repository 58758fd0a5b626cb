"""Test fixtures: every database test runs on SQLite and on PostgreSQL.

Each test gets its own database cloned from a template that is migrated (and, for the "demo"
dataset, seeded) once per session: a file copy on SQLite, CREATE DATABASE ... TEMPLATE on
PostgreSQL. In CI (CI=true) a missing PostgreSQL server fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy.engine import make_url

from core.settings import Settings


# CI services set CI to true, 1 or yes (any case); only an unset, empty or false-like value
# means a developer's machine, where missing servers are skipped instead of failing.
def in_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


IN_CI = in_ci(os.environ)
# Admin connection used to create and drop the per-test databases.
PG_ADMIN_URL = os.environ.get("CW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEMO_PASSWORD = "cloudwindow-demo"
BACKENDS = ("sqlite", "postgresql")


def run_sync(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine to completion on a fresh loop in a fresh thread (safe from any fixture)."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(fn())
        except BaseException as e:  # re-raised in the caller's thread
            out["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def base_settings(url: str, data_dir: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "data_dir": data_dir,
        "secret_key": "test-secret-key-not-for-production",
        # Cheap hashes keep the suite fast; production defaults are tested in test_staff.
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 64,
        "demo_password": DEMO_PASSWORD,
        "log_format": "text",
    }
    values.update(kw)
    return Settings(**values)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dataset(name): 'demo' (default) or 'empty' database")


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _asyncpg_url(dbname: str) -> str:
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=dbname)
    return url.render_as_string(hide_password=False)


class Templates:
    """Lazily built template databases, one per (backend, dataset), dropped at session end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.prefix = f"cwt_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.built: dict[tuple[str, str], str] = {}
        self.pg_databases: list[str] = []
        self.counter = itertools.count()
        self.pg_error: str | None = None
        self.pg_checked = False

    def require_pg(self) -> None:
        if not self.pg_checked:
            self.pg_checked = True
            try:
                run_sync(lambda: _pg_admin("SELECT 1"))
            except Exception as e:  # any connection failure
                self.pg_error = f"PostgreSQL at {PG_ADMIN_URL} unreachable: {e}"
        if self.pg_error:
            require_service(False, self.pg_error)

    def get(self, backend: str, dataset: str) -> str:
        key = (backend, dataset)
        if key not in self.built:
            self.built[key] = self._build(backend, dataset)
        return self.built[key]

    def _build(self, backend: str, dataset: str) -> str:
        from web.schema import upgrade_sync

        if dataset == "demo":
            empty = self.get(backend, "empty")
            url = self.clone(backend, empty, name=f"{self.prefix}_tpl_demo")
            run_sync(lambda: _seed(url, self.tmp))
            return url
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{self.tmp / 'template-empty.db'}"
        else:
            name = f"{self.prefix}_tpl_empty"
            run_sync(lambda: _pg_admin(f'CREATE DATABASE "{name}"'))
            self.pg_databases.append(name)
            url = _asyncpg_url(name)
        upgrade_sync(url)
        return url

    def clone(self, backend: str, template_url: str, name: str | None = None) -> str:
        name = name or f"{self.prefix}_{next(self.counter)}"
        if backend == "sqlite":
            src = Path(make_url(template_url).database or "")
            dst = self.tmp / f"{name}.db"
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{src}{suffix}").exists():
                    shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")
            return f"sqlite+aiosqlite:///{dst}"
        template = make_url(template_url).database
        run_sync(lambda: _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        self.pg_databases.append(name)
        return _asyncpg_url(name)

    def drop(self, backend: str, url: str) -> None:
        if backend == "sqlite":
            db = make_url(url).database or ""
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            return
        name = make_url(url).database
        run_sync(lambda: _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.pg_databases:
            self.pg_databases.remove(name)

    def close(self) -> None:
        for name in reversed(self.pg_databases):
            try:
                run_sync(lambda n=name: _pg_admin(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)'))
            except Exception:  # best effort at teardown
                pass


async def _seed(url: str, tmp: Path) -> None:
    from core.db import Database
    from core.staff import Passwords
    from web.demo.seed import seed_demo

    settings = base_settings(url, tmp)
    db = Database(url)
    try:
        await seed_demo(db, Passwords(settings), DEMO_PASSWORD, progress=False)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    t = Templates(tmp_path_factory.mktemp("db-templates"))
    yield t
    t.close()


def require_service(ok: bool, what: str) -> None:
    """Skip a test whose server is missing; in CI, fail instead (required tests must run)."""
    if not ok:
        if IN_CI:
            pytest.fail(f"{what} (required in CI)")
        pytest.skip(what)


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
        reachable, error = True, ""
    except Exception as e:  # any connection failure
        reachable, error = False, str(e)
    require_service(reachable, f"Redis at {REDIS_URL} unreachable: {error}")
    return REDIS_URL


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One SeaweedFS server for the session; each test that uses it gets its own bucket."""
    from tests import s3server

    try:
        server = s3server.start(tmp_path_factory.mktemp("seaweedfs"))
    except RuntimeError as e:
        require_service(False, f"SeaweedFS S3 server did not start: {e}")
        raise
    yield server
    server.stop()


@pytest.fixture(params=("local", "s3"))
def storage(request: pytest.FixtureRequest) -> str:
    """Which object store a test runs on; tests that take it run on both."""
    return request.param


@pytest.fixture
def storage_settings(storage: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if storage == "local":
        return {"storage_backend": "local"}
    server = request.getfixturevalue("s3_server")
    return {
        "storage_backend": "s3",
        "s3_endpoint_url": server.endpoint,
        "s3_access_key_id": server.access_key,
        "s3_secret_access_key": server.secret_key,
        "s3_bucket": f"cw-{uuid.uuid4().hex[:12]}",
    }


@pytest.fixture
def pg_demo_url(templates: Templates) -> Iterator[str]:
    """A fresh PostgreSQL database with the demo district (for multi-process tests)."""
    templates.require_pg()
    url = templates.clone("postgresql", templates.get("postgresql", "demo"))
    yield url
    templates.drop("postgresql", url)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, templates: Templates) -> str:
    if request.param == "postgresql":
        templates.require_pg()
    return request.param


@pytest.fixture
def db_url(request: pytest.FixtureRequest, backend: str, templates: Templates) -> Iterator[str]:
    marker = request.node.get_closest_marker("dataset")
    dataset = marker.args[0] if marker else "demo"
    url = templates.clone(backend, templates.get(backend, dataset))
    yield url
    templates.drop(backend, url)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return base_settings(db_url, tmp_path / "data")


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Any:
    from web.app import create_app

    return await aiohttp_client(create_app(settings))


class User:
    """A logged-in browser: its own cookie jar, and the CSRF header on every write."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.http = session
        self.base = base
        self.csrf = ""
        self.me: dict[str, Any] = {}

    async def login(self, username: str, password: str = DEMO_PASSWORD) -> aiohttp.ClientResponse:
        resp = await self.http.post(
            f"{self.base}/api/v1/auth/login", json={"username": username, "password": password}
        )
        if resp.status == 200:
            self.me = await resp.json()
            self.csrf = self.me["csrf_token"]
        return resp

    async def request(self, method: str, path: str, **kw: Any) -> aiohttp.ClientResponse:
        headers = dict(kw.pop("headers", {}) or {})
        if method.upper() in ("POST", "PUT", "PATCH", "DELETE") and self.csrf:
            headers.setdefault("X-CSRF-Token", self.csrf)
        return await self.http.request(method, f"{self.base}{path}", headers=headers, **kw)

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", path, **kw)


@pytest.fixture
async def as_user(client: Any) -> AsyncIterator[Callable[..., Coroutine[Any, Any, User]]]:
    """as_user("worker") -> a User logged in on the test server (anonymous with login=False)."""
    sessions: list[aiohttp.ClientSession] = []
    base = str(client.make_url("")).rstrip("/")

    async def make(username: str | None = None, password: str = DEMO_PASSWORD) -> User:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        user = User(http, base)
        if username:
            resp = await user.login(username, password)
            assert resp.status == 200, await resp.text()
        return user

    yield make
    for s in sessions:
        await s.close()


@pytest.fixture
async def sock(as_user: Any) -> AsyncIterator[Callable[..., Coroutine[Any, Any, Any]]]:
    """sock("clerk") -> a connected socket.io client of a freshly logged-in user."""
    from tests.signaling.helpers import Sock

    opened: list[Sock] = []

    async def make(username: str) -> Sock:
        s = Sock(await as_user(username))
        await s.connect()
        opened.append(s)
        return s

    yield make
    for s in opened:
        await s.close()

"""The `cloudwindow` command: serve, migrate, seed, demo, create-user, plan-visits, settings."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from core.db import Database
from core.errors import AppError
from core.models import Role
from core.settings import Settings, env_names
from web.schema import upgrade_sync

GC_YOUNG_THRESHOLD = 20_000


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as e:
        raise SystemExit(f"cloudwindow: bad settings: {e}") from None


def cmd_migrate(args: argparse.Namespace) -> int:
    s = _settings()
    upgrade_sync(s.effective_database_url, args.revision)
    print(f"migrated {_safe_url(s.effective_database_url)} to {args.revision}")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def _seed(s: Settings, progress: bool | None) -> object:
    from core.staff import Passwords
    from web.demo.seed import seed_demo

    db = Database(s.effective_database_url)
    try:
        passwords = await asyncio.to_thread(Passwords, s)
        return await seed_demo(db, passwords, s.demo_password, progress=progress)
    finally:
        await db.dispose()


def _print_logins(summary: object, s: Settings) -> None:
    from web.demo.seed import DemoSummary

    assert isinstance(summary, DemoSummary)
    if summary.created:
        counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
        print(f"演示区已创建 demo district created: {counts}")
    else:
        print("演示区已存在，未做改动 demo district already present; nothing changed")
    print(f"\n登录 Logins (密码 password: {summary.password})")
    for login in summary.logins:
        print(f"  {login.role.value:<17} {login.username:<12} {login.display_name} — {login.where}")
    print(f"\n打开 Open http://{s.host}:{s.port}/\n")


async def _history(s: Settings, days: int, per_year: int | None, *, fresh: bool = False) -> object:
    from sqlalchemy import text

    from web.demo.history import PER_YEAR, seed_history
    from web.demo.seed import is_seeded

    db = Database(s.effective_database_url)
    try:
        async with db.session() as session:
            if not await is_seeded(session):
                raise SystemExit("cloudwindow: history is for the demo district: seed --demo first")
            # A demo's first start (no server yet, no tickets): the faster bulk load is safe.
            empty = (await session.exec(text("SELECT count(*) FROM ticket"))).scalar_one() == 0  # type: ignore[call-overload]
        return await seed_history(
            db, s, days=days, per_year=per_year or PER_YEAR, bulk=fresh and empty
        )
    finally:
        await db.dispose()


def _print_history(summary: object) -> None:
    from web.demo.history import HistorySummary

    assert isinstance(summary, HistorySummary)
    print(
        f"历史数据 history: {summary.days} days, {summary.tickets} tickets, {summary.calls} calls, "
        f"{summary.ratings} ratings, {summary.transfers} transfers, {summary.clerks_added} clerks "
        f"added ({summary.skipped} days skipped); written in {summary.write_s:.1f} s, "
        f"statistics rolled up in {summary.rollup_s:.1f} s"
    )


def cmd_seed(args: argparse.Namespace) -> int:
    if not args.demo and args.history is None:
        print("nothing to seed: pass --demo and/or --history DAYS", file=sys.stderr)
        return 2
    s = _settings()
    if args.demo:
        summary = asyncio.run(_seed(s, False if args.no_progress else None))
        _print_logins(summary, s)
    if args.history is not None:
        _print_history(asyncio.run(_history(s, args.history, args.per_year)))
    return 0


def _serve(s: Settings) -> None:
    from httpapi.observability import configure_logging
    from web.app import create_app

    configure_logging(s)
    app = create_app(s)
    app.on_startup.append(_freeze_startup_objects)
    web.run_app(app, host=s.host, port=s.port, access_log=None, print=None)


async def _freeze_startup_objects(_app: web.Application) -> None:
    """Move everything alive after start-up (modules, app, pools) out of the collector's way.

    These objects live as long as the process; without this every full collection walks them
    again, which bench/signaling.py measured as the largest cost in the relay's CPU and p99.
    """
    gc.collect()
    gc.freeze()
    # A socket server allocates many short-lived objects per message; collecting the young
    # generation every 700 allocations (the default) mostly walks live connection state.
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def _with_address(s: Settings, args: argparse.Namespace) -> Settings:
    """--host and --port win over CLOUDWINDOW_HOST and CLOUDWINDOW_PORT."""
    changes = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    return Settings.model_validate({**s.model_dump(), **changes}) if changes else s


async def _live_queue(s: Settings) -> int:
    from web.demo.live import seed_live_queue

    db = Database(s.effective_database_url)
    try:
        return await seed_live_queue(db, s)
    finally:
        await db.dispose()


def cmd_serve(args: argparse.Namespace) -> int:
    s = _with_address(_settings(), args)
    print(f"serving on http://{s.host}:{s.port}/", flush=True)
    _serve(s)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    s = _with_address(_settings(), args)
    upgrade_sync(s.effective_database_url)
    summary = asyncio.run(_seed(s, None))
    if s.demo_history_days:
        # Past days without tickets only: the first start writes them all, later ones only
        # the days since (the statistics always have a few weeks to show).
        history = _history(s, s.demo_history_days, s.demo_history_per_year, fresh=True)
        _print_history(asyncio.run(history))
    added = asyncio.run(_live_queue(s))
    if added:
        print(
            f"今日排队 today's queue: {added} 人在高桥镇·民政等候，1 人已超过提醒时限 "
            f"{added} waiting at 高桥镇·民政, one past the wait-alert threshold"
        )
    _print_logins(summary, s)
    sys.stdout.flush()
    _serve(s)
    return 0


async def _create_user(s: Settings, args: argparse.Namespace, password: str) -> str:
    from core import staff
    from core.staff import Passwords, StaffCreate

    db = Database(s.effective_database_url)
    try:
        passwords = await asyncio.to_thread(Passwords, s)
        staff_in = StaffCreate(
            username=args.username,
            display_name=args.name or args.username,
            role=Role(args.role),
            password=password,
            skills=args.skill or [],
            site_codes=args.site or [],
            line_codes=args.line or [],
        )
        async with db.session() as session:
            row = await staff.create(session=session, passwords=passwords, staff_in=staff_in)
            await session.commit()
            return f"created {row.username} ({row.role}) id {row.id}"
    finally:
        await db.dispose()


def cmd_create_user(args: argparse.Namespace) -> int:
    s = _settings()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            print("passwords differ", file=sys.stderr)
            return 2
    try:
        print(asyncio.run(_create_user(s, args, password)))
    except AppError as e:
        print(f"cloudwindow: {e.message('zh')} / {e.message('en')}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"cloudwindow: {e}", file=sys.stderr)
        return 2
    return 0


def settings_markdown() -> str:
    """The table of docs/settings.md: variable, default, help."""
    rows = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = "(empty)" if field.default == "" else f"`{field.default!s}`"
        rows.append(f"| `CLOUDWINDOW_{name.upper()}` | {default} | {field.description} |")
    return "\n".join(rows)


def cmd_plan_visits(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from scheduler.planning.problem import Problem
    from scheduler.planning.solver import solve

    s = _settings()
    try:
        text = sys.stdin.read() if args.problem == "-" else Path(args.problem).read_text("utf-8")
    except OSError as e:
        print(f"cloudwindow: cannot read {args.problem}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        problem = Problem.model_validate_json(text)
    except ValidationError as e:
        for err in e.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(problem)"
            print(f"cloudwindow: {where}: {err['msg']}", file=sys.stderr)
        return 2
    seconds = args.seconds if args.seconds is not None else s.planner_seconds
    if not 0 < seconds <= 3600:
        print("cloudwindow: --seconds must be between 0 and 3600", file=sys.stderr)
        return 2
    print(solve(problem, seconds=seconds, seed=args.seed).model_dump_json(indent=2))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_markdown())
        return 0
    s = _settings()
    for name, field in Settings.model_fields.items():
        value = getattr(s, name)
        secret = "secret" in name or name.endswith("_token")  # credentials are not printed
        shown = "(set)" if secret and value else value
        print(f"CLOUDWINDOW_{name.upper()}={shown!s}  # {field.description}")
    return 0


def _port(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 65535):
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {raw!r}")
    return int(raw)


def _days(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 800):
        raise argparse.ArgumentTypeError(f"not a number of days (1-800): {raw!r}")
    return int(raw)


def _volume(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 20_000_000):
        raise argparse.ArgumentTypeError(f"not a number of tickets a year (1-20000000): {raw!r}")
    return int(raw)


def _address_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--host", help="address to bind (default: CLOUDWINDOW_HOST, 127.0.0.1)")
    sp.add_argument(
        "--port", type=_port, help="TCP port to listen on (default: CLOUDWINDOW_PORT, 8080)"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cloudwindow",
        description="云窗口 CloudWindow: remote video assist for local government services.",
        epilog=f"Settings come from the environment: {', '.join(env_names()[:3])}, … "
        "(see docs/settings.md or `cloudwindow settings`).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sp = sub.add_parser("serve", help="serve HTTP and socket.io", description="Serve the app.")
    _address_args(sp)
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser(
        "migrate",
        help="apply database migrations",
        description="Apply the checked-in Alembic migrations.",
    )
    sp.add_argument("--revision", default="head", help="target revision (default: head)")
    sp.set_defaults(func=cmd_migrate)

    sp = sub.add_parser("seed", help="load data", description="Load data into a migrated database.")
    sp.add_argument("--demo", action="store_true", help="the demo district (idempotent)")
    sp.add_argument(
        "--history",
        type=_days,
        metavar="DAYS",
        help="synthetic history of the demo district for the DAYS days before today (days that "
        "have tickets are left alone), with its statistics rollups",
    )
    sp.add_argument(
        "--per-year",
        type=_volume,
        metavar="N",
        help="tickets a year the history is scaled to (default 3,500,000, the deployed district)",
    )
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_seed)

    sp = sub.add_parser(
        "demo",
        help="migrate + seed --demo + serve",
        description="Migrate, seed the demo district, print logins and serve.",
    )
    _address_args(sp)
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser(
        "create-user",
        help="add a staff account",
        description="Add a staff account; the password is asked for twice.",
    )
    sp.add_argument("username")
    sp.add_argument(
        "--role", required=True, choices=[r.value for r in Role if r is not Role.resident]
    )
    sp.add_argument("--name", help="display name")
    sp.add_argument("--site", action="append", metavar="CODE", help="bind to a site (repeatable)")
    sp.add_argument("--line", action="append", metavar="CODE", help="bind to a line (repeatable)")
    sp.add_argument("--skill", action="append", help="an expert skill (repeatable)")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sp.set_defaults(func=cmd_create_user)

    sp = sub.add_parser(
        "plan-visits",
        help="plan home visits from a JSON problem",
        description="Read a home-visit planning problem (docs/planning.md) and print its plan "
        "as JSON: routes per staff member, unserved visits with reasons, totals.",
    )
    sp.add_argument(
        "--problem", required=True, metavar="FILE.json", help="the problem ('-': stdin)"
    )
    sp.add_argument(
        "--seconds", type=float, help="solver time (default: CLOUDWINDOW_PLANNER_SECONDS)"
    )
    sp.add_argument("--seed", type=int, default=1, help="random seed of the solver (default 1)")
    sp.set_defaults(func=cmd_plan_visits)

    sp = sub.add_parser(
        "settings",
        help="list settings in effect",
        description="Print every setting's value in effect (its default unless set in the "
        "environment) with its help.",
    )
    sp.add_argument("--markdown", action="store_true", help="the table for docs/settings.md")
    sp.set_defaults(func=cmd_settings)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

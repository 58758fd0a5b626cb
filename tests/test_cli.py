"""The `cloudwindow` command, run as a real process on a fresh SQLite data directory."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from core.models import STAFF_ROLES
from core.settings import Settings, env_names

ROOT = Path(__file__).resolve().parents[1]
DEMO_PASSWORD = "cli-demo-password"
GOOD_PASSWORD = "a-long-enough-password"


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDWINDOW_")}
    env.update(
        CLOUDWINDOW_DATA_DIR=str(data_dir),
        CLOUDWINDOW_PASSWORD_HASH_TIME_COST="1",
        CLOUDWINDOW_PASSWORD_HASH_MEMORY_KIB="64",
        PYTHONIOENCODING="utf-8",
    )
    env.update(extra)
    return env


def run(
    data_dir: Path, *args: str, stdin: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        cwd=ROOT,
        env=cli_env(data_dir, **extra),
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def staff_rows(data_dir: Path) -> dict[str, tuple[str, str, str]]:
    """username -> (role, display_name, password_hash), read straight from the SQLite file."""
    conn = sqlite3.connect(data_dir / "cloudwindow.db")
    try:
        rows = conn.execute("SELECT username, role, display_name, password_hash FROM staff")
        return {u: (r, d, h) for u, r, d, h in rows}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """migrate, then seed --demo twice, on one fresh data directory."""
    data_dir = tmp_path_factory.mktemp("cli-seeded")
    extra = {"CLOUDWINDOW_DEMO_PASSWORD": DEMO_PASSWORD}
    migrate = run(data_dir, "migrate", **extra)
    first = run(data_dir, "seed", "--demo", "--no-progress", **extra)
    second = run(data_dir, "seed", "--demo", "--no-progress", **extra)
    return {"dir": data_dir, "migrate": migrate, "first": first, "second": second}


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    ok(run(tmp_path, "migrate"))
    return tmp_path


# -- help


def test_help_lists_every_command(tmp_path: Path) -> None:
    out = ok(run(tmp_path, "--help"))
    assert "CloudWindow" in out
    for cmd in ("serve", "migrate", "seed", "demo", "create-user", "settings"):
        assert cmd in out
    assert "CLOUDWINDOW_HOST" in out
    assert "docs/settings.md" in out


@pytest.mark.parametrize(
    ("command", "purpose"),
    [
        ("serve", "Serve the app"),
        ("migrate", "Apply the checked-in Alembic migrations"),
        ("seed", "Load data into a migrated database"),
        ("demo", "Migrate, seed the demo district, print logins and serve"),
        ("create-user", "Add a staff account"),
        ("settings", "Print every setting's value in effect"),
    ],
)
def test_subcommand_help(tmp_path: Path, command: str, purpose: str) -> None:
    proc = run(tmp_path, command, "--help")
    out = ok(proc)
    assert out.startswith(f"usage: cloudwindow {command}")
    assert purpose in out
    assert not (tmp_path / "cloudwindow.db").exists()


def test_create_user_help_lists_roles(tmp_path: Path) -> None:
    out = ok(run(tmp_path, "create-user", "--help"))
    for role in STAFF_ROLES:
        assert role.value in out
    assert "--password-stdin" in out


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = run(tmp_path)
    assert proc.returncode == 2
    assert "usage: cloudwindow" in proc.stderr


# -- migrate and seed


def test_migrate_reports_database(seeded: dict[str, object]) -> None:
    data_dir = seeded["dir"]
    assert isinstance(data_dir, Path)
    out = ok(seeded["migrate"])  # type: ignore[arg-type]
    assert "migrated sqlite+aiosqlite:///" in out
    assert str((data_dir / "cloudwindow.db").resolve()) in out
    assert out.rstrip().endswith("to head")
    assert (data_dir / "cloudwindow.db").is_file()


def test_first_seed_creates_demo_district(seeded: dict[str, object]) -> None:
    out = ok(seeded["first"])  # type: ignore[arg-type]
    assert "demo district created" in out
    assert "nothing changed" not in out
    assert "staff " in out


def _login_lines(out: str) -> dict[str, str]:
    """role -> username from the printed login table."""
    logins: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in {r.value for r in STAFF_ROLES}:
            assert parts[0] not in logins, f"role {parts[0]} printed twice"
            logins[parts[0]] = parts[1]
    return logins


@pytest.mark.parametrize("which", ["first", "second"])
def test_seed_prints_one_login_per_role_and_password(seeded: dict[str, object], which: str) -> None:
    out = ok(seeded[which])  # type: ignore[arg-type]
    logins = _login_lines(out)
    assert set(logins) == {r.value for r in STAFF_ROLES}
    assert f"password: {DEMO_PASSWORD}" in out
    assert "http://127.0.0.1:8080/" in out


def test_printed_logins_work_with_printed_password(seeded: dict[str, object]) -> None:
    data_dir = seeded["dir"]
    assert isinstance(data_dir, Path)
    rows = staff_rows(data_dir)
    hasher = PasswordHasher()
    for role, username in _login_lines(ok(seeded["first"])).items():  # type: ignore[arg-type]
        assert username in rows, f"{username} printed but not in the database"
        assert rows[username][0] == role
        assert hasher.verify(rows[username][2], DEMO_PASSWORD)


def test_second_seed_changes_nothing(seeded: dict[str, object]) -> None:
    data_dir = seeded["dir"]
    assert isinstance(data_dir, Path)
    out = ok(seeded["second"])  # type: ignore[arg-type]
    assert "nothing changed" in out
    assert "demo district created" not in out
    before = len(staff_rows(data_dir))
    ok(run(data_dir, "seed", "--demo", "--no-progress"))
    assert len(staff_rows(data_dir)) == before


def test_seed_without_demo_flag_explains(migrated: Path) -> None:
    proc = run(migrated, "seed")
    assert proc.returncode == 2
    assert "--demo" in proc.stderr
    assert staff_rows(migrated) == {}


# -- create-user


def test_create_user_then_duplicate(migrated: Path) -> None:
    args = ("create-user", "alice", "--role", "clerk", "--name", "窗口 Alice", "--password-stdin")
    out = ok(run(migrated, *args, stdin=GOOD_PASSWORD + "\n"))
    assert out.startswith("created alice (clerk) id ")
    role, name, password_hash = staff_rows(migrated)["alice"]
    assert (role, name) == ("clerk", "窗口 Alice")
    assert PasswordHasher().verify(password_hash, GOOD_PASSWORD)

    again = run(migrated, *args, stdin=GOOD_PASSWORD + "\n")
    assert again.returncode == 1
    assert "Username alice already exists" in again.stderr
    assert "用户名 alice已存在" in again.stderr
    assert "Traceback" not in again.stderr
    assert list(staff_rows(migrated)) == ["alice"]


def test_create_user_display_name_defaults_to_username(migrated: Path) -> None:
    args = ("create-user", "bob", "--role", "admin", "--password-stdin")
    ok(run(migrated, *args, stdin=GOOD_PASSWORD + "\n"))
    assert staff_rows(migrated)["bob"][:2] == ("admin", "bob")


def test_create_user_short_password(migrated: Path) -> None:
    proc = run(
        migrated, "create-user", "carol", "--role", "clerk", "--password-stdin", stdin="short\n"
    )
    assert proc.returncode == 1
    assert "A password needs at least 10 characters" in proc.stderr
    assert "密码至少 10 位" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert staff_rows(migrated) == {}


def test_create_user_min_length_follows_setting(migrated: Path) -> None:
    proc = run(
        migrated,
        "create-user",
        "dave",
        "--role",
        "clerk",
        "--password-stdin",
        stdin="twelve-chars\n",
        CLOUDWINDOW_PASSWORD_MIN_LENGTH="16",
    )
    assert proc.returncode == 1
    assert "at least 16 characters" in proc.stderr


def test_create_user_unknown_role_is_usage_error(migrated: Path) -> None:
    proc = run(
        migrated, "create-user", "erin", "--role", "mayor", "--password-stdin", stdin="x" * 12
    )
    assert proc.returncode == 2
    assert "mayor" in proc.stderr
    assert staff_rows(migrated) == {}


# -- settings


@pytest.mark.parametrize(
    "args",
    [
        ("migrate",),
        ("seed", "--demo", "--no-progress"),
        ("create-user", "frank", "--role", "clerk", "--password-stdin"),
        ("serve",),
    ],
)
def test_unknown_env_var_is_rejected(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = run(tmp_path, *args, stdin=GOOD_PASSWORD + "\n", CLOUDWINDOW_BOGUS="1")
    assert proc.returncode != 0
    assert "CLOUDWINDOW_BOGUS" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "cloudwindow.db").exists()


def test_bad_setting_value_is_rejected(tmp_path: Path) -> None:
    proc = run(tmp_path, "migrate", CLOUDWINDOW_PORT="abc")
    assert proc.returncode != 0
    assert "port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_settings_lists_every_variable_with_its_value_in_effect(tmp_path: Path) -> None:
    out = ok(run(tmp_path, "settings", CLOUDWINDOW_PORT="8123"))
    lines = out.splitlines()
    assert len(lines) == len(env_names())
    in_effect = Settings.from_env(cli_env(tmp_path, CLOUDWINDOW_PORT="8123"))
    assert in_effect.port == 8123
    for var, (name, field) in zip(env_names(), Settings.model_fields.items(), strict=True):
        line = next((ln for ln in lines if ln.startswith(f"{var}=")), None)
        assert line is not None, f"{var} not listed"
        assert line.startswith(f"{var}={getattr(in_effect, name)!s}  # "), line
        assert field.description and field.description in line, name


def test_settings_command_rejects_unknown_variables(tmp_path: Path) -> None:
    proc = run(tmp_path, "settings", CLOUDWINDOW_BOGUS="1")
    assert proc.returncode != 0
    assert "CLOUDWINDOW_BOGUS" in proc.stderr


# -- serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_takes_host_and_port_over_the_environment(migrated: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=cli_env(migrated, CLOUDWINDOW_PORT="1"),  # the flag wins over the variable
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.2)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert f"serving on http://127.0.0.1:{port}/" in out
    assert "Traceback" not in err


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1"])
def test_serve_refuses_a_port_that_is_not_one(tmp_path: Path, port: str) -> None:
    proc = run(tmp_path, "serve", "--port", port)
    assert proc.returncode == 2
    assert "port" in proc.stderr and "Traceback" not in proc.stderr

"""Settings: documented in docs/settings.md, read from CLOUDWINDOW_* only when asked."""

from __future__ import annotations

import importlib
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

import core.settings
from core.settings import Settings, env_names

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
ROW = re.compile(r"^\|\s*`(CLOUDWINDOW_[A-Z0-9_]+)`\s*\|\s*(.*?)\s*\|")


def documented() -> dict[str, str]:
    """CLOUDWINDOW_ variable -> default cell of its table row in docs/settings.md."""
    rows: dict[str, str] = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} documented twice"
            rows[m.group(1)] = m.group(2)
    return rows


def doc_default(value: object) -> str:
    text = str(value)
    return f"`{text}`" if text else "(empty)"


# -- docs


def test_docs_table_is_found() -> None:
    assert len(documented()) >= 10


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_documented_with_default(name: str) -> None:
    docs = documented()
    var = f"CLOUDWINDOW_{name.upper()}"
    assert var in docs, f"{var} missing from docs/settings.md"
    assert docs[var] == doc_default(Settings.model_fields[name].default), var


def test_docs_list_no_unknown_variable() -> None:
    assert set(documented()) - set(env_names()) == set()
    every_mention = set(re.findall(r"CLOUDWINDOW_[A-Z0-9_]*[A-Z0-9]", DOCS.read_text("utf-8")))
    assert every_mention - set(env_names()) == set()


def test_env_names_follow_fields() -> None:
    assert env_names() == [f"CLOUDWINDOW_{n.upper()}" for n in Settings.model_fields]


# -- from_env


def test_from_empty_env_gives_defaults() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.host == "127.0.0.1"
    assert s.port == 8080
    assert s.data_dir == Path("var")
    assert s.database_url == ""
    assert s.secret_key == ""
    assert s.cookie_secure is False
    assert s.password_min_length == 10


def test_from_env_parses_strings() -> None:
    s = Settings.from_env(
        {
            "CLOUDWINDOW_PORT": "8081",
            "CLOUDWINDOW_COOKIE_SECURE": "true",
            "CLOUDWINDOW_DATABASE_ECHO": "1",
            "CLOUDWINDOW_DATA_DIR": "/srv/cw",
            "CLOUDWINDOW_LOG_FORMAT": "text",
        }
    )
    assert s.port == 8081
    assert s.cookie_secure is True
    assert s.database_echo is True
    assert s.data_dir == Path("/srv/cw")
    assert s.log_format == "text"


def test_from_env_ignores_other_variables() -> None:
    s = Settings.from_env({"PATH": "/bin", "HOME": "/root", "CLOUDWINDOWPORT": "1"})
    assert s == Settings()


def test_overrides_win_over_env() -> None:
    s = Settings.from_env({"CLOUDWINDOW_PORT": "8081"}, port=9000)
    assert s.port == 9000


def test_unknown_variable_is_named() -> None:
    with pytest.raises(ValueError, match="CLOUDWINDOW_FOO"):
        Settings.from_env({"CLOUDWINDOW_FOO": "1", "CLOUDWINDOW_PORT": "8081"})


def test_typo_of_real_setting_is_rejected() -> None:
    with pytest.raises(ValueError, match="CLOUDWINDOW_DATABASE_URI"):
        Settings.from_env({"CLOUDWINDOW_DATABASE_URI": "sqlite+aiosqlite:///x.db"})


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("CLOUDWINDOW_PORT", "abc"),
        ("CLOUDWINDOW_PORT", "70000"),
        ("CLOUDWINDOW_PORT", "0"),
        ("CLOUDWINDOW_COOKIE_SECURE", "maybe"),
        ("CLOUDWINDOW_LOG_FORMAT", "xml"),
        ("CLOUDWINDOW_PASSWORD_MIN_LENGTH", "4"),
    ],
)
def test_bad_value_raises(var: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings.from_env({var: value})
    assert var.removeprefix("CLOUDWINDOW_").lower() in str(info.value)


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.port = 9000  # type: ignore[misc]


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in env_names():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDWINDOW_PORT", "8123")
    assert Settings.from_env().port == 8123


@pytest.fixture
def restore_settings_module() -> Iterator[None]:
    """Undo a reload so other modules keep seeing the original Settings class."""
    saved = dict(vars(core.settings))
    yield
    vars(core.settings).update(saved)


@pytest.mark.usefixtures("restore_settings_module")
def test_import_reads_nothing_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDWINDOW_PORT", "abc")
    monkeypatch.setenv("CLOUDWINDOW_BOGUS", "1")
    reloaded = importlib.reload(core.settings)
    assert reloaded.Settings().port == 8080
    with pytest.raises(ValueError, match="CLOUDWINDOW_BOGUS"):
        reloaded.Settings.from_env()


# -- database URL and secret key


def test_effective_database_url_defaults_to_sqlite_under_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    expected = (tmp_path / "data" / "cloudwindow.db").resolve()
    assert s.effective_database_url == f"sqlite+aiosqlite:///{expected}"


def test_effective_database_url_of_relative_data_dir_is_absolute() -> None:
    url = Settings().effective_database_url
    assert url.startswith("sqlite+aiosqlite:////")
    assert url.endswith("/var/cloudwindow.db")


def test_explicit_database_url_is_kept() -> None:
    url = "postgresql+asyncpg://cw@db.example/cloudwindow"
    assert Settings(database_url=url).effective_database_url == url


def test_origins_are_split_and_trimmed() -> None:
    s = Settings(allowed_origins=" https://a.example/ , ,http://b.example:8080")
    assert s.origins == frozenset({"https://a.example", "http://b.example:8080"})
    assert Settings().origins == frozenset()


def test_secret_key_file_created_once_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    s = Settings(data_dir=data_dir)
    key = s.load_secret_key()
    path = data_dir / "secret.key"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert path.read_text().strip().encode() == key
    mtime = path.stat().st_mtime_ns
    assert s.load_secret_key() == key
    assert Settings(data_dir=data_dir).load_secret_key() == key
    assert path.stat().st_mtime_ns == mtime


def test_secret_keys_differ_between_data_dirs(tmp_path: Path) -> None:
    a = Settings(data_dir=tmp_path / "a").load_secret_key()
    b = Settings(data_dir=tmp_path / "b").load_secret_key()
    assert a != b


def test_explicit_secret_key_used_as_is(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, secret_key="shared-by-every-node")
    assert s.load_secret_key() == b"shared-by-every-node"
    assert not (tmp_path / "secret.key").exists()

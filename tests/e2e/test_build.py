"""The test hooks (window.__cw) are in the e2e build of the UI only, never in the production one."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import require_service
from tests.e2e.server import ROOT, UI_E2E

UI_DIST = ROOT / "web" / "ui" / "dist"
HOOK = "__cw"


def _scripts(build: Path, how: str) -> dict[str, str]:
    require_service((build / "index.html").exists(), f"{build.relative_to(ROOT)} missing ({how})")
    scripts = {p.name: p.read_text(encoding="utf-8") for p in (build / "assets").glob("*.js")}
    assert scripts, f"no scripts in {build / 'assets'}"
    return scripts


def test_production_bundle_has_no_test_hooks() -> None:
    scripts = _scripts(UI_DIST, "make ui")
    assert [name for name, text in scripts.items() if HOOK in text] == []


def test_e2e_bundle_has_the_test_hooks() -> None:
    scripts = _scripts(UI_E2E, "cd web/ui && npm run build:e2e")
    assert any(HOOK in text for text in scripts.values())

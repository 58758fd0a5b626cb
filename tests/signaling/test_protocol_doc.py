"""docs/protocol.md tells the truth: its reference matches the code, and every event is in it."""

from __future__ import annotations

import re
from pathlib import Path

from signaling.namespace import EVENTS, SERVER_EVENTS
from signaling.protocol_doc import BEGIN, END, reference

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"


def test_reference_section_is_current() -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == reference(), "run: python -m signaling.protocol_doc"


def test_every_event_the_server_emits_is_documented() -> None:
    emitted: set[str] = set()
    for path in [*(ROOT / "signaling").glob("*.py"), *(ROOT / "uploads").glob("*.py")]:
        emitted |= set(
            re.findall(r'_?emit\(\s*(?:[a-z_.]+,\s*)*"([a-z_]+:[a-z_]+)"', path.read_text())
        )
    assert {"material:uploaded", "material:reviewed", "material:requested"} <= emitted
    assert emitted, "no emits found: the pattern is stale"
    assert emitted <= set(SERVER_EVENTS), emitted - set(SERVER_EVENTS)


def test_every_client_event_has_a_section() -> None:
    text = DOC.read_text()
    for name in EVENTS:
        assert f"#### `{name}`" in text

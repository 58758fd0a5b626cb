"""docs/protocol.md tells the truth: its reference matches the code, and every event is in it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from core.events import Event
from signaling.handlers import EVENTS
from web.protocol_doc import BEGIN, END, reference, server_events

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"


def test_reference_section_is_current() -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == reference(), "run: python -m web.protocol_doc --write"


def test_every_client_event_has_a_section() -> None:
    text = DOC.read_text()
    for name in EVENTS:
        assert f"#### `{name}`" in text


def test_every_declared_event_is_in_the_reference() -> None:
    names = [e.name for e in server_events()]
    assert len(names) == len(set(names)), "two event types share a name"
    assert {"ticket:update", "call:signal", "expert:invited"} <= set(names)
    declared = {e.name for e in Event.declared()}
    assert declared <= set(names), declared - set(names)
    text = reference()
    for name in names:
        assert f"| `{name}` |" in text


def test_signaling_sends_only_declared_events_and_spells_no_room() -> None:
    declared = {e.name for e in server_events()}
    sources = {p: p.read_text() for p in (ROOT / "signaling").rglob("*.py")}
    raw = set()
    for text in sources.values():
        raw |= set(re.findall(r'emit\(\s*"([a-z_]+:[a-z_]+)"', text))
    # The SDP/ICE relay builds its message directly (the hot path); its type is declared.
    assert raw == {"call:signal"}, raw
    assert raw <= declared
    for path, text in sources.items():
        assert not re.search(r'f"(staff|resident|line|ticket|call|p|skill|case):\{', text), path


def _sample(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A minimal valid value for a JSON schema (required fields only)."""
    if "$ref" in schema:
        return _sample(defs[schema["$ref"].split("/")[-1]], defs)
    if "anyOf" in schema:
        return _sample(next(s for s in schema["anyOf"] if s.get("type") != "null"), defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _sample(props[k], defs) for k in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "string":
        if schema.get("format") == "date-time":
            return "2026-01-02T03:04:05Z"
        if schema.get("format") == "date":
            return "2026-01-02"
        return "x" * max(1, schema.get("minLength", 1))
    return None


@pytest.mark.parametrize("event", server_events(), ids=lambda e: e.name)
def test_every_event_round_trips_through_json(event: type[Event]) -> None:
    schema = event.model_json_schema()
    sample = _sample(schema, schema.get("$defs", {}))
    built = event.model_validate(sample)
    again = event.model_validate_json(built.model_dump_json())
    assert again == built
    assert again.payload() == built.payload()


def _section(text: str, event: str) -> str:
    start = text.index(f"#### `{event}`")
    return text[start : text.index("\n#### ", start + 1)]


def test_ticket_finish_documents_exactly_the_outcomes_it_accepts() -> None:
    from signaling.payloads import TicketFinish

    row = next(
        ln
        for ln in _section(reference(), "ticket:finish").splitlines()
        if ln.startswith("| `outcome`")
    )
    documented = set(re.findall(r"`([a-z_]+)`", row.removeprefix("| `outcome` |")))
    assert documented == {"completed", "accepted", "returned"}
    for outcome in documented:
        TicketFinish.model_validate({"ticket_id": 1, "outcome": outcome})
    with pytest.raises(ValueError):
        TicketFinish.model_validate({"ticket_id": 1, "outcome": "transferred"})
    assert "`case.materials_incomplete`" in _section(reference(), "ticket:finish")


def test_the_guide_answers_what_a_client_written_from_it_needs() -> None:
    text = DOC.read_text()
    guide = text[: text.index(BEGIN)]
    for needed in (
        "X-CSRF-Token",  # CSRF on the HTTP side of the flow
        "403 with code `csrf`",
        "**`site_id`**",  # how ticket:take's ids are picked
        "**`line_id`**",
        "GET /api/v1/lines?site_id=",
        "IceCandidate",  # the candidate shape and the end of gathering
        "sdpMLineIndex",
        '"end_of_candidates"',
        "`point`",  # every participant role
        "`resident`",
        "`clerk`",
        "`expert`",
        "also reaches the leaver",
        "POST /api/v1/cases/{id}/rating",  # rating: where, who, how often, the range
        "1 to 5, once",
        "community worker",
        "`case.materials_incomplete`",
        "`connect`, `disconnect`, `*`",
        "`control_characters`",
    ):
        assert needed in guide, needed

"""What every input must satisfy at the boundary (HTTP bodies, queries, paths, socket events).

- Ids are 32-bit INTEGER columns: a larger number can only be forged, and PostgreSQL would
  raise on the overflow, so every id field is bounded by `Id`.
- No control characters in text. PostgreSQL refuses NUL in text columns, SQLite would store
  it, and no person types one; tab, line feed and carriage return stay (notes have lines).
- Bounded nesting, so a crafted payload cannot exhaust the stack of a decoder or a walk.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import Field

from core.errors import Invalid

MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

# Deeper than any payload of ours (the deepest is 4); refused before a model sees it.
MAX_DEPTH = 32
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# In raw JSON a control character can only appear escaped (\u0000); the backslash itself must
# not be escaped ("\\u0000" is the six characters \u0000, which are harmless).
RAW_CONTROL = re.compile(rb"(?<!\\)(?:\\\\)*\\u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F]|7[fF])")


def _walk(value: Any, loc: tuple[str, ...], depth: int, found: list[dict[str, Any]]) -> None:
    if depth > MAX_DEPTH:
        found.append({"loc": list(loc), "msg": "nested too deeply", "type": "too_deep"})
        return
    if isinstance(value, str):
        if CONTROL.search(value):
            found.append(
                {"loc": list(loc), "msg": "control characters", "type": "control_characters"}
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(k, (*loc, "<key>"), depth + 1, found)
            _walk(v, (*loc, str(k)), depth + 1, found)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _walk(v, (*loc, str(i)), depth + 1, found)


def problems(value: Any, loc: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Where a decoded value breaks the boundary rules, as validation details."""
    found: list[dict[str, Any]] = []
    _walk(value, loc, 0, found)
    return found


def check(value: Any, loc: tuple[str, ...] = ()) -> None:
    """Raise 422 with the offending fields unless the value keeps the boundary rules."""
    found = problems(value, loc)
    if found:
        raise Invalid(found[0]["type"], details=found)


def check_json_bytes(raw: bytes) -> None:
    """The same rules for a JSON body that has already parsed; cheap when it is clean."""
    if RAW_CONTROL.search(raw):
        check(json.loads(raw), ("body",))


def check_text(text: str, loc: tuple[str, ...]) -> None:
    if CONTROL.search(text):
        raise Invalid(
            "control_characters",
            details=[{"loc": list(loc), "msg": "control characters", "type": "control_characters"}],
        )

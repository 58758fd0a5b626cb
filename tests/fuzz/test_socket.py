"""Malformed payloads for every declared socket event, and the names socket.io keeps for itself.

The payloads are made from each event's declared payload type (signaling.handlers.EVENTS): a
valid one built from the live state of a call (its ids, the clerk's ticket), then one field at
a time replaced by something wrong (a wrong type, a missing field, an id of 2^31 or 2^63, a
negative number, NUL and control characters, deep nesting, a long string, a list for an
object, null), and the whole payload replaced by something that is not an object. They go
over real socket.io connections of every role, as raw frames. Every ack must be `ok` or one
of the errors documented for that event, never `internal`; reserved event names answer
`socket.unknown_event` and change nothing. The inputs are enumerated, not drawn at random.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from core.access import POLICY
from core.models import Role
from core.settings import Settings
from signaling.handlers import EVENTS
from signaling.handlers.spec import EventSpec
from signaling.views import SIGNALING
from tests.conftest import User
from tests.factories import aged
from tests.fuzz.conftest import assert_no_tracebacks
from tests.signaling.helpers import RawSocket, cookie_of, gaoqiao_setup, take_payload
from tests.signaling.test_bad_input import db_state
from tests.signaling.test_self_service import PHONE, resident_device

__all__ = ["resident_device"]  # the fixture

# Any event may answer these (docs/protocol.md, "Acks and errors"), besides its own errors.
EVERY_EVENT = frozenset(
    {"validation", "control_characters", "too_deep", "rate_limited", "forbidden_role"}
)
ROLES: tuple[tuple[str, Role], ...] = (
    ("clerk", Role.clerk),
    ("worker", Role.community_worker),
    ("expert", Role.expert),
    ("supervisor", Role.supervisor),
    ("coordinator", Role.coordinator),
    ("courier", Role.courier),
    ("operator", Role.operator),
    ("field.t07", Role.field_staff),
    ("admin", Role.admin),
    ("resident", Role.resident),
)
# Valid payloads of these end the live call or its ticket, so they go after the others.
ENDINGS = frozenset({"ticket:transfer", "ticket:finish", "ticket:cancel", "call:leave"})
MAX_ID = 2**31 - 1
ACK_TIMEOUT_S = 5


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


# What replaces one field. Ids of 2^31 and more overflow PostgreSQL's INTEGER, and 2^63 and
# more SQLite's; MAX_ID is valid and belongs to nothing.
FIELD_MUTANTS: tuple[Any, ...] = (
    None,
    True,
    -1,
    0,
    MAX_ID,
    2**31,
    2**63,
    2**64 + 1,
    -(2**63) - 1,
    1.5,
    "1",
    "",
    "a\x00b",
    "\x07\x1b[2J",
    "\u202e\U0002000b" * 3,
    "长" * 20_000,
    [],
    {},
    [1, "x", None],
    {"$gt": 1},
    nested(40),
)
# Fewer for the roles that are not the event's first sender (they mostly meet forbidden_role).
FEW_FIELD_MUTANTS: tuple[Any, ...] = ("a\x00b", 2**63, [])
# What replaces the whole payload.
PAYLOAD_MUTANTS: tuple[Any, ...] = (
    None,
    [],
    [{}],
    "state",
    "\x00",
    0,
    2**63,
    True,
    nested(40),
    nested(63),
    {"": None},
    {"\x00": 1},
)
# Names socket.io, engine.io and their clients keep for themselves, and names that are not
# names: none may reach a handler.
RESERVED_NAMES: tuple[Any, ...] = (
    "connect",
    "disconnect",
    "*",
    "message",
    "connect_error",
    "disconnecting",
    "error",
    "ping",
    "pong",
    "newListener",
    "removeListener",
    "__proto__",
    "constructor",
    "",
    "\x00",
    "state:sync\x00",
    "x" * 10_000,
    None,
    1,
    [],
    {},
)
RESERVED_PAYLOADS: tuple[tuple[Any, ...], ...] = (
    (),
    ({},),
    ("junk",),
    ({"HTTP_COOKIE": "cw_session=forged"},),
    ("client disconnect",),
    ("ticket:take", {}),
)


def valid_value(name: str, prop: dict[str, Any], defs: dict[str, Any], ids: dict[str, Any]) -> Any:
    """A value of the declared type, taken from the live state when the field names one."""
    if name in ids:
        return ids[name]
    if prop.get("default") is not None or (
        "default" in prop and not any("$ref" in p for p in prop.get("anyOf", []))
    ):
        return prop["default"]  # an optional field left out, except an object (it is built)
    if "$ref" in prop:
        target = defs[prop["$ref"].split("/")[-1]]
        if "enum" in target:
            return target["enum"][0]
        return valid_object(target, defs, ids)
    if "anyOf" in prop:
        return valid_value(name, next(p for p in prop["anyOf"] if p != {"type": "null"}), defs, ids)
    if "const" in prop:
        return prop["const"]
    if "enum" in prop:
        return prop["enum"][0]
    kind = prop.get("type")
    if kind == "integer":
        return max(1, prop.get("minimum", 1))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "array":
        return [valid_value(name, prop.get("items", {}), defs, ids)]
    if kind == "string":
        if name == "sdp":
            return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        return "x" * max(1, prop.get("minLength", 1))
    return 1


def valid_object(schema: dict[str, Any], defs: dict[str, Any], ids: dict[str, Any]) -> dict:
    return {
        name: valid_value(name, prop, defs, ids)
        for name, prop in schema.get("properties", {}).items()
    }


def payloads(model: type[BaseModel], ids: dict[str, Any], full: bool) -> Iterator[Any]:
    """The malformed payloads of one event type, and last the valid one they come from."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    valid = valid_object(schema, defs, ids)
    mutants = FIELD_MUTANTS if full else FEW_FIELD_MUTANTS
    for name, value in valid.items():
        yield {k: v for k, v in valid.items() if k != name}  # missing
        for bad in mutants:
            yield {**valid, name: bad}
        if isinstance(value, dict) and full:  # an object inside: each of its fields too
            for sub in value:
                for bad in mutants:
                    yield {**valid, name: {**value, sub: bad}}
    yield {**valid, "unexpected": 1}
    yield from PAYLOAD_MUTANTS if full else PAYLOAD_MUTANTS[:3]
    yield valid  # last: it may end what the others were sent to (a call, a ticket)


def in_order(events: dict[str, EventSpec]) -> list[EventSpec]:
    """The declared events, those that end the call or the ticket last."""
    return sorted(events.values(), key=lambda spec: spec.name in ENDINGS)


def first_sender(spec: EventSpec) -> str:
    """The role that gets every payload of an event: the first of ROLES the policy allows."""
    allowed = POLICY[spec.action] if spec.action else frozenset(Role)
    return next(name for name, role in ROLES if role in allowed)


def problem(ack: Any, documented: frozenset[str]) -> str | None:
    """What is wrong with an ack, or None when it is `ok` or a documented error."""
    if not isinstance(ack, dict) or not isinstance(ack.get("ok"), bool):
        return "not an ack"
    if ack["ok"]:
        return None
    error = ack.get("error")
    if not isinstance(error, dict):
        return "no error object"
    for key in ("code", "message", "message_en"):
        if not isinstance(error.get(key), str) or not error[key]:
            return f"error.{key} missing"
    if error["code"] not in documented:
        return f"undocumented error {error['code']}"
    return None


def short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 160 else text[:160] + "..."


async def ack_of(raw: RawSocket, event: Any, *args: Any) -> Any:
    try:
        return await asyncio.wait_for(raw.call(event, *args), ACK_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(f"no ack within {ACK_TIMEOUT_S} s: {short([event, *args])}") from None


async def open_sockets(
    as_user: Any, resident_device: Any
) -> tuple[dict[str, User], dict[str, RawSocket]]:
    """A raw socket.io connection of every role (the resident signed in on a phone)."""
    users: dict[str, User] = {}
    for name, _role in ROLES:
        if name != "resident":
            users[name] = await as_user(name)
    number = aged(72, 902)
    resp = await users["clerk"].post(
        "/api/v1/residents", json={"name": "陈阿婆", "id_number": number, "phone": PHONE}
    )
    assert resp.status == 201, await resp.text()
    users["resident"] = await resident_device(number)
    socks = {n: await RawSocket(u.base, cookie_of(u)).connect() for n, u in users.items()}
    return users, socks


async def live_call(users: dict[str, User], socks: dict[str, RawSocket]) -> dict[str, Any]:
    """A ticket taken at the worker's point, called by the clerk, answered: a live call; its
    ids are the values the payloads start from."""
    setup = await gaoqiao_setup(users["worker"])
    worker, clerk = socks["worker"], socks["clerk"]
    taken = await ack_of(worker, "ticket:take", take_payload(setup, None))
    assert taken["ok"], taken
    called = await ack_of(clerk, "queue:call_next", {})
    assert called["ok"], called
    answered = await ack_of(worker, "ticket:answer", {"ticket_id": taken["data"]["id"]})
    assert answered["ok"], answered
    join = called["data"]["call"]
    return {
        "call_id": join["call_id"],
        "ticket_id": taken["data"]["id"],
        "to": answered["data"]["call"]["participant_id"],
        "participant_id": answered["data"]["call"]["participant_id"],
        "resume_token": join["resume_token"],
        "line_id": setup["line"]["id"],
        "line_ids": [setup["line"]["id"]],
        "site_id": setup["point"]["id"],
        "item_code": setup["item"]["code"],
        "skill": "社会救助政策",
        "consent": True,
    }


async def test_reserved_names_answer_unknown_event_and_change_nothing(
    client: Any, as_user: Any, resident_device: Any, settings: Settings, server_log: Any
) -> None:
    _users, socks = await open_sockets(as_user, resident_device)
    sg = client.server.app[SIGNALING]
    try:
        before = (await db_state(settings), len(sg.conns), dict(sg.presence_sockets))
        found = []
        for role, raw in socks.items():
            for name in RESERVED_NAMES:
                for args in RESERVED_PAYLOADS:
                    ack = await ack_of(raw, name, *args)
                    if problem(ack, frozenset({"socket.unknown_event"})):
                        found.append(f"{role} {short([name, *args])}: {short(ack)}")
        assert found == [], "\n".join(found)
        after = (await db_state(settings), len(sg.conns), dict(sg.presence_sockets))
        assert after == before
        for raw in socks.values():
            assert (await ack_of(raw, "state:sync", {}))["ok"]
    finally:
        for raw in socks.values():
            await raw.close()
    assert_no_tracebacks(server_log)


async def test_every_event_answers_malformed_payloads_with_a_documented_error(
    client: Any, as_user: Any, resident_device: Any, server_log: Any
) -> None:
    users, socks = await open_sockets(as_user, resident_device)
    try:
        ids = await live_call(users, socks)
        found: dict[tuple[str, str, str], str] = {}
        sent = 0
        for spec in in_order(EVENTS):
            documented = EVERY_EVENT | set(spec.errors)
            first = first_sender(spec)
            for role, raw in socks.items():
                for payload in payloads(spec.payload, ids, full=role == first):
                    ack = await ack_of(raw, spec.name, payload)
                    sent += 1
                    wrong = problem(ack, documented)
                    if wrong is not None:
                        found.setdefault(
                            (spec.name, role, wrong),
                            f"{spec.name} as {role}: {wrong}: {short(payload)} -> {short(ack)}",
                        )
        assert found == {}, "\n".join(found.values())
        assert sent > 1000
    finally:
        for raw in socks.values():
            await raw.close()
    assert_no_tracebacks(server_log)

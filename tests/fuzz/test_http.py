"""schemathesis against /api/v1/openapi.json of a running app, for every role of the demo.

Every operation gets a pool of generated requests, valid and invalid ones alike, from a fixed
seed; each role sends its own slice of the pool. Signed-in roles send their session and CSRF
token, so writes reach the handlers; one more clerk session sends forged CSRF tokens.
Every answer must be below 500, and every error a JSON `{"error": {"code", "message", ...}}`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import User
from tests.factories import aged
from tests.fuzz.conftest import SEED, assert_no_tracebacks
from tests.signaling.test_self_service import PHONE, resident_device

__all__ = ["resident_device"]  # the fixture

STAFF_ROLES = (
    "worker",
    "clerk",
    "expert",
    "supervisor",
    "coordinator",
    "courier",
    "operator",
    "field.t07",
    "admin",
)
# Generated requests per operation and kind (valid, invalid), and how many of them each role
# sends: every role gets a different slice, so the pool is covered with few requests. A signed-in
# request costs the app ~12 ms on this machine, which is what bounds these numbers.
POOL = 4
PER_CALLER = 2
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What a forged write sends as X-CSRF-Token: nothing, another text, bytes that are not ASCII
# (UTF-8 as a client sends it, read as Latin-1 on the wire). Control characters in a header
# never reach the app: aiohttp's parser answers them 400 itself.
FORGED_TOKENS: tuple[dict[str, str], ...] = (
    {},
    {"X-CSRF-Token": "not-the-token"},
    {"X-CSRF-Token": "令牌".encode().decode("latin-1")},
    {"X-CSRF-Token": "\xff" * 43},
)
REQUEST_TIMEOUT_S = 15


@dataclass
class Caller:
    """Who sends: the cookies and headers of one signed-in role (nothing when anonymous)."""

    role: str
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    forged_csrf: bool = False  # send FORGED_TOKENS instead of the session's CSRF token

    @classmethod
    def of(cls, role: str, user: User, resident: bool = False) -> Caller:
        cookies = {c.key: c.value for c in user.http.cookie_jar}
        if resident:
            # A resident has no staff session; the generated staff cookie must not win.
            cookies.setdefault("cw_session", "")
        return cls(role, cookies, {"X-CSRF-Token": user.csrf})


def error_shape(resp: Any) -> str | None:
    """What is wrong with an error answer, or None when it is the documented shape."""
    content_type = (resp.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/json"):
        return f"Content-Type {content_type!r}"
    try:
        body = resp.json()
    except ValueError:
        return "not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "no error object"
    for key in ("code", "message"):
        if not isinstance(error.get(key), str) or not error[key]:
            return f"error.{key} missing"
    return None


def verdict(resp: Any) -> str | None:
    """What is wrong with an answer, or None."""
    if resp.status_code >= 500:
        return f"{resp.status_code}"
    if "Traceback" in resp.text:
        return "a traceback in the body"
    if resp.status_code >= 400:
        return error_shape(resp)
    return None


def refused_before_the_handler(resp: Any) -> bool:
    """Not signed in, or a role the policy refuses: no other input would get further."""
    if resp.status_code not in (401, 403):
        return False
    return resp.json()["error"]["code"] in ("unauthenticated", "forbidden_role")


def refused_for_csrf(resp: Any) -> bool:
    return resp.status_code == 403 and resp.json()["error"]["code"] == "csrf"


def order(operation: Any) -> tuple[int, str]:
    """Logging out last, so the other operations run signed in."""
    return (1 if operation.path.endswith("/logout") else 0, operation.label)


class CasePool:
    """The generated requests of every operation, made once and sent on both backends:
    POOL valid and POOL invalid ones per operation, interleaved, from the fixed seed."""

    def __init__(self) -> None:
        self.operations: list[Any] = []
        self.cases: dict[str, list[Any]] = {}

    def load(self, url: str) -> None:
        if not self.operations:
            schema = schemathesis.openapi.from_url(url, timeout=REQUEST_TIMEOUT_S)
            self.operations = sorted((r.ok() for r in schema.get_all_operations()), key=order)

    def of(self, operation: Any) -> list[Any]:
        if operation.label not in self.cases:
            valid, invalid = (self._generate(operation, mode) for mode in GenerationMode)
            # Valid ones at even places: there are always as many, or more.
            pairs = itertools.zip_longest(valid, invalid[: len(valid)])
            self.cases[operation.label] = [c for pair in pairs for c in pair if c is not None]
        return self.cases[operation.label]

    @staticmethod
    def _generate(operation: Any, mode: GenerationMode) -> list[Any]:
        cases: list[Any] = []

        @hypothesis.settings(
            max_examples=POOL,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.seed(SEED)
        @hypothesis.given(case=operation.as_strategy(mode))
        def collect(case: Any) -> None:
            cases.append(case)

        try:
            collect()
        except Unsatisfiable:
            pass  # no invalid request exists for an operation that takes no input
        return cases


def planned(
    caller: Caller, index: int, cases: list[Any], public: bool, unsafe: bool
) -> list[tuple[Any, dict[str, str]]]:
    """The requests one caller sends to one operation, with the headers of each."""
    if caller.forged_csrf:
        # With valid requests (an invalid path is not routed at all); the check comes first.
        valid = cases[::2]
        return [(valid[k % len(valid)], t) for k, t in enumerate(FORGED_TOKENS)] if unsafe else []
    if public:
        return [(case, caller.headers) for case in cases]
    start = index * PER_CALLER
    return [(cases[(start + k) % len(cases)], caller.headers) for k in range(PER_CALLER)]


def fuzz(pool: CasePool, base: str, callers: list[Caller]) -> tuple[list[str], Counter[int]]:
    """Send the generated requests (blocking: runs in a thread beside the app's loop).

    A public operation gets the whole pool once (it ignores sessions). A signed-in one gets
    PER_CALLER requests from each caller, a different slice for each; a caller refused before
    the handler (not signed in, a role the policy refuses) sends only its first. Each write
    with a forged CSRF token must answer 403 `csrf`.
    """
    pool.load(f"{base}/api/v1/openapi.json")
    found: dict[tuple[str, str, str], str] = {}
    statuses: Counter[int] = Counter()
    sessions = {c.role: requests.Session() for c in callers}
    try:
        for operation in pool.operations:
            cases = pool.of(operation)
            public = not operation.definition.raw.get("security")
            unsafe = operation.method.upper() in UNSAFE
            for i, caller in enumerate(callers[:1] if public else callers):
                for case, headers in planned(caller, i, cases, public, unsafe):
                    resp = case.call(
                        base_url=base,
                        session=sessions[caller.role],
                        headers=headers,
                        cookies=caller.cookies,
                        timeout=REQUEST_TIMEOUT_S,
                    )
                    statuses[resp.status_code] += 1
                    wrong = verdict(resp)
                    if wrong is None and caller.forged_csrf and not refused_for_csrf(resp):
                        wrong = f"{resp.status_code} with a forged CSRF token"
                    if wrong is not None:
                        found.setdefault(
                            (operation.label, caller.role, wrong),
                            f"{operation.label} as {caller.role}: {wrong}: {resp.text[:300]}\n"
                            f"    {case.as_curl_command(headers=headers)}",
                        )
                    elif refused_before_the_handler(resp):
                        break
    finally:
        for http in sessions.values():
            http.close()
    return list(found.values()), statuses


@pytest.fixture(scope="session")
def case_pool() -> CasePool:
    return CasePool()


async def test_no_request_of_any_role_gets_a_server_error(
    client: Any, as_user: Any, resident_device: Any, case_pool: CasePool, server_log: Any
) -> None:
    callers = [Caller("anonymous")]
    for role in STAFF_ROLES:
        callers.append(Caller.of(role, await as_user(role)))
    clerk = await as_user("clerk")
    number = aged(72, 901)
    resp = await clerk.post(
        "/api/v1/residents", json={"name": "陈阿婆", "id_number": number, "phone": PHONE}
    )
    assert resp.status == 201, await resp.text()
    callers.append(Caller.of("resident", await resident_device(number), resident=True))
    forger = Caller.of("clerk", clerk).cookies
    callers.append(Caller("clerk, forged CSRF token", forger, forged_csrf=True))

    base = str(client.make_url("")).rstrip("/")
    found, statuses = await asyncio.to_thread(fuzz, case_pool, base, callers)
    assert found == [], "\n".join(found)
    assert_no_tracebacks(server_log)
    # The roles stayed signed in (logging out ran last): requests reached the handlers.
    assert statuses[200] > 50 and statuses[422] > 50, statuses

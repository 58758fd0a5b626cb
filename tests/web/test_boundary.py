"""Control characters and out-of-range ids are refused at the boundary with a 422, on both
backends, before anything is stored (PostgreSQL used to answer 500 for a NUL)."""

from __future__ import annotations

import pytest

from core import inputs
from tests.conftest import User
from tests.web.test_errors import API, expect_error, id_number, raw_post, unchanged

__all__ = [
    "unchanged"
]  # the fixture: bad writes leave residents, cases and the audit log as they were

NUL_TEXTS = ("张\x00三", "bell\x07", "esc\x1b[31m", "del\x7f")


@pytest.fixture
async def clerk(as_user: object) -> User:
    return await as_user("clerk")  # type: ignore[operator]


@pytest.fixture
async def worker(as_user: object) -> User:
    return await as_user("worker")  # type: ignore[operator]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("text", NUL_TEXTS)
async def test_control_characters_in_a_body_name_the_field(clerk: User, text: str) -> None:
    for field in ("name", "address"):
        body = {"name": "张三", "id_number": id_number(1), field: text}
        resp = await clerk.post(f"{API}/residents", json=body)
        err = await expect_error(resp, 422, "control_characters")
        assert [d["loc"] for d in err["details"]] == [["body", field]], err


@pytest.mark.usefixtures("unchanged")
async def test_control_characters_elsewhere_in_a_request(clerk: User, as_user: object) -> None:
    resp = await clerk.get(f"{API}/items", params={"q": "食品\x00"})
    await expect_error(resp, 422, "control_characters")
    resp = await clerk.get(f"{API}/items", params={"department": "civil\x00"})
    await expect_error(resp, 422, "control_characters")
    resp = await clerk.get(f"{API}/items/%00")
    await expect_error(resp, 422, "control_characters")
    resp = await clerk.post(
        f"{API}/cases", json={"item_code": "MZ-001", "site_id": 1, "note": "a\x00"}
    )
    await expect_error(resp, 422, "control_characters")
    user = await as_user()  # type: ignore[operator]
    resp = await user.login("clerk\x00", "whatever-password")
    await expect_error(resp, 422, "control_characters")


async def test_lines_tabs_and_escaped_backslashes_are_kept(clerk: User) -> None:
    """What people do type stays: line breaks in an address, and a literal backslash-u."""
    body = {"name": "张三", "id_number": id_number(1), "address": "一单元\n\t302室 \\u0000"}
    resp = await clerk.post(f"{API}/residents", json=body)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["address"] == "一单元\n\t302室 \\u0000"


@pytest.mark.usefixtures("unchanged")
async def test_ids_out_of_range_are_refused(clerk: User, worker: User) -> None:
    for big in (2**31, 2**63, 2**64 + 1):
        body = {"name": "张三", "id_number": id_number(1), "community_id": big}
        resp = await clerk.post(f"{API}/residents", json=body)
        err = await expect_error(resp, 422, "validation")
        assert [d["loc"] for d in err["details"]] == [["community_id"]], err
        for field in ("site_id", "resident_id"):
            case = {"item_code": "MZ-001", "site_id": 1, field: big}
            resp = await worker.post(f"{API}/cases", json=case)
            err = await expect_error(resp, 422, "validation")
            assert [d["loc"] for d in err["details"]] == [[field]], err


@pytest.mark.usefixtures("unchanged")
async def test_deeply_nested_bodies_are_refused(clerk: User) -> None:
    raw = b'{"name": ' + b"[" * 970 + b"]" * 970 + b"}"
    resp = await raw_post(clerk, f"{API}/residents", raw, "application/json")
    assert resp.status in (400, 422), await resp.text()
    assert "Traceback" not in await resp.text()


def test_the_walk_reports_every_offending_place() -> None:
    found = inputs.problems({"a": ["ok", "x\x00"], "b\x01": {"c": "fine\n"}})
    assert {tuple(d["loc"]) for d in found} == {("a", "1"), ("<key>",)}
    deep: object = "x"
    for _ in range(inputs.MAX_DEPTH + 2):
        deep = [deep]
    assert [d["type"] for d in inputs.problems(deep)] == ["too_deep"]

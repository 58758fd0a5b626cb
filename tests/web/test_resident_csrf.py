"""A resident's phone session is held to the same CSRF rule as staff sessions."""

from __future__ import annotations

from typing import Any

from tests.conftest import User
from tests.factories import aged
from tests.signaling.test_self_service import PHONE, resident_device
from tests.web.test_errors import expect_error

__all__ = ["resident_device"]  # the fixture


async def test_resident_writes_need_the_csrf_token(as_user: Any, resident_device: Any) -> None:
    clerk = await as_user("clerk")
    number = aged(72, 401)
    resp = await clerk.post(
        "/api/v1/residents", json={"name": "陈阿婆", "id_number": number, "phone": PHONE}
    )
    assert resp.status == 201, await resp.text()
    phone: User = await resident_device(number)

    # Without the token (a forged form or script on another page): refused, still signed in.
    resp = await phone.http.post(f"{phone.base}/api/v1/resident-auth/logout")
    await expect_error(resp, 403, "csrf")
    resp = await phone.http.post(
        f"{phone.base}/api/v1/resident-auth/logout", headers={"X-CSRF-Token": "not-the-token"}
    )
    await expect_error(resp, 403, "csrf")
    assert (await phone.get("/api/v1/resident-auth/me")).status == 200

    # With the token the page echoes, the same request goes through.
    assert (await phone.post("/api/v1/resident-auth/logout")).status == 200
    assert (await phone.get("/api/v1/resident-auth/me")).status == 401

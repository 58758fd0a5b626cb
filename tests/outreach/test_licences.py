"""The licence register over HTTP on SQLite and PostgreSQL: imports from CSV and XLSX (row by
row errors, all or nothing, oversize and bombs refused), who sees what, policies, and the
resident's own reminders page API."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from typing import Any

import aiohttp
import openpyxl
import pytest
from sqlalchemy import text

from core.db import Database
from core.settings import Settings
from tests.conftest import User, base_settings
from tests.factories import aged, id_number, site_by_code

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = "证照编号,证照类型,持证人,身份证号,手机号,发证日期,到期日期"


def today() -> dt.date:
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()


def ahead(days: int) -> str:
    return (today() + dt.timedelta(days=days)).isoformat()


def person(seq: int, years: int = 45) -> str:
    return aged(years, seq)


async def sql(settings: Settings, statement: str, **params: Any) -> list[Any]:
    db = Database(settings.effective_database_url)
    try:
        async with db.engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await db.dispose()


async def upload(
    user: User, body: bytes, *, site: str = "T07", kind: str = CSV, name: str = "licences.csv"
) -> aiohttp.ClientResponse:
    site_id = (await site_by_code(user, site))["id"]
    return await user.post(
        "/api/v1/licences/import",
        params={"site_id": site_id, "filename": name},
        data=body,
        headers={"Content-Type": kind},
    )


def csv_file(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join((header, *rows)) + "\n").encode()


async def counts(settings: Settings) -> tuple[int, int]:
    [(licences,)] = await sql(settings, "SELECT count(*) FROM licence")
    [(residents,)] = await sql(settings, "SELECT count(*) FROM resident")
    return int(licences), int(residents)


async def test_a_csv_import_registers_licences_and_their_holders(
    as_user: Any, settings: Settings
) -> None:
    coordinator = await as_user("coordinator")
    before = await counts(settings)
    body = csv_file(
        f"SP001,食品经营许可证,张三,{person(201)},13900139001,2022-03-01,{ahead(30)}",
        f"SP002,SPJY,李四,{person(203)},,,{ahead(200)}",
        f"YP001,药品经营许可证,张三,{person(201)},13900139001,2021/05/01,{ahead(400)}",
    )
    resp = await upload(coordinator, body)
    assert resp.status == 201, await resp.text()
    done = await resp.json()
    assert (done["rows"], done["residents_created"]) == (3, 2)
    assert await counts(settings) == (before[0] + 3, before[1] + 2)
    page = await (await coordinator.get("/api/v1/licences", params={"q": "SP00"})).json()
    assert page["total"] == 2
    first = page["items"][0]
    assert (first["number"], first["holder_name"], first["type_code"]) == ("SP001", "张三", "SPJY")
    assert first["holder_id_masked"].startswith("3302") and "*" in first["holder_id_masked"]
    assert first["holder_phone_masked"] == "139****9001"
    assert first["issued_on"] == "2022-03-01" and first["source"] == "import"
    # A second licence without an issue date gets one from its type's validity.
    second = page["items"][1]
    assert second["issued_on"] < second["expires_on"]
    # The ID number is found by its keyed hash, and the search is audited.
    found = await coordinator.get("/api/v1/licences", params={"q": person(201)})
    assert (await found.json())["total"] == 2
    [(n,)] = await sql(
        settings, "SELECT count(*) FROM audit_log WHERE action = 'licence.search_id'"
    )
    assert n == 1
    imports = await (await coordinator.get("/api/v1/licence-imports")).json()
    assert imports[0]["rows"] == 3 and imports[0]["filename"] == "licences.csv"


async def test_bad_rows_are_reported_one_by_one_and_nothing_is_imported(
    as_user: Any, settings: Settings
) -> None:
    coordinator = await as_user("coordinator")
    good = person(211)
    bad_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    before = await counts(settings)
    body = csv_file(
        f"G001,SPJY,王五,{good},13900139002,2022-01-01,{ahead(30)}",
        f"B001,SPJY,赵六,{bad_check},13900139003,2022-01-01,{ahead(30)}",
        f"B002,SPJY,孙七,{person(213)},12345,2022-01-01,2031-13-01",
        f"B003,没有这种证,周八,{person(215)},,,{ahead(30)}",
        f"G001,SPJY,王五,{good},,,{ahead(60)}",
        f"B004,SPJY,吴九,{person(217)},,2024-05-01,2024-04-01",
        f"B005,SPJY,,{person(219)},,,{ahead(30)}",
    )
    resp = await upload(coordinator, body, name="bad.csv")
    assert resp.status == 422, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "licence_import.rows"
    assert "没有导入" in error["message"]
    got = {(d["row"], d["column"], d["code"]) for d in error["details"]}
    assert got == {
        (3, "身份证号", "id_number.checksum"),
        (4, "手机号", "phone.invalid"),
        (4, "到期日期", "licence_import.date"),
        (5, "证照类型", "licence_import.type"),
        (6, "证照编号", "licence_import.duplicate"),
        (7, "到期日期", "licence_import.date_order"),
        (8, "持证人", "licence_import.required"),
    }
    checksum = next(d for d in error["details"] if d["code"] == "id_number.checksum")
    assert "校验位" in checksum["message"]
    assert await counts(settings) == before  # not even the good row
    # The same report in English.
    resp = await coordinator.post(
        "/api/v1/licences/import",
        params={"site_id": (await site_by_code(coordinator, "T07"))["id"], "lang": "en"},
        data=body,
        headers={"Content-Type": CSV},
    )
    details = (await resp.json())["error"]["details"]
    assert any("check digit" in d["message"] for d in details)


async def test_wrong_columns_are_named(as_user: Any, settings: Settings) -> None:
    coordinator = await as_user("coordinator")
    resp = await upload(coordinator, csv_file("X1,SPJY,王五", header="编号,类型,姓名"))
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "licence_import.columns"
    assert "身份证号" in error["message"] and "到期日期" in error["message"]
    resp = await upload(coordinator, csv_file(header=HEADER))
    assert (await resp.json())["error"]["code"] == "licence_import.empty"


async def test_a_holder_must_match_the_registered_resident(
    as_user: Any, settings: Settings
) -> None:
    coordinator = await as_user("coordinator")
    number = person(221)
    ok = await upload(coordinator, csv_file(f"M001,SPJY,钱一,{number},,,{ahead(30)}"))
    assert ok.status == 201
    again = await upload(
        coordinator,
        csv_file(
            f"M001,SPJY,钱一,{number},,,{ahead(30)}", f"M002,SPJY,钱二,{number},,,{ahead(30)}"
        ),
    )
    got = {(d["row"], d["code"]) for d in (await again.json())["error"]["details"]}
    assert got == {(2, "licence_import.registered"), (3, "licence_import.name_mismatch")}


async def test_a_newer_licence_renews_the_older_one(as_user: Any, settings: Settings) -> None:
    coordinator = await as_user("coordinator")
    number = person(231)
    await upload(coordinator, csv_file(f"R001,SPJY,孙一,{number},,,{ahead(20)}"))
    resp = await upload(coordinator, csv_file(f"R002,SPJY,孙一,{number},,,{ahead(1800)}"))
    assert (await resp.json())["renewed"] == 1
    rows = await sql(settings, "SELECT number, status FROM licence WHERE number LIKE 'R00%'")
    assert sorted(tuple(r) for r in rows) == [("R001", "renewed"), ("R002", "active")]


def xlsx(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_an_xlsx_import_reads_dates_and_text(as_user: Any, settings: Settings) -> None:
    coordinator = await as_user("coordinator")
    expires = today() + dt.timedelta(days=90)
    body = xlsx(
        [
            [
                "证照编号",
                "证照类型",
                "持证人",
                "身份证号",
                "手机号",
                "发证日期",
                "到期日期",
                "备注",
            ],
            [
                "X001",
                "居住证",
                "冯一",
                person(241),
                "13900139004",
                dt.datetime(2025, 9, 1),
                expires,
            ],
            ["X002", "JZZ", "冯二", person(243), None, None, expires],
        ]
    )
    resp = await upload(coordinator, body, kind=XLSX, name="licences.xlsx")
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["rows"] == 2
    [(issued,)] = await sql(settings, "SELECT issued_on FROM licence WHERE number = 'X001'")
    assert str(issued) == "2025-09-01"


async def test_an_id_number_stored_as_a_number_is_explained(
    as_user: Any, settings: Settings
) -> None:
    coordinator = await as_user("coordinator")
    digits = next(
        n for n in (id_number(dt.date(1970, 1, d), 124) for d in range(1, 28)) if n.isdigit()
    )
    body = xlsx(
        [
            ["证照编号", "证照类型", "持证人", "身份证号", "到期日期"],
            ["N001", "SPJY", "陈一", float(digits), ahead(30)],
        ]
    )
    resp = await upload(coordinator, body, kind=XLSX)
    assert resp.status == 422
    [detail] = (await resp.json())["error"]["details"]
    assert detail["code"] == "licence_import.id_as_number"


async def test_oversize_files_and_bombs_are_refused(
    aiohttp_client: Any, db_url: str, tmp_path: Any
) -> None:
    from web.app import create_app

    settings = base_settings(
        db_url,
        tmp_path / "data",
        licence_import_max_bytes=64 * 1024,
        licence_import_max_unpacked_bytes=1024 * 1024,
    )
    client = await aiohttp_client(create_app(settings))
    base = str(client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        user = User(http, base)
        assert (await user.login("coordinator")).status == 200
        big = csv_file(*[f"B{i:06d},SPJY,某人,{person(251)},,,{ahead(30)}" for i in range(2000)])
        resp = await upload(user, big)
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "licence_import.too_large"
        bomb = io.BytesIO()
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("xl/worksheets/sheet1.xml", b"\0" * (4 * 1024 * 1024))
        assert len(bomb.getvalue()) < 64 * 1024
        resp = await upload(user, bomb.getvalue(), kind=XLSX)
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "licence_import.bomb"
        junk = await upload(user, b"PK\x03\x04 not really a zip", kind=XLSX)
        assert junk.status == 415
        binary = await upload(user, b"\xff\xfe\x00\x00\x81garbage", kind=CSV)
        assert binary.status == 415
        wrong = await upload(user, b"a,b", kind="application/json")
        assert wrong.status == 415
        empty = await upload(user, b"")
        assert empty.status == 422
    [(n,)] = await sql(settings, "SELECT count(*) FROM licence")
    assert n == 0


async def test_who_may_import_and_see_licences(as_user: Any, settings: Settings) -> None:
    coordinator = await as_user("coordinator")
    resp = await upload(coordinator, csv_file(f"A001,SPJY,蒋一,{person(261)},,,{ahead(30)}"))
    licence_id = (await (await coordinator.get("/api/v1/licences")).json())["items"][0]["id"]
    assert resp.status == 201
    worker = await as_user("worker")
    assert (await upload(worker, csv_file())).status == 403
    assert (await worker.get("/api/v1/licences")).status == 403
    supervisor = await as_user("supervisor")
    assert (await supervisor.get(f"/api/v1/licences/{licence_id}")).status == 200
    # A town's coordinator: imports into their town only, sees only their town's register.
    [(other_town,)] = await sql(
        settings,
        "SELECT code FROM site WHERE kind = 'town' AND code <> 'T07' ORDER BY code LIMIT 1",
    )
    local_coordinator = await as_user(f"coordinator.{other_town.lower()}")
    refused = await upload(
        local_coordinator, csv_file(f"A002,SPJY,蒋二,{person(263)},,,{ahead(30)}"), site="T07"
    )
    assert refused.status == 403
    assert (await local_coordinator.get(f"/api/v1/licences/{licence_id}")).status == 404
    page = await (await local_coordinator.get("/api/v1/licences")).json()
    assert licence_id not in [i["id"] for i in page["items"]]
    # Only an admin sets a policy, and it is audited.
    types = await (await coordinator.get("/api/v1/licence-types")).json()
    food = next(t for t in types if t["code"] == "SPJY")
    assert food["offsets"] == [-90, -30, -7, 1] and "SJ-003" in food["items"]
    path = f"/api/v1/licence-types/{food['id']}/policy"
    denied = await coordinator.request("PUT", path, json={"offsets": [-60]})
    assert denied.status == 403
    admin = await as_user("admin")
    done = await admin.request("PUT", path, json={"offsets": [1, -60, -15]})
    assert (await done.json())["offsets"] == [-60, -15, 1]
    bad = await admin.request("PUT", path, json={"offsets": [-60, -60]})
    assert bad.status == 422
    [(n,)] = await sql(
        settings, "SELECT count(*) FROM audit_log WHERE action = 'licence_type.policy'"
    )
    assert n == 1


async def resident_signed_in(as_user: Any, settings: Settings, id_no: str, phone: str) -> User:
    user = await as_user()
    who = {"id_number": id_no, "phone": phone}
    resp = await user.post("/api/v1/resident-auth/code", json=who)
    assert resp.status == 202, await resp.text()
    [(body,)] = await sql(
        settings,
        "SELECT body FROM sms_message WHERE phone = :p ORDER BY id DESC LIMIT 1",
        p=phone,
    )
    code = re.search(r"\d{6}", body)
    assert code is not None
    resp = await user.post("/api/v1/resident-auth/login", json={**who, "code": code.group(0)})
    assert resp.status == 200, await resp.text()
    user.me = await resp.json()
    user.csrf = user.me["csrf_token"]
    return user


async def test_a_resident_sees_and_stops_their_reminders(as_user: Any, settings: Settings) -> None:
    coordinator = await as_user("coordinator")
    number, phone = person(271, years=70), "13900139271"
    body = csv_file(
        f"H001,SPJY,韩一,{number},{phone},,{ahead(30)}",
        f"H002,JZZ,韩一,{number},{phone},,{ahead(100)}",
        f"H003,SPJY,韩二,{person(273)},13900139273,,{ahead(30)}",
    )
    assert (await upload(coordinator, body)).status == 201
    resident = await resident_signed_in(as_user, settings, number, phone)
    mine = await (await resident.get("/api/v1/resident/reminders")).json()
    assert [lic["type_name"] for lic in mine["licences"]] == ["食品经营许可证", "居住证"]
    food, permit = mine["licences"]
    assert food["days_left"] == 30 and food["number_masked"].endswith("H001"[-4:])
    assert food["next_reminder"] == today().isoformat()  # T-30 is today
    assert permit["next_reminder"] == ahead(70)  # the permit's policy starts at T-30
    stop = await resident.post(
        "/api/v1/resident/reminders/stop", json={"type_id": food["type_id"], "stop": True}
    )
    after = await stop.json()
    assert after["stopped_types"] == [food["type_id"]]
    assert [lic["stopped"] for lic in after["licences"]] == [True, False]
    everything = await resident.post("/api/v1/resident/reminders/stop", json={"stop": True})
    assert (await everything.json())["all_stopped"] is True
    back = await resident.post("/api/v1/resident/reminders/stop", json={"stop": False})
    assert (await back.json())["all_stopped"] is False
    unknown = await resident.post(
        "/api/v1/resident/reminders/stop", json={"type_id": 999999, "stop": True}
    )
    assert unknown.status == 404
    assert (
        await resident.post("/api/v1/resident/reminders/stop", json={"stop": "yes"})
    ).status == 422
    # Staff have no such page; a resident has no register.
    assert (await coordinator.get("/api/v1/resident/reminders")).status == 403
    assert (await resident.get("/api/v1/licences")).status == 403
    actions = await sql(
        settings, "SELECT action FROM audit_log WHERE action LIKE 'reminder.%' ORDER BY id"
    )
    assert [a for (a,) in actions] == ["reminder.stop", "reminder.stop", "reminder.restart"]


async def test_reminder_counts_for_a_period(as_user: Any, settings: Settings) -> None:
    supervisor = await as_user("supervisor")
    day = today().isoformat()
    resp = await supervisor.get("/api/v1/reminders/counts", params={"start": day, "end": day})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["planned"] == 0
    bad = await supervisor.get(
        "/api/v1/reminders/counts", params={"start": day, "end": "2020-01-01"}
    )
    assert bad.status == 422


@pytest.mark.parametrize("path", ["/api/v1/licences/99999999", "/api/v1/licences/1x"])
async def test_unknown_licences_answer_404(as_user: Any, path: str) -> None:
    admin = await as_user("admin")
    assert (await admin.get(path)).status == 404

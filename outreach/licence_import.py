"""Imports of existing licences from CSV or XLSX: every row checked first, then all written in
one transaction, or nothing and a row-by-row report of what to correct.

Reading the file (unzipping, openpyxl, decoding) runs in a worker thread, never on the event
loop. An XLSX is a zip: its declared unpacked size is checked before anything is inflated, so
a decompression bomb is refused (413) without being read.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, idnumber
from core.access import Principal, area_sites, require_site
from core.errors import AppError, Invalid, NotFound, TooLarge
from core.models import Resident, Site
from core.pii import PiiCipher
from core.residents import seal_id
from core.settings import Settings
from outreach import licences
from outreach.models import (
    ImportRowError,
    Licence,
    LicenceImport,
    LicenceImportRead,
    LicenceSource,
    LicenceStatus,
    LicenceType,
)

# Column -> the names a header may give it (compared without spaces, case-insensitively).
COLUMNS: dict[str, tuple[str, ...]] = {
    "number": ("证照编号", "证件编号", "编号", "licence_no", "licence_number", "number"),
    "type": ("证照类型", "证照名称", "类型", "type", "licence_type"),
    "holder": ("持证人", "持证人姓名", "姓名", "holder", "name"),
    "id_number": ("身份证号", "身份证号码", "公民身份号码", "id_number"),
    "phone": ("手机号", "手机号码", "联系电话", "电话", "phone"),
    "issued_on": ("发证日期", "签发日期", "issued_on", "issued"),
    "expires_on": ("到期日期", "有效期至", "截止日期", "expires_on", "expires"),
}
REQUIRED = ("number", "type", "holder", "id_number", "expires_on")
# How the error names a missing column, in each language.
COLUMN_WORDS = {
    "number": ("证照编号", "licence_no"),
    "type": ("证照类型", "type"),
    "holder": ("持证人", "holder"),
    "id_number": ("身份证号", "id_number"),
    "phone": ("手机号", "phone"),
    "issued_on": ("发证日期", "issued_on"),
    "expires_on": ("到期日期", "expires_on"),
}
MAX_LEN = {"number": 64, "holder": 50, "type": 100}
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Problems reported at most: enough to correct a file, not a second copy of a broken one.
MAX_REPORTED = 500
# Rows looked up per statement (IN lists stay well under every backend's parameter limit).
CHUNK = 500


class ImportRejected(AppError):
    """Some rows have problems: nothing was imported; the details list each problem."""

    status = 422
    default_code = "licence_import.rows"


class Unreadable(AppError):
    status = 415
    default_code = "licence_import.unreadable"


Cell = str | dt.date | int | float | None


@dataclass
class Sheet:
    header: list[str]
    rows: list[tuple[int, list[Cell]]]  # (row number as the spreadsheet shows it, cells)


# -- reading the file (in a worker thread)


def _check_zip(data: bytes, settings: Settings) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            unpacked = sum(i.file_size for i in z.infolist())
    except zipfile.BadZipFile:
        raise Unreadable() from None
    if unpacked > settings.licence_import_max_unpacked_bytes:
        raise TooLarge("licence_import.bomb", limit=settings.licence_import_max_unpacked_bytes)


def _xlsx_rows(data: bytes, limit: int) -> Iterator[tuple[int, list[Cell]]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a broken or foreign file
        raise Unreadable() from None
    try:
        sheet = book.worksheets[0]
        for n, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if n > limit + 1:
                raise TooLarge("licence_import.too_many_rows", limit=limit)
            yield n, [_cell(v) for v in values]
    finally:
        book.close()


def _cell(v: Any) -> Cell:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, (dt.date, int, float)) and not isinstance(v, bool):
        return v
    return None if v is None else str(v)


def _csv_rows(data: bytes, limit: int) -> Iterator[tuple[int, list[Cell]]]:
    text = None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if text is None or "\x00" in text:
        raise Unreadable()
    first = text.split("\n", 1)[0]
    delimiter = max((",", "\t", ";"), key=first.count)
    for n, values in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
        if n > limit + 1:
            raise TooLarge("licence_import.too_many_rows", limit=limit)
        yield n, list(values)


def read_sheet(data: bytes, settings: Settings) -> Sheet:
    """The header and the non-empty rows of a CSV or XLSX file (blocking: run in a thread)."""
    limit = settings.licence_import_max_rows
    if data[:4] == b"PK\x03\x04":
        _check_zip(data, settings)
        rows: Iterator[tuple[int, list[Cell]]] = _xlsx_rows(data, limit)
    else:
        rows = _csv_rows(data, limit)
    header: list[str] | None = None
    body: list[tuple[int, list[Cell]]] = []
    for n, cells in rows:
        if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
            continue
        if header is None:
            header = ["" if c is None else str(c).strip() for c in cells]
            continue
        body.append((n, cells))
    if header is None or not body:
        raise Invalid("licence_import.empty")
    return Sheet(header=header, rows=body)


# -- checking the rows


def _key(name: str) -> str:
    return "".join(name.split()).lower()


ALIASES = {_key(alias): column for column, names in COLUMNS.items() for alias in names}


def map_columns(header: Sequence[str]) -> dict[str, int]:
    """Column -> index in the row; Invalid when a required one is missing or one is twice."""
    found: dict[str, int] = {}
    for i, name in enumerate(header):
        column = ALIASES.get(_key(name))
        if column is None:
            continue  # extra columns (a remark, a serial number) are ignored
        if column in found:
            raise Invalid("licence_import.column_twice", column=name)
        found[column] = i
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        raise Invalid(
            "licence_import.columns",
            missing="、".join(COLUMN_WORDS[c][0] for c in missing),
            missing_en=", ".join(COLUMN_WORDS[c][1] for c in missing),
        )
    return found


def parse_date(v: Cell) -> dt.date | None:
    if isinstance(v, dt.date):
        return v
    if not isinstance(v, str):
        return None
    text = v.strip()
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


@dataclass
class Row:
    n: int
    number: str
    type_id: int
    holder: str
    id_number: str
    id_hash: str
    birth_date: dt.date
    sex: str
    masked: str
    phone: str
    issued_on: dt.date
    expires_on: dt.date


@dataclass
class Report:
    lang: str
    header: Sequence[str]
    errors: list[ImportRowError] = field(default_factory=list)
    count: int = 0

    def add(self, n: int, column: int | str, code: str, **params: Any) -> None:
        self.count += 1
        if len(self.errors) >= MAX_REPORTED:
            return
        name = self.header[column] if isinstance(column, int) else column
        message = AppError(code, column=name, **params).message(self.lang)
        self.errors.append(ImportRowError(row=n, column=name, code=code, message=message))

    def add_error(self, n: int, column: int, err: AppError) -> None:
        self.add(n, column, err.code, **err.params)


def _text(cells: Sequence[Cell], i: int | None) -> str:
    if i is None or i >= len(cells) or cells[i] is None:
        return ""
    v = cells[i]
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def check_rows(
    sheet: Sheet,
    columns: dict[str, int],
    *,
    types: dict[str, LicenceType],
    cipher: PiiCipher,
    today: dt.date,
    lang: str,
) -> tuple[list[Row], Report]:
    """Every row checked on its own (ID checksum, dates, type); the register is checked next."""
    report = Report(lang=lang, header=sheet.header)
    rows: list[Row] = []
    seen: dict[tuple[int, str], int] = {}
    for n, cells in sheet.rows:
        ok = True
        values = {c: _text(cells, i) for c, i in columns.items()}
        for c in REQUIRED:
            if not values[c]:
                report.add(n, columns[c], "licence_import.required")
                ok = False
        for c, most in MAX_LEN.items():
            if len(values[c]) > most:
                report.add(n, columns[c], "licence_import.too_long", max=most)
                ok = False
        kind = types.get(_key(values["type"])) if values["type"] else None
        if values["type"] and kind is None:
            report.add(n, columns["type"], "licence_import.type", value=values["type"][:40])
            ok = False
        parsed = None
        raw_id = cells[columns["id_number"]] if columns["id_number"] < len(cells) else None
        if isinstance(raw_id, (int, float)):  # a spreadsheet's number: 15 digits at most
            report.add(n, columns["id_number"], "licence_import.id_as_number")
            ok = False
        elif values["id_number"]:
            try:
                parsed = idnumber.parse(values["id_number"], today=today)
            except Invalid as e:
                report.add_error(n, columns["id_number"], e)
                ok = False
        phone = ""
        if "phone" in columns and values["phone"]:
            try:
                phone = idnumber.normalize_phone(values["phone"])
            except Invalid as e:
                report.add_error(n, columns["phone"], e)
                ok = False
        expires = None
        if values["expires_on"]:
            raw = cells[columns["expires_on"]]
            expires = parse_date(raw if not isinstance(raw, str) else values["expires_on"])
            if expires is None:
                report.add(
                    n, columns["expires_on"], "licence_import.date", value=values["expires_on"][:40]
                )
                ok = False
        issued = None
        if "issued_on" in columns and values["issued_on"]:
            raw = cells[columns["issued_on"]]
            issued = parse_date(raw if not isinstance(raw, str) else values["issued_on"])
            if issued is None:
                report.add(
                    n, columns["issued_on"], "licence_import.date", value=values["issued_on"][:40]
                )
                ok = False
            elif issued > today:
                report.add(n, columns["issued_on"], "licence_import.issued_future")
                ok = False
        if issued is not None and expires is not None and expires <= issued:
            report.add(n, columns["expires_on"], "licence_import.date_order")
            ok = False
        if kind is not None and values["number"]:
            first = seen.setdefault((kind.id or 0, values["number"]), n)
            if first != n:
                report.add(n, columns["number"], "licence_import.duplicate", row=first)
                ok = False
        if not ok or kind is None or parsed is None or expires is None:
            continue
        rows.append(
            Row(
                n=n,
                number=values["number"],
                type_id=kind.id or 0,
                holder=values["holder"],
                id_number=parsed.number,
                id_hash=cipher.lookup_hash(parsed.number),
                birth_date=parsed.birth_date,
                sex=parsed.sex,
                masked=parsed.masked,
                phone=phone,
                issued_on=issued or licences.add_months(expires, -kind.validity_months),
                expires_on=expires,
            )
        )
    return rows, report


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


async def _types(session: AsyncSession) -> dict[str, LicenceType]:
    """Types by code, by name and by English name, compared as the header is."""
    out: dict[str, LicenceType] = {}
    for t in (await session.exec(select(LicenceType).where(col(LicenceType.active)))).all():
        for name in (t.code, t.name, t.name_en):
            if name:
                out.setdefault(_key(name), t)
    return out


async def import_file(
    *,
    session: AsyncSession,
    settings: Settings,
    cipher: PiiCipher,
    principal: Principal,
    data: bytes,
    filename: str,
    site_id: int,
    lang: str,
    now: dt.datetime,
    request_id: str = "",
    ip: str = "",
) -> LicenceImportRead:
    """Register every licence of the file for the office `site_id`, or none (ImportRejected).

    Holders are found by their ID number's keyed hash; a holder not yet registered becomes a
    resident (name, ID number, phone). A known holder keeps their record, and gets the phone
    of the file only when they have none. A licence newer than the holder's licence of the
    same type renews it (its reminders stop).
    """
    site = await session.get(Site, site_id)
    if site is None:
        raise NotFound(f"站点 {site_id}", f"Site {site_id}")
    await require_site(session, principal, site_id)
    sheet = await asyncio.to_thread(read_sheet, data, settings)
    columns = map_columns(sheet.header)
    today = licences.local_date(now, settings)
    rows, report = check_rows(
        sheet, columns, types=await _types(session), cipher=cipher, today=today, lang=lang
    )
    holders: dict[str, Resident] = {}
    for part in _chunks(sorted({r.id_hash for r in rows})):
        found = await session.exec(select(Resident).where(col(Resident.id_hash).in_(part)))
        holders.update({h.id_hash: h for h in found.all()})
    registered: set[tuple[int, str]] = set()
    for part in _chunks(sorted({(r.type_id, r.number) for r in rows})):
        found_keys = await session.exec(
            select(Licence.type_id, Licence.number).where(
                tuple_(col(Licence.type_id), col(Licence.number)).in_(part)
            )
        )
        registered.update((t, num) for t, num in found_keys.all())
    names: dict[str, tuple[str, int]] = {}  # a new holder's name, as the first row gives it
    for r in rows:
        holder = holders.get(r.id_hash)
        if holder is not None:
            expected = holder.name
        else:
            expected = names.setdefault(r.id_hash, (r.holder, r.n))[0]
        if r.holder != expected:
            report.add(r.n, columns["holder"], "licence_import.name_mismatch")
        if (r.type_id, r.number) in registered:
            report.add(r.n, columns["number"], "licence_import.registered")
    if report.count:
        raise ImportRejected(count=report.count, details=[e.model_dump() for e in report.errors])
    created = 0
    for r in rows:
        holder = holders.get(r.id_hash)
        if holder is None:
            holder = Resident(
                name=r.holder,
                id_cipher=seal_id(cipher, r.id_number, r.id_hash),
                id_hash=r.id_hash,
                id_masked=r.masked,
                birth_date=r.birth_date,
                sex=r.sex,
                phone=r.phone,
                created_by=principal.staff_fk,
            )
            session.add(holder)
            holders[r.id_hash] = holder
            created += 1
        elif r.phone and not holder.phone:
            holder.phone = r.phone
            session.add(holder)
    digest = hashlib.sha256(data).hexdigest()
    batch = LicenceImport(
        filename=filename[:200],
        sha256=digest,
        rows=len(rows),
        residents_created=created,
        site_id=site_id,
        imported_by=principal.staff_fk,
        at=now,
    )
    session.add(batch)
    await session.flush()
    session.add_all(
        Licence(
            type_id=r.type_id,
            number=r.number,
            resident_id=holders[r.id_hash].id or 0,
            site_id=site_id,
            issued_on=r.issued_on,
            expires_on=r.expires_on,
            status=LicenceStatus.active,
            source=LicenceSource.imported,
            import_id=batch.id,
            created_at=now,
        )
        for r in rows
    )
    await session.flush()
    renewed = await licences.renew_older(
        session,
        pairs={(holders[r.id_hash].id or 0, r.type_id) for r in rows},
        now=now,
    )
    audit.record(
        session,
        actor=principal,
        action="licence.import",
        target_type="licence_import",
        target_id=batch.id or 0,
        detail={
            "rows": len(rows),
            "residents_created": created,
            "renewed": renewed,
            "sha256": digest,
            "site_id": site_id,
        },
        request_id=request_id,
        ip=ip,
    )
    return LicenceImportRead(
        id=batch.id or 0,
        filename=batch.filename,
        rows=batch.rows,
        residents_created=created,
        renewed=renewed,
        site_id=site_id,
        site_name=site.name,
        at=now,
    )


async def list_imports(
    *, session: AsyncSession, principal: Principal, limit: int = 20
) -> list[LicenceImportRead]:
    """The latest imports into the registers of the caller's area."""
    q = (
        select(LicenceImport, Site)
        .join(Site, col(Site.id) == col(LicenceImport.site_id))
        .order_by(col(LicenceImport.at).desc(), col(LicenceImport.id).desc())
        .limit(limit)
    )
    area = area_sites(principal)
    if area is not None:
        q = q.where(col(LicenceImport.site_id).in_(area))
    return [
        LicenceImportRead(
            id=b.id or 0,
            filename=b.filename,
            rows=b.rows,
            residents_created=b.residents_created,
            site_id=b.site_id,
            site_name=s.name,
            at=b.at,
        )
        for b, s in (await session.exec(q)).all()
    ]

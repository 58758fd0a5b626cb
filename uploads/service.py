"""Materials: upload slots, confirmation, review, reuse, viewing links and the retention sweep.

The rule that keeps records honest: a material row is committed only after its object is in
the store and has been checked, and an object the database does not know about is deleted by
the sweep once it is older than `orphan_grace_seconds`. So a crash at any point leaves either
nothing, or an orphan the sweep removes, never a row without its object.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit, cases
from core.access import Principal, can, require_case, supervises, was_in_call
from core.db import Database, utcnow
from core.errors import AppError, Conflict, Forbidden, Invalid, NotFound, TooLarge
from core.models import Case, Role, ServiceItem
from core.settings import Settings
from media.models import RecordingSegment
from signaling.models import Call, CallStatus
from uploads import inspect
from uploads.checklist import (
    Checklist,
    ChecklistItem,
    MaterialRead,
    Spec,
    build,
    material_read,
    specs_for,
)
from uploads.models import (
    OPEN_SLOT,
    Material,
    MaterialRequest,
    MaterialSource,
    MaterialStatus,
    SlotState,
    UploadSlot,
)
from uploads.storage import ObjectStore, Part, is_valid_key, new_key

log = logging.getLogger("cloudwindow.materials")

ALLOWED_TYPES = frozenset(inspect.EXTENSIONS) - {"video/webm", "video/mp2t"}
STATE_ZH = {
    "confirmed": "确认",
    "processing": "在处理中",
    "failed": "被拒收",
    "abandoned": "作废",
}
Notify = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class Unavailable(AppError):
    status = 503
    default_code = "storage.unavailable"


class SlotIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)
    spec_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    filename: str = Field(default="", max_length=200)
    content_type: str = Field(min_length=3, max_length=100)
    size: int = Field(ge=0, le=2**40)
    multipart: bool = False


class SlotRead(BaseModel):
    id: int
    case_id: int
    spec_id: int | None
    method: str
    url: str
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: dt.datetime
    max_bytes: int
    multipart: bool
    part_bytes: int | None = None
    parts_count: int | None = None


class PartsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    numbers: list[int] = Field(min_length=1, max_length=100)


class PartUrl(BaseModel):
    number: int
    method: str
    url: str


class PartRead(BaseModel):
    number: int
    size: int


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)
    decision: Literal["accept", "reject"]
    reason: str = Field(default="", max_length=500)


class RequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)
    note: str = Field(default="", max_length=500)


class ReuseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    material_id: int = Field(ge=1, le=2**31 - 1)
    spec_id: int = Field(ge=1, le=2**31 - 1)
    consent: bool


class ReuseCandidate(BaseModel):
    spec_id: int
    name: str
    material: MaterialRead
    from_case_number: str
    from_case_at: dt.datetime


class LinkRead(BaseModel):
    url: str
    expires_at: dt.datetime


@dataclass
class SweepReport:
    expired: int = 0
    abandoned: int = 0
    orphans: int = 0
    errors: list[str] = field(default_factory=list)


def _case_nf(case_id: int) -> NotFound:
    return NotFound(f"办件 {case_id}", f"Case {case_id}")


def _material_nf(material_id: int) -> NotFound:
    return NotFound(f"材料 {material_id}", f"Material {material_id}")


def _slot_nf(slot_id: int) -> NotFound:
    return NotFound(f"上传 {slot_id}", f"Upload {slot_id}")


class Materials:
    """One per app: the store, the settings, and how to tell a call room what happened."""

    def __init__(self, settings: Settings, store: ObjectStore, db: Database) -> None:
        self.settings = settings
        self.store = store
        self.db = db
        self.notify: Notify | None = None

    async def _emit(self, session: AsyncSession, case_id: int, event: str, data: Any) -> None:
        """Tell the case's live call(s); call after the commit."""
        if self.notify is None:
            return
        rows = await session.exec(
            select(Call.id).where(Call.case_id == case_id, Call.status != CallStatus.ended)
        )
        for call_id in rows.all():
            if call_id is not None:
                await self.notify(event, f"call:{call_id}", {"call_id": call_id, **data})

    # -- who may do what with a case's materials

    async def _open_case(self, session: AsyncSession, me: Principal, case_id: int) -> Case:
        case = await session.get(Case, case_id)
        if case is None:
            raise _case_nf(case_id)
        await require_case(session, me, case)
        if case.status in cases.CLOSED:
            raise Conflict("case.closed")
        return case

    async def _require_reviewer(self, session: AsyncSession, me: Principal, case: Case) -> None:
        """The clerk of the case's line, or a clerk in one of its calls (after a transfer)."""
        if me.role is not Role.clerk:
            raise Forbidden("forbidden_role")
        if case.line_id is not None and case.line_id in me.line_ids:
            return
        if not await was_in_call(session, me, case.id or 0):
            raise _case_nf(case.id or 0)

    async def _require_viewer(self, session: AsyncSession, me: Principal, case: Case) -> None:
        """The case's participants, and supervisors of its line (or of the site above it)."""
        nf = _case_nf(case.id or 0)
        if not can(me, "material.view"):
            raise nf
        if me.is_resident:
            if case.resident_id is None or case.resident_id != me.resident_id:
                raise nf
            return
        if case.created_by == me.staff_id:
            return
        if me.role is Role.supervisor:
            if await supervises(session, me, case):
                return
            raise nf
        if me.role is Role.clerk and case.line_id is not None and case.line_id in me.line_ids:
            return
        if await was_in_call(session, me, case.id or 0):
            return
        uploaded = await session.exec(
            select(Material.id)
            .where(Material.case_id == case.id, Material.uploaded_by == me.staff_id)
            .limit(1)
        )
        if uploaded.first() is None:
            raise nf

    async def _spec(self, session: AsyncSession, case: Case, spec_id: int) -> Spec:
        for s in await specs_for(session, case):
            if s.id == spec_id:
                return s
        raise Invalid("material.spec")

    async def _retention(self, session: AsyncSession, case: Case) -> int:
        item = await session.get(ServiceItem, case.item_id)
        return item.retention_days if item else 3650

    # -- slots

    async def create_slot(
        self, session: AsyncSession, me: Principal, case_id: int, body: SlotIn, **kw: Any
    ) -> SlotRead:
        s = self.settings
        case = await self._open_case(session, me, case_id)
        spec = await self._spec(session, case, body.spec_id) if body.spec_id else None
        declared = body.content_type.lower()
        allowed = spec.accepted_types if spec else sorted(ALLOWED_TYPES)
        if declared not in ALLOWED_TYPES:
            raise Invalid("upload.type_not_allowed", found=declared)
        if declared not in allowed:
            raise Invalid(
                "material.type",
                name=spec.name if spec else "",
                accepted=", ".join(allowed),
                found=declared,
            )
        if body.size == 0:
            raise Invalid("upload.empty")
        limit = s.upload_multipart_max_bytes if body.multipart else s.upload_max_bytes
        if body.size > s.upload_multipart_max_bytes:
            raise TooLarge("upload.too_large", size=body.size, limit=s.upload_multipart_max_bytes)
        if body.size > limit:
            raise TooLarge("upload.use_multipart", limit=s.upload_max_bytes)
        now = utcnow()
        retention = await self._retention(session, case)
        key = new_key(retention, case_id, inspect.EXTENSIONS[declared])
        slot = UploadSlot(
            case_id=case_id,
            spec_id=spec.id if spec else None,
            key=key,
            state=SlotState.multipart if body.multipart else SlotState.pending,
            filename=body.filename,
            declared_type=declared,
            declared_size=body.size,
            max_bytes=body.size,
            retention_days=retention,
            created_by=me.staff_fk,
            created_by_resident=me.resident_id,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=s.upload_slot_seconds),
        )
        try:
            if body.multipart:
                slot.multipart_id = await self.store.start_multipart(key, declared)
                form = None
            else:
                form = await self.store.upload_form(
                    key, content_type=declared, max_bytes=body.size, expires=s.upload_url_seconds
                )
        except AppError:
            raise
        except Exception as e:
            log.warning("storage refused a slot: %s", e)
            raise Unavailable() from None
        session.add(slot)
        await session.flush()
        audit.record(
            session,
            action="material.upload_slot",
            target_type="case",
            target_id=case_id,
            detail={"slot": slot.id, "spec": slot.spec_id, "size": body.size, "type": declared},
            **kw,
        )
        await session.commit()
        assert slot.id is not None
        url_expires = now + dt.timedelta(seconds=s.upload_url_seconds)
        if form is None:
            return SlotRead(
                id=slot.id,
                case_id=case_id,
                spec_id=slot.spec_id,
                method="PUT",
                url="",
                fields={},
                headers={},
                expires_at=url_expires,
                max_bytes=body.size,
                multipart=True,
                part_bytes=s.upload_part_bytes,
                parts_count=math.ceil(body.size / s.upload_part_bytes),
            )
        return SlotRead(
            id=slot.id,
            case_id=case_id,
            spec_id=slot.spec_id,
            method=form.method,
            url=form.url,
            fields=form.fields,
            headers=form.headers,
            expires_at=url_expires,
            max_bytes=body.size,
            multipart=False,
        )

    async def _my_slot(self, session: AsyncSession, me: Principal, slot_id: int) -> UploadSlot:
        slot = await session.get(UploadSlot, slot_id)
        if slot is None:
            raise _slot_nf(slot_id)
        case = await session.get(Case, slot.case_id)
        if case is None:
            raise _slot_nf(slot_id)
        try:
            await require_case(session, me, case)
        except NotFound:
            raise _slot_nf(slot_id) from None
        return slot

    def _check_open(self, slot: UploadSlot, now: dt.datetime) -> None:
        if slot.state not in OPEN_SLOT:
            raise Conflict(
                "upload.state", state=slot.state, state_zh=STATE_ZH.get(slot.state, slot.state)
            )
        if slot.expires_at < now:
            raise Invalid("upload.expired")

    def parts_count(self, slot: UploadSlot) -> int:
        return math.ceil(slot.declared_size / self.settings.upload_part_bytes)

    async def part_urls(
        self, session: AsyncSession, me: Principal, slot_id: int, numbers: list[int]
    ) -> list[PartUrl]:
        slot = await self._my_slot(session, me, slot_id)
        self._check_open(slot, utcnow())
        if slot.state != SlotState.multipart:
            raise Invalid("upload.not_multipart")
        count = self.parts_count(slot)
        if any(n < 1 or n > count for n in numbers):
            raise Invalid("upload.part_number", parts=count)
        forms = await self._storage(
            self.store.part_forms(
                slot.key,
                slot.multipart_id,
                sorted(set(numbers)),
                expires=self.settings.upload_url_seconds,
                part_bytes=self.settings.upload_part_bytes,
            )
        )
        return [
            PartUrl(number=n, method=f.method, url=f.url)
            for n, f in zip(sorted(set(numbers)), forms, strict=True)
        ]

    async def list_parts(
        self, session: AsyncSession, me: Principal, slot_id: int
    ) -> list[PartRead]:
        """Parts the store already holds: a client resumes by sending only the others."""
        slot = await self._my_slot(session, me, slot_id)
        if slot.state != SlotState.multipart:
            raise Invalid("upload.not_multipart")
        parts = await self._storage(self.store.list_parts(slot.key, slot.multipart_id))
        return [PartRead(number=p.number, size=p.size) for p in parts]

    async def _storage(self, aw: Awaitable[Any]) -> Any:
        try:
            return await aw
        except AppError:
            raise
        except Exception as e:
            log.warning("storage error: %s", e)
            raise Unavailable() from None

    # -- confirm: the object becomes a material

    async def confirm(self, me: Principal, slot_id: int, **kw: Any) -> MaterialRead:
        # 1. Claim the slot (one confirm wins; a second one is told it is in progress or done).
        async with self.db.session() as session:
            slot = await self._my_slot(session, me, slot_id)
            case = await self._open_case(session, me, slot.case_id)
            self._check_open(slot, utcnow())
            if slot.state == SlotState.processing:
                raise Conflict("upload.state", state=slot.state, state_zh=STATE_ZH[slot.state])
            previous = SlotState(slot.state)
            claimed = await session.exec(
                update(UploadSlot)  # type: ignore[call-overload]
                .where(col(UploadSlot.id) == slot_id, col(UploadSlot.state) == previous)
                .values(state=SlotState.processing)
            )
            if claimed.rowcount != 1:
                raise Conflict("upload.state", state="processing", state_zh=STATE_ZH["processing"])
            await session.commit()
            spec = await self._spec(session, case, slot.spec_id) if slot.spec_id else None
            snapshot = (slot.key, slot.multipart_id, slot.declared_type, slot.max_bytes)
            retention, case_id = slot.retention_days, slot.case_id
            resident_id, filename = case.resident_id, slot.filename
        # 2. Check the object outside any transaction: this is the slow part.
        try:
            stored = await self._check_object(
                snapshot, previous, spec, retention=retention, case_id=case_id
            )
        except _Refused as r:
            await self._set_slot(slot_id, SlotState.failed, error=r.error.code)
            raise r.error from None
        except _Retry as r:
            await self._set_slot(slot_id, previous)
            raise r.error from None
        except Exception as e:
            log.warning("storage error while confirming upload %s: %s", slot_id, e)
            await self._set_slot(slot_id, SlotState.failed, error="storage")
            raise Unavailable() from None
        # 3. Record it; only now does the material exist.
        async with self.db.session() as session:
            now = utcnow()
            material = _new_material(
                me,
                now=now,
                retention=retention,
                case_id=case_id,
                spec_id=spec.id if spec else None,
                name=spec.name if spec else (filename or "其他材料")[:100],
                resident_id=resident_id,
                slot_id=slot_id,
                key=stored.key,
                thumb_key=stored.thumb_key,
                content_type=stored.content_type,
                size=stored.size,
                sha256=stored.sha256,
                width=stored.width,
                height=stored.height,
                filename=filename,
                source=MaterialSource.upload,
            )
            read = await self._record(session, me, material, kw)
            await session.exec(
                update(UploadSlot)  # type: ignore[call-overload]
                .where(col(UploadSlot.id) == slot_id)
                .values(state=SlotState.confirmed)
            )
            await session.commit()
            await self._emit(session, case_id, "material:uploaded", _payload(read))
        return read

    async def _record(
        self, session: AsyncSession, me: Principal, material: Material, kw: dict[str, Any]
    ) -> MaterialRead:
        """Add a new material: earlier rejected ones of the same spec are superseded."""
        now = material.uploaded_at
        if material.spec_id is not None:
            await session.exec(
                update(Material)  # type: ignore[call-overload]
                .where(
                    col(Material.case_id) == material.case_id,
                    col(Material.spec_id) == material.spec_id,
                    col(Material.status) == MaterialStatus.rejected,
                )
                .values(status=MaterialStatus.superseded)
            )
            await session.exec(
                update(MaterialRequest)  # type: ignore[call-overload]
                .where(
                    col(MaterialRequest.case_id) == material.case_id,
                    col(MaterialRequest.spec_id) == material.spec_id,
                    col(MaterialRequest.fulfilled_at).is_(None),
                )
                .values(fulfilled_at=now)
            )
        session.add(material)
        await session.flush()
        case = await session.get(Case, material.case_id)
        assert case is not None and material.id is not None
        cases.add_event(
            session,
            case,
            f"material.{material.source}",
            actor_id=me.staff_fk,
            at=now,
            data={
                "material_id": material.id,
                "name": material.name,
                "content_type": material.content_type,
                "size": material.size,
                "sha256": material.sha256,
                **({"reused_from": material.reused_from} if material.reused_from else {}),
            },
        )
        audit.record(
            session,
            action=f"material.{material.source}",
            target_type="material",
            target_id=material.id,
            detail={"case": material.case_id, "sha256": material.sha256},
            **kw,
        )
        return material_read(material)

    async def _set_slot(self, slot_id: int, state: SlotState, error: str = "") -> None:
        async with self.db.session() as session:
            await session.exec(
                update(UploadSlot)  # type: ignore[call-overload]
                .where(col(UploadSlot.id) == slot_id)
                .values(state=state, error=error)
            )
            await session.commit()

    async def _check_object(
        self,
        snapshot: tuple[str, str, str, int],
        previous: SlotState,
        spec: Spec | None,
        *,
        retention: int,
        case_id: int,
    ) -> _Stored:
        key, multipart_id, declared, max_bytes = snapshot
        store = self.store
        if previous == SlotState.multipart:
            await self._complete_multipart(key, multipart_id, max_bytes)
        info = await store.head(key)
        if info is None:
            raise _Retry(Invalid("upload.not_received"))
        # The upload URL may still be valid for a few minutes: move the object to a key no
        # link points at before looking at it, so what we check is what we keep.
        final = new_key(retention, case_id, inspect.EXTENSIONS[declared])
        await store.move(key, final)
        try:
            return await self._inspect(final, declared, max_bytes, spec, retention, case_id)
        except BaseException:
            await store.delete(final)
            raise

    async def _complete_multipart(self, key: str, upload_id: str, max_bytes: int) -> None:
        parts = await self.store.list_parts(key, upload_id)
        count = math.ceil(max_bytes / self.settings.upload_part_bytes)
        have = {p.number: p for p in parts}
        missing = [n for n in range(1, count + 1) if n not in have]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + ("…" if len(missing) > 10 else "")
            raise _Retry(Invalid("upload.incomplete", missing=shown))
        part_bytes = self.settings.upload_part_bytes
        short = [n for n in range(1, count) if have[n].size != part_bytes]
        if short:
            # Every part but the last has the slot's part size; a short one was cut off.
            raise _Retry(Invalid("upload.incomplete", missing=", ".join(map(str, short[:10]))))
        total = sum(have[n].size for n in range(1, count + 1))
        if total > max_bytes:
            await self.store.abort_multipart(key, upload_id)
            raise _Refused(TooLarge("upload.too_large", size=total, limit=max_bytes))
        ordered: list[Part] = [have[n] for n in range(1, count + 1)]
        await self.store.complete_multipart(key, upload_id, ordered)

    async def _inspect(
        self,
        key: str,
        declared: str,
        max_bytes: int,
        spec: Spec | None,
        retention: int,
        case_id: int,
    ) -> _Stored:
        s = self.settings
        info = await self.store.head(key)
        if info is None:  # pragma: no cover - we just wrote it
            raise _Retry(Invalid("upload.not_received"))
        if info.size == 0:
            raise _Refused(Invalid("upload.empty"))
        if info.size > max_bytes:
            raise _Refused(TooLarge("upload.too_large", size=info.size, limit=max_bytes))
        found = inspect.sniff(await self.store.read_head(key, inspect.SNIFF_BYTES))
        if found not in ALLOWED_TYPES:
            raise _Refused(Invalid("upload.type_not_allowed", found=found))
        if found != declared:
            raise _Refused(Invalid("upload.type_mismatch", found=found, declared=declared))
        allowed = spec.accepted_types if spec else sorted(ALLOWED_TYPES)
        if found not in allowed:
            raise _Refused(
                Invalid(
                    "material.type",
                    name=spec.name if spec else "",
                    accepted=", ".join(allowed),
                    found=found,
                )
            )
        if found not in inspect.IMAGE_TYPES:
            sha, size = await self.store.digest(key)
            return _Stored(key, "", found, size, sha, None, None)
        raw = await self.store.get_bytes(key)
        try:
            clean = await asyncio.to_thread(
                inspect.clean_image,
                raw,
                found,
                max_pixels=s.image_max_pixels,
                thumb_px=s.thumbnail_pixels,
            )
        except inspect.ImageRefused as e:
            raise _Refused(Invalid(e.code, **e.params)) from None
        del raw
        clean_key = new_key(retention, case_id, inspect.EXTENSIONS[clean.content_type])
        thumb_key = clean_key.rsplit(".", 1)[0] + ".thumb.jpg"
        try:
            await self.store.put_bytes(clean_key, clean.data, clean.content_type)
            await self.store.put_bytes(thumb_key, clean.thumbnail, "image/jpeg")
        except BaseException:
            await self.store.delete(clean_key)
            await self.store.delete(thumb_key)
            raise
        await self.store.delete(key)  # the original, with its EXIF and GPS, is not kept
        return _Stored(
            clean_key,
            thumb_key,
            clean.content_type,
            len(clean.data),
            clean.sha256,
            clean.width,
            clean.height,
        )

    # -- the clerk's side

    async def review(
        self, session: AsyncSession, me: Principal, material_id: int, body: ReviewIn, **kw: Any
    ) -> MaterialRead:
        m = await session.get(Material, material_id)
        if m is None:
            raise _material_nf(material_id)
        case = await session.get(Case, m.case_id)
        if case is None:
            raise _material_nf(material_id)
        try:
            await self._require_reviewer(session, me, case)
            await require_case(session, me, case)
        except NotFound:
            raise _material_nf(material_id) from None
        if case.status in cases.CLOSED:
            raise Conflict("case.closed")
        if m.status not in (
            MaterialStatus.pending,
            MaterialStatus.accepted,
            MaterialStatus.rejected,
        ):
            raise Conflict("material.reviewed", status=m.status)
        if body.decision == "reject" and not body.reason:
            raise Invalid("material.reason_required")
        now = utcnow()
        m.status = MaterialStatus.accepted if body.decision == "accept" else MaterialStatus.rejected
        m.reason = body.reason if body.decision == "reject" else ""
        m.reviewed_by = me.staff_id
        m.reviewed_at = now
        session.add(m)
        cases.add_event(
            session,
            case,
            f"material.{m.status}",
            actor_id=me.staff_id,
            at=now,
            data={"material_id": m.id, "name": m.name, "reason": m.reason},
        )
        audit.record(
            session,
            action=f"material.{body.decision}",
            target_type="material",
            target_id=material_id,
            detail={"case": case.id, "reason": m.reason},
            **kw,
        )
        await session.commit()
        read = material_read(m)
        await self._emit(session, m.case_id, "material:reviewed", _payload(read))
        return read

    async def request(
        self,
        session: AsyncSession,
        me: Principal,
        case_id: int,
        spec_id: int,
        body: RequestIn,
        **kw: Any,
    ) -> ChecklistItem:
        case = await self._open_case(session, me, case_id)
        await self._require_reviewer(session, me, case)
        spec = await self._spec(session, case, spec_id)
        now = utcnow()
        session.add(
            MaterialRequest(
                case_id=case_id,
                spec_id=spec_id,
                note=body.note,
                requested_by=me.staff_id,
                requested_at=now,
            )
        )
        cases.add_event(
            session,
            case,
            "material.requested",
            actor_id=me.staff_id,
            at=now,
            data={"spec_id": spec_id, "name": spec.name, "note": body.note},
        )
        audit.record(
            session,
            action="material.request",
            target_type="case",
            target_id=case_id,
            detail={"spec": spec_id},
            **kw,
        )
        await session.commit()
        await self._emit(
            session,
            case_id,
            "material:requested",
            {"case_id": case_id, "spec_id": spec_id, "name": spec.name, "note": body.note},
        )
        checklist = await build(session, case)
        return next(i for i in checklist.items if i.spec_id == spec_id)

    async def checklist(self, session: AsyncSession, me: Principal, case_id: int) -> Checklist:
        case = await session.get(Case, case_id)
        if case is None:
            raise _case_nf(case_id)
        await require_case(session, me, case)
        return await build(session, case)

    # -- viewing

    async def link(
        self,
        session: AsyncSession,
        me: Principal,
        material_id: int,
        variant: Literal["original", "thumbnail"],
        **kw: Any,
    ) -> LinkRead:
        m = await session.get(Material, material_id)
        case = await session.get(Case, m.case_id) if m else None
        if m is None or case is None or m.status == MaterialStatus.deleted:
            raise _material_nf(material_id)
        try:
            await self._require_viewer(session, me, case)
        except NotFound:
            raise _material_nf(material_id) from None
        key = m.thumb_key if variant == "thumbnail" else m.key
        if not key:
            raise NotFound(f"材料 {material_id} 的缩略图", f"Thumbnail of material {material_id}")
        seconds = self.settings.download_url_seconds
        ctype = "image/jpeg" if variant == "thumbnail" else m.content_type
        url = await self._storage(
            self.store.download_url(
                key, expires=seconds, content_type=ctype, filename=m.filename or m.name
            )
        )
        audit.record(
            session,
            action="material.view",
            target_type="material",
            target_id=material_id,
            detail={"case": case.id, "variant": variant},
            **kw,
        )
        await session.commit()
        return LinkRead(url=url, expires_at=utcnow() + dt.timedelta(seconds=seconds))

    # -- reuse (材料少交免交)

    async def reusable(
        self, session: AsyncSession, me: Principal, case_id: int
    ) -> list[ReuseCandidate]:
        case = await self._open_case(session, me, case_id)
        if case.resident_id is None:
            return []
        specs = {s.name: s for s in await specs_for(session, case)}
        rows = await session.exec(
            select(Material, Case)
            .join(Case, col(Case.id) == col(Material.case_id))
            .where(
                Material.resident_id == case.resident_id,
                Material.case_id != case_id,
                Material.status == MaterialStatus.accepted,
                col(Material.expires_at) > utcnow(),
                col(Material.name).in_(list(specs)),
            )
            .order_by(col(Material.id).desc())
            .limit(50)
        )
        return [
            ReuseCandidate(
                spec_id=specs[m.name].id,
                name=m.name,
                material=material_read(m),
                from_case_number=c.number,
                from_case_at=c.created_at,
            )
            for m, c in rows.all()
        ]

    async def reuse(
        self, session: AsyncSession, me: Principal, case_id: int, body: ReuseIn, **kw: Any
    ) -> MaterialRead:
        if not body.consent:
            raise Invalid("material.consent")
        case = await self._open_case(session, me, case_id)
        spec = await self._spec(session, case, body.spec_id)
        src = await session.get(Material, body.material_id)
        ok = (
            src is not None
            and case.resident_id is not None
            and src.resident_id == case.resident_id
            and src.case_id != case_id
            and src.status == MaterialStatus.accepted
            and src.expires_at > utcnow()
            and src.name == spec.name
        )
        if not ok or src is None:
            raise Invalid("material.not_reusable")
        retention = await self._retention(session, case)
        ext = src.key.rsplit(".", 1)[1]
        key = new_key(retention, case_id, ext)
        thumb = key.rsplit(".", 1)[0] + ".thumb.jpg" if src.thumb_key else ""
        try:
            await self.store.copy(src.key, key)
            if thumb:
                await self.store.copy(src.thumb_key, thumb)
        except Exception as e:
            log.warning("storage error while reusing material %s: %s", src.id, e)
            await self.store.delete(key)
            raise Unavailable() from None
        now = utcnow()
        material = _new_material(
            me,
            now=now,
            retention=retention,
            case_id=case_id,
            spec_id=spec.id,
            name=spec.name,
            resident_id=case.resident_id,
            key=key,
            thumb_key=thumb,
            content_type=src.content_type,
            size=src.size,
            sha256=src.sha256,
            width=src.width,
            height=src.height,
            filename=src.filename,
            source=MaterialSource.reuse,
            reused_from=src.id,
            consent_at=now,
        )
        read = await self._record(session, me, material, kw)
        await session.commit()
        await self._emit(session, case_id, "material:uploaded", _payload(read))
        return read

    # -- snapshots from the call's video

    async def add_snapshot(
        self, me: Principal, case_id: int, jpeg: bytes, *, subject: str, **kw: Any
    ) -> MaterialRead:
        """A still the clerk captured from a participant's video, kept like an upload."""
        kw.setdefault("actor", me)
        s = self.settings
        async with self.db.session() as session:
            case = await self._open_case(session, me, case_id)
            retention = await self._retention(session, case)
            resident_id = case.resident_id
        clean = await asyncio.to_thread(
            inspect.clean_image,
            jpeg,
            "image/jpeg",
            max_pixels=s.image_max_pixels,
            thumb_px=s.thumbnail_pixels,
        )
        key = new_key(retention, case_id, "jpg")
        thumb = key.rsplit(".", 1)[0] + ".thumb.jpg"
        await self._storage(self.store.put_bytes(key, clean.data, "image/jpeg"))
        await self._storage(self.store.put_bytes(thumb, clean.thumbnail, "image/jpeg"))
        now = utcnow()
        async with self.db.session() as session:
            material = _new_material(
                me,
                now=now,
                retention=retention,
                case_id=case_id,
                name=f"视频截图（{subject}）"[:100],
                resident_id=resident_id,
                key=key,
                thumb_key=thumb,
                content_type="image/jpeg",
                size=len(clean.data),
                sha256=clean.sha256,
                width=clean.width,
                height=clean.height,
                filename=f"snapshot-{now:%Y%m%d-%H%M%S}.jpg",
                source=MaterialSource.snapshot,
            )
            read = await self._record(session, me, material, kw)
            await session.commit()
            await self._emit(session, case_id, "material:uploaded", _payload(read))
        return read

    # -- retention and clean-up

    async def apply_retention_rules(self) -> bool:
        """Mirror the items' retention periods as bucket lifecycle rules (S3), best effort."""
        try:
            async with self.db.session() as session:
                days = list(
                    (await session.exec(select(ServiceItem.retention_days).distinct())).all()
                )
            return await self.store.set_retention(days)
        except Exception as e:  # the database may not be up yet; the sweep still runs later
            log.warning("retention rules not applied: %s", e)
            return False

    async def sweep(self, now: dt.datetime | None = None) -> SweepReport:
        """Delete expired documents, abandoned uploads' bytes, and objects nobody refers to."""
        now = now or utcnow()
        report = SweepReport()
        await self._sweep_expired(now, report)
        await self._sweep_expired_segments(now, report)
        await self._sweep_slots(now, report)
        await self._sweep_orphans(now, report)
        return report

    async def _sweep_expired(self, now: dt.datetime, report: SweepReport) -> None:
        while True:
            async with self.db.session() as session:
                batch = list(
                    (
                        await session.exec(
                            select(Material)
                            .where(
                                col(Material.expires_at) < now,
                                Material.status != MaterialStatus.deleted,
                            )
                            .order_by(col(Material.id))
                            .limit(200)
                        )
                    ).all()
                )
                if not batch:
                    return
                for m in batch:
                    try:
                        await self.store.delete(m.key)
                        if m.thumb_key:
                            await self.store.delete(m.thumb_key)
                    except Exception as e:  # the next sweep tries again
                        report.errors.append(f"material {m.id}: {e}")
                        return
                    m.status = MaterialStatus.deleted
                    m.deleted_at = now
                    session.add(m)
                    case = await session.get(Case, m.case_id)
                    if case is not None:
                        cases.add_event(
                            session,
                            case,
                            "material.deleted",
                            actor_id=None,
                            at=now,
                            data={"material_id": m.id, "name": m.name, "reason": "retention"},
                        )
                    audit.record(
                        session,
                        actor=None,
                        action="material.delete",
                        target_type="material",
                        target_id=m.id or 0,
                        detail={"case": m.case_id, "reason": "retention", "sha256": m.sha256},
                    )
                    report.expired += 1
                await session.commit()

    async def _sweep_expired_segments(self, now: dt.datetime, report: SweepReport) -> None:
        """Recording segments past their item's retention: object and row go, the audit stays."""
        async with self.db.session() as session:
            rows = list(
                (
                    await session.exec(
                        select(RecordingSegment)
                        .where(col(RecordingSegment.expires_at) < now)
                        .limit(500)
                    )
                ).all()
            )
            for seg in rows:
                try:
                    await self.store.delete(seg.key)
                except Exception as e:
                    report.errors.append(f"segment {seg.id}: {e}")
                    continue
                audit.record(
                    session,
                    actor=None,
                    action="recording.delete",
                    target_type="recording",
                    target_id=seg.recording_id,
                    detail={"segment": seg.index, "sha256": seg.sha256, "reason": "retention"},
                )
                await session.delete(seg)
                report.expired += 1
            await session.commit()

    async def _sweep_slots(self, now: dt.datetime, report: SweepReport) -> None:
        async with self.db.session() as session:
            stale = list(
                (
                    await session.exec(
                        select(UploadSlot).where(
                            col(UploadSlot.state).in_([s.value for s in OPEN_SLOT]),
                            col(UploadSlot.expires_at) < now,
                        )
                    )
                ).all()
            )
            for slot in stale:
                try:
                    if slot.multipart_id:
                        await self.store.abort_multipart(slot.key, slot.multipart_id)
                    await self.store.delete(slot.key)
                except Exception as e:
                    report.errors.append(f"slot {slot.id}: {e}")
                    continue
                slot.state = SlotState.abandoned
                session.add(slot)
                report.abandoned += 1
            await session.commit()

    async def _sweep_orphans(self, now: dt.datetime, report: SweepReport) -> None:
        cutoff = now - dt.timedelta(seconds=self.settings.orphan_grace_seconds)
        objects = await self.store.list_objects()
        async with self.db.session() as session:
            known: set[str] = set()
            rows = await session.exec(
                select(Material.key, Material.thumb_key).where(
                    Material.status != MaterialStatus.deleted
                )
            )
            for key, thumb in rows.all():
                known.add(key)
                if thumb:
                    known.add(thumb)
            segments = await session.exec(select(RecordingSegment.key))
            known.update(segments.all())
            open_slots = await session.exec(
                select(UploadSlot.key).where(
                    col(UploadSlot.state).in_([s.value for s in OPEN_SLOT])
                )
            )
            known.update(open_slots.all())
        for obj in objects:
            if obj.key in known or obj.modified > cutoff:
                continue
            if not is_valid_key(obj.key):
                continue  # not ours: never delete what CloudWindow did not write
            try:
                await self.store.delete(obj.key)
                report.orphans += 1
            except Exception as e:
                report.errors.append(f"orphan {obj.key}: {e}")
        stale_temp = getattr(self.store, "stale_temp", None)
        if stale_temp is not None:
            await stale_temp(cutoff)


@dataclass(frozen=True)
class _Stored:
    key: str
    thumb_key: str
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None


class _Refused(Exception):
    """The object itself is unacceptable: the slot fails and its bytes are deleted."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.code)
        self.error = error


class _Retry(Exception):
    """Not ready yet (nothing uploaded, parts missing): the slot stays open."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.code)
        self.error = error


def _new_material(me: Principal, *, now: dt.datetime, retention: int, **fields: Any) -> Material:
    """A material waiting for the clerk, stored by `me` now, kept for the item's retention."""
    return Material(
        status=MaterialStatus.pending,
        uploaded_by=me.staff_fk,
        uploaded_by_resident=me.resident_id,
        uploaded_at=now,
        expires_at=now + dt.timedelta(days=retention),
        **fields,
    )


def _payload(read: MaterialRead) -> dict[str, Any]:
    return {"case_id": read.case_id, "material": read.model_dump(mode="json")}

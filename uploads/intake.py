"""Getting a document in: upload slots, presigned POST/PUT, multipart and resume, confirm
(move to a fresh key, size and type check, photo cleaning) and snapshots from a call.

The rule that keeps records honest: a material row is added only after its object is in the
store and has been checked, and the unit of work commits it after that. A crash in between
leaves an orphan object, which the sweep removes, never a row without its object.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import audit
from core.access import CaseUse, Principal, require_case
from core.db import utcnow
from core.errors import AppError, Conflict, Invalid, TooLarge
from core.events import Outbox
from core.models import Case
from core.settings import Settings
from uploads import inspect
from uploads.checklist import Spec
from uploads.common import (
    ALLOWED_TYPES,
    Unavailable,
    log,
    new_material,
    open_case,
    record,
    require_open,
    retention_days,
    slot_nf,
    spec_of,
    storage,
    thumb_key_of,
)
from uploads.events import MaterialUploaded, tell_calls
from uploads.models import (
    OPEN_SLOT,
    MaterialRead,
    MaterialSource,
    PartRead,
    PartUrl,
    SlotIn,
    SlotRead,
    SlotState,
    UploadSlot,
)
from uploads.storage import ObjectStore, Part, PartMismatch, new_key

STATE_ZH = MappingProxyType(
    {
        "confirmed": "确认",
        "processing": "在处理中",
        "failed": "被拒收",
        "abandoned": "作废",
    }
)


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


def _state_conflict(state: str) -> Conflict:
    return Conflict("upload.state", state=state, state_zh=STATE_ZH.get(state, state))


async def slot_open_at(session: AsyncSession, key: str) -> bool:
    """Whether an upload slot still waits for bytes at `key` (the local store's PUT route)."""
    state = (await session.exec(select(UploadSlot.state).where(UploadSlot.key == key))).first()
    return state is not None and state in [s.value for s in OPEN_SLOT]


class Intake:
    """Slots, uploads and snapshots of one app's object store."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    # -- slots

    async def create_slot(
        self,
        *,
        session: AsyncSession,
        me: Principal,
        case_id: int,
        body: SlotIn,
        audit_kw: dict[str, Any],
    ) -> SlotRead:
        """Permission to put one object at a key the server chose, checked against the line."""
        s = self.settings
        case = await open_case(session, me, case_id)
        spec = await spec_of(session, case, body.spec_id) if body.spec_id else None
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
        retention = await retention_days(session, case)
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
        form = None
        if body.multipart:
            slot.multipart_id = await storage(self.store.start_multipart(key, declared))
        else:
            form = await storage(
                self.store.upload_form(
                    key, content_type=declared, max_bytes=body.size, expires=s.upload_url_seconds
                )
            )
        session.add(slot)
        await session.flush()
        assert slot.id is not None
        audit.record(
            session,
            action="material.upload_slot",
            target_type="case",
            target_id=case_id,
            detail={"slot": slot.id, "spec": slot.spec_id, "size": body.size, "type": declared},
            **audit_kw,
        )
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

    async def _my_slot(
        self, session: AsyncSession, me: Principal, slot_id: int
    ) -> tuple[UploadSlot, Case]:
        """The slot and its case, if `me` may add materials to it (else 404, as for a forged id)."""
        slot = await session.get(UploadSlot, slot_id)
        case = await session.get(Case, slot.case_id) if slot else None
        if slot is None or case is None:
            raise slot_nf(slot_id)
        await require_case(session, me, case, CaseUse.add_material, not_found=slot_nf(slot_id))
        return slot, case

    def _check_open(self, slot: UploadSlot, now: dt.datetime) -> None:
        if slot.state not in OPEN_SLOT:
            raise _state_conflict(slot.state)
        if slot.expires_at < now:
            raise Invalid("upload.expired")

    def parts_count(self, slot: UploadSlot) -> int:
        return math.ceil(slot.declared_size / self.settings.upload_part_bytes)

    async def part_urls(
        self, *, session: AsyncSession, me: Principal, slot_id: int, numbers: list[int]
    ) -> list[PartUrl]:
        """Signed PUT URLs for some parts of a multipart upload."""
        slot, _case = await self._my_slot(session, me, slot_id)
        self._check_open(slot, utcnow())
        if slot.state != SlotState.multipart:
            raise Invalid("upload.not_multipart")
        count = self.parts_count(slot)
        if any(n < 1 or n > count for n in numbers):
            raise Invalid("upload.part_number", parts=count)
        wanted = sorted(set(numbers))
        forms = await storage(
            self.store.part_forms(
                slot.key,
                slot.multipart_id,
                wanted,
                expires=self.settings.upload_url_seconds,
                part_bytes=self.settings.upload_part_bytes,
            )
        )
        return [
            PartUrl(number=n, method=f.method, url=f.url)
            for n, f in zip(wanted, forms, strict=True)
        ]

    async def list_parts(
        self, *, session: AsyncSession, me: Principal, slot_id: int
    ) -> list[PartRead]:
        """Parts the store already holds: a client resumes by sending only the others."""
        slot, _case = await self._my_slot(session, me, slot_id)
        if slot.state != SlotState.multipart:
            raise Invalid("upload.not_multipart")
        parts = await storage(self.store.list_parts(slot.key, slot.multipart_id))
        return [PartRead(number=p.number, size=p.size) for p in parts]

    # -- confirm: the object becomes a material

    async def confirm(
        self,
        *,
        session: AsyncSession,
        outbox: Outbox,
        me: Principal,
        slot_id: int,
        audit_kw: dict[str, Any],
    ) -> MaterialRead:
        """Claim the slot, move and check its object, then add the material.

        A refusal that spends the slot is kept (the slot fails); "not received yet" or "parts
        missing" rolls the claim back, so the slot stays open.
        """
        slot, case = await self._my_slot(session, me, slot_id)
        require_open(case)
        self._check_open(slot, utcnow())
        if slot.state == SlotState.processing:
            raise _state_conflict(slot.state)
        # 1. Claim the slot: one confirm wins, a concurrent one is told it is in progress.
        previous = SlotState(slot.state)
        claimed = await session.exec(
            update(UploadSlot)  # type: ignore[call-overload]
            .where(col(UploadSlot.id) == slot_id, col(UploadSlot.state) == previous)
            .values(state=SlotState.processing)
        )
        if claimed.rowcount != 1:
            raise _state_conflict(SlotState.processing)
        spec = await spec_of(session, case, slot.spec_id) if slot.spec_id else None
        case_id, filename = slot.case_id, slot.filename
        # 2. Move and check the object: this is the slow part.
        try:
            stored = await self._check_object(slot, previous, spec)
        except _Refused as r:
            await self._set_slot(session, slot_id, SlotState.failed, error=r.error.code)
            raise r.error.kept() from None
        except _Retry as r:
            raise r.error from None
        except Exception as e:
            log.warning("storage error while confirming upload %s: %s", slot_id, e)
            await self._set_slot(session, slot_id, SlotState.failed, error="storage")
            raise Unavailable().kept() from None
        # 3. Record it; only now does the material exist.
        material = new_material(
            me,
            now=utcnow(),
            retention=slot.retention_days,
            case_id=case_id,
            spec_id=spec.id if spec else None,
            name=spec.name if spec else (filename or "其他材料")[:100],
            resident_id=case.resident_id,
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
        read = await record(session, me, material, audit_kw)
        await self._set_slot(session, slot_id, SlotState.confirmed)
        await tell_calls(
            session,
            outbox,
            case_id,
            lambda call_id: MaterialUploaded(call_id=call_id, case_id=case_id, material=read),
        )
        return read

    async def _set_slot(
        self, session: AsyncSession, slot_id: int, state: SlotState, error: str = ""
    ) -> None:
        await session.exec(
            update(UploadSlot)  # type: ignore[call-overload]
            .where(col(UploadSlot.id) == slot_id)
            .values(state=state, error=error)
        )

    async def _check_object(
        self, slot: UploadSlot, previous: SlotState, spec: Spec | None
    ) -> _Stored:
        key, declared, max_bytes = slot.key, slot.declared_type, slot.max_bytes
        store = self.store
        if previous == SlotState.multipart:
            await self._complete_multipart(key, slot.multipart_id, max_bytes)
        info = await store.head(key)
        if info is None:
            raise _Retry(Invalid("upload.not_received"))
        # The upload URL may still be valid for a few minutes: move the object to a key no
        # link points at before looking at it, so what we check is what we keep.
        final = new_key(slot.retention_days, slot.case_id, inspect.EXTENSIONS[declared])
        await store.move(key, final)
        try:
            return await self._inspect(final, declared, max_bytes, spec, slot)
        except BaseException:
            await store.delete(final)
            raise

    async def _complete_multipart(self, key: str, upload_id: str, max_bytes: int) -> None:
        parts = await self.store.list_parts(key, upload_id)
        part_bytes = self.settings.upload_part_bytes
        count = math.ceil(max_bytes / part_bytes)
        have = {p.number: p for p in parts}
        missing = [n for n in range(1, count + 1) if n not in have]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + ("…" if len(missing) > 10 else "")
            raise _Retry(Invalid("upload.incomplete", missing=shown))
        short = [n for n in range(1, count) if have[n].size != part_bytes]
        if short:
            # Every part but the last has the slot's part size; a short one was cut off.
            raise _Retry(Invalid("upload.incomplete", missing=", ".join(map(str, short[:10]))))
        total = sum(have[n].size for n in range(1, count + 1))
        if total > max_bytes:
            await self.store.abort_multipart(key, upload_id)
            raise _Refused(TooLarge("upload.too_large", size=total, limit=max_bytes))
        ordered: list[Part] = [have[n] for n in range(1, count + 1)]
        try:
            await self.store.complete_multipart(key, upload_id, ordered)
        except PartMismatch as e:
            # The store checked every part against what it recorded when it arrived; the
            # changed ones must be sent again, so the slot stays open.
            shown = ", ".join(map(str, e.numbers[:10])) + ("…" if len(e.numbers) > 10 else "")
            raise _Retry(Invalid("upload.part_mismatch", parts=shown)) from None

    async def _inspect(
        self, key: str, declared: str, max_bytes: int, spec: Spec | None, slot: UploadSlot
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
        clean_key = new_key(
            slot.retention_days, slot.case_id, inspect.EXTENSIONS[clean.content_type]
        )
        thumb_key = thumb_key_of(clean_key)
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

    # -- snapshots from the call's video

    async def add_snapshot(
        self,
        *,
        session: AsyncSession,
        outbox: Outbox,
        me: Principal,
        case_id: int,
        jpeg: bytes,
        subject: str,
        audit_kw: dict[str, Any],
    ) -> MaterialRead:
        """A still the clerk captured from a participant's video, kept like an upload."""
        s = self.settings
        case = await open_case(session, me, case_id)
        retention = await retention_days(session, case)
        clean = await asyncio.to_thread(
            inspect.clean_image,
            jpeg,
            "image/jpeg",
            max_pixels=s.image_max_pixels,
            thumb_px=s.thumbnail_pixels,
        )
        key = new_key(retention, case_id, "jpg")
        thumb = thumb_key_of(key)
        await storage(self.store.put_bytes(key, clean.data, "image/jpeg"))
        await storage(self.store.put_bytes(thumb, clean.thumbnail, "image/jpeg"))
        now = utcnow()
        material = new_material(
            me,
            now=now,
            retention=retention,
            case_id=case_id,
            name=f"视频截图（{subject}）"[:100],
            resident_id=case.resident_id,
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
        read = await record(session, me, material, audit_kw)
        await tell_calls(
            session,
            outbox,
            case_id,
            lambda call_id: MaterialUploaded(call_id=call_id, case_id=case_id, material=read),
        )
        return read

"""The local store on its own: a write that fails leaves nothing, parts are replaced whole."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from uploads.storage import CHUNK, LinkError, LocalStore, PartMismatch, new_key

PART = 5 * 1024 * 1024


async def _store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "objects", signing_key=b"k" * 32)
    await store.start()
    return store


def _files(root: Path) -> list[str]:
    """Every file under the store's directory, temp and part directories included."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def _breaks_after(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), CHUNK // 2):
        yield data[i : i + CHUNK // 2]
    raise ConnectionResetError("the client went away")


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), CHUNK // 2):
        yield data[i : i + CHUNK // 2]


async def test_a_stream_that_breaks_half_way_leaves_no_temp_file(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    key = new_key(30, 1, "pdf")
    with pytest.raises(ConnectionResetError):
        await store.write_stream(store.path(key), _breaks_after(os.urandom(3 * CHUNK + 17)))
    assert _files(store.root) == []
    assert await store.head(key) is None


async def test_a_write_that_fails_before_its_rename_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await _store(tmp_path)

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    for write in (
        lambda k: store.put_bytes(k, b"%PDF-" + os.urandom(1000), "application/pdf"),
        lambda k: store.write_stream(store.path(k), _chunks(os.urandom(CHUNK + 5))),
    ):
        with pytest.raises(OSError):
            await write(new_key(30, 1, "pdf"))
        assert _files(store.root) == []


async def test_a_copy_or_file_put_that_fails_before_its_rename_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await _store(tmp_path)
    src = new_key(30, 1, "pdf")
    await store.put_bytes(src, b"%PDF-" + os.urandom(1000), "application/pdf")
    upload = tmp_path / "upload.pdf"
    upload.write_bytes(b"%PDF-" + os.urandom(1000))

    def disk_full(_src: object, _dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    for write in (
        lambda k: store.copy(src, k),
        lambda k: store.put_file(k, upload, "application/pdf"),
    ):
        with pytest.raises(OSError):
            await write(new_key(30, 1, "pdf"))
        assert _files(store.root) == [src]


async def test_a_part_that_breaks_leaves_nothing_and_replaces_nothing(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    key = new_key(30, 1, "pdf")
    upload_id = await store.start_multipart(key, "application/pdf")
    first = os.urandom(PART)
    with pytest.raises(ConnectionResetError):
        await store.write_part(upload_id, 1, PART, _breaks_after(first[: PART // 2]))
    assert await store.list_parts(key, upload_id) == []
    assert _files(store.root) == []

    assert (await store.write_part(upload_id, 1, PART, _chunks(first))).size == PART
    last = os.urandom(1234)
    await store.write_part(upload_id, 2, PART, _chunks(last))
    listed = await store.list_parts(key, upload_id)
    assert [(p.number, p.size) for p in listed] == [(1, PART), (2, 1234)]
    assert listed[0].etag == f'"{hashlib.md5(first).hexdigest()}"'

    # Sent again with other bytes, broken half way: the part received before stays whole.
    with pytest.raises(ConnectionResetError):
        await store.write_part(upload_id, 1, PART, _breaks_after(os.urandom(PART)[: PART // 2]))
    assert await store.list_parts(key, upload_id) == listed
    await store.complete_multipart(key, upload_id, listed)
    assert await store.get_bytes(key) == first + last
    assert _files(store.root) == [key]


async def test_completing_refuses_a_part_whose_bytes_changed(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    key = new_key(30, 1, "pdf")
    upload_id = await store.start_multipart(key, "application/pdf")
    await store.write_part(upload_id, 1, PART, _chunks(os.urandom(PART)))
    await store.write_part(upload_id, 2, PART, _chunks(os.urandom(10)))
    listed = await store.list_parts(key, upload_id)
    (data,) = [p for p in store.part_dir(upload_id).iterdir() if p.name.startswith("00002-")]
    data.write_bytes(os.urandom(10))
    with pytest.raises(PartMismatch) as bad:
        await store.complete_multipart(key, upload_id, listed)
    assert bad.value.numbers == [2]
    assert await store.head(key) is None
    assert [p.number for p in await store.list_parts(key, upload_id)] == [1]
    assert list(store.tmp.iterdir()) == []


async def test_s3_completes_only_the_parts_it_listed(s3_server: Any, tmp_path: Path) -> None:
    import uuid

    from tests.conftest import base_settings
    from uploads.storage import S3Store

    settings = base_settings(
        "sqlite+aiosqlite:///unused.db",
        tmp_path,
        storage_backend="s3",
        s3_endpoint_url=s3_server.endpoint,
        s3_access_key_id=s3_server.access_key,
        s3_secret_access_key=s3_server.secret_key,
        s3_bucket=f"cw-{uuid.uuid4().hex[:12]}",
    )
    store = S3Store(settings)
    await store.start()
    try:
        key = new_key(30, 1, "pdf")
        upload_id = await store.start_multipart(key, "application/pdf")

        async def put(n: int, data: bytes) -> None:
            await store.run(
                store.client.upload_part,
                Bucket=store.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=n,
                Body=data,
            )

        first, last = os.urandom(PART), os.urandom(100)
        await put(1, first)
        await put(2, last)
        listed = await store.list_parts(key, upload_id)
        assert listed[0].etag == f'"{hashlib.md5(first).hexdigest()}"'
        await put(1, os.urandom(PART))  # replaced after the list was taken
        # The completion names each part by the ETag (MD5) we listed. A server either refuses
        # a part whose ETag changed (AWS: InvalidPart, which names the part) or assembles the
        # listed version (SeaweedFS); it never stores bytes that were not listed.
        try:
            await store.complete_multipart(key, upload_id, listed)
        except PartMismatch as bad:
            assert bad.numbers == [1]
            assert await store.head(key) is None
        else:
            assert await store.get_bytes(key) == first + last
    finally:
        await store.close()


async def test_a_signature_that_is_not_ascii_is_a_bad_signature(tmp_path: Path) -> None:
    """Any text may arrive in the query; only our own (ASCII) signature is compared."""
    store = await _store(tmp_path)
    url = store.signed_url("put", {"key": new_key(30, 1, "jpg"), "type": "image/jpeg"}, 60)
    query = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
    for forged in ("é", "签名", query["signature"][:-1] + "\u00ff"):
        with pytest.raises(LinkError) as e:
            store.verify("put", {**query, "signature": forged})
        assert e.value.code == "storage.bad_signature"

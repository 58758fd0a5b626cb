"""One module for both object stores, so the backends that must refuse alike are read together.

Object storage behind one interface: a local directory (the default) or any S3 API.

Keys are always chosen by the server (see `is_valid_key`). Browsers never send bytes through
the app on S3: they get a presigned POST (single files) or presigned part URLs (multipart),
and the app only sees the slot request and the confirm. The local store signs its own URLs the
same way, with an HMAC over what the URL allows, so both backends refuse tampered and expired
links alike. Every boto3 call runs in a thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.settings import Settings

log = logging.getLogger("cloudwindow.storage")

T = TypeVar("T")
# r<days>/c<case>/<uuid>.<ext>; thumbnails add ".thumb.jpg". Nothing else is a key.
KEY_RE = re.compile(r"^r[0-9]{1,5}/c[0-9]{1,10}/[0-9a-f]{32}(\.[a-z0-9]{1,5}){1,2}$")
CHUNK = 1024 * 1024
LOCAL_ROUTE = "/api/v1/objects"


def is_valid_key(key: str) -> bool:
    return bool(KEY_RE.fullmatch(key))


def new_key(retention_days: int, case_id: int, ext: str) -> str:
    return f"r{retention_days}/c{case_id}/{uuid.uuid4().hex}.{ext}"


@dataclass(frozen=True)
class UploadForm:
    """How the browser sends the bytes: a form POST (S3) or a raw PUT (local)."""

    method: str
    url: str
    fields: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: dt.datetime


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str


class PartMismatch(Exception):
    """Parts whose bytes are not what the store recorded when they arrived (or were replaced
    while the upload was being completed): the client must send them again."""

    def __init__(self, numbers: list[int]) -> None:
        super().__init__(f"parts {numbers} do not match")
        self.numbers = numbers


class ObjectStore(Protocol):
    """What the materials service needs from a store; both backends implement all of it."""

    name: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def upload_form(
        self, key: str, *, content_type: str, max_bytes: int, expires: int
    ) -> UploadForm: ...
    async def head(self, key: str) -> ObjectInfo | None: ...
    async def read_head(self, key: str, length: int) -> bytes: ...
    async def get_bytes(self, key: str) -> bytes: ...
    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...
    async def put_file(self, key: str, path: Path, content_type: str) -> None: ...
    async def digest(self, key: str) -> tuple[str, int]: ...
    async def copy(self, src: str, dst: str) -> None: ...
    async def move(self, src: str, dst: str) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def list_objects(self) -> list[ObjectInfo]: ...
    async def download_url(
        self, key: str, *, expires: int, content_type: str, filename: str
    ) -> str: ...
    async def start_multipart(self, key: str, content_type: str) -> str: ...
    async def part_forms(
        self, key: str, upload_id: str, numbers: list[int], *, expires: int, part_bytes: int
    ) -> list[UploadForm]: ...
    async def list_parts(self, key: str, upload_id: str) -> list[Part]: ...
    async def complete_multipart(self, key: str, upload_id: str, parts: list[Part]) -> None: ...
    async def abort_multipart(self, key: str, upload_id: str) -> None: ...
    async def set_retention(self, days: list[int]) -> bool: ...


def build_store(settings: Settings, secret: bytes) -> ObjectStore:
    if settings.storage_backend == "s3":
        return S3Store(settings)
    return LocalStore(settings.objects_dir, signing_key=_derive(secret, b"cloudwindow/objects"))


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.new(secret, label, hashlib.sha256).digest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- local directory


class LinkError(Exception):
    """A local object link that is tampered with, expired, or for a key that is not ours."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class LocalStore:
    """Objects as files under one directory; writes go to a temp file, then an atomic rename."""

    name = "local"

    def __init__(self, root: Path, *, signing_key: bytes) -> None:
        self.root = root.resolve()
        self.signing_key = signing_key
        self.tmp = self.root / ".tmp"
        self.parts = self.root / ".multipart"

    # paths and signatures

    def path(self, key: str) -> Path:
        if not is_valid_key(key):
            raise LinkError("storage.bad_key")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):  # belt and braces: KEY_RE already forbids ".."
            raise LinkError("storage.bad_key")
        return path

    def sign(self, params: dict[str, str]) -> str:
        msg = "\n".join(f"{k}={params[k]}" for k in sorted(params)).encode()
        return base64.urlsafe_b64encode(
            hmac.new(self.signing_key, msg, hashlib.sha256).digest()
        ).decode()

    def signed_url(self, action: str, params: dict[str, str], expires: int) -> str:
        full = {"action": action, **params, "expires": str(int(time.time()) + expires)}
        full["signature"] = self.sign(full)
        return f"{LOCAL_ROUTE}/{action}?{urllib.parse.urlencode(full)}"

    def verify(self, action: str, query: dict[str, str]) -> dict[str, str]:
        """The URL's parameters if its signature is right and it has not expired."""
        params = {k: v for k, v in query.items() if k != "signature"}
        params["action"] = action
        sent = query.get("signature", "")
        # Signatures are ASCII, and compare_digest raises on any other text.
        if not sent or not sent.isascii() or not hmac.compare_digest(sent, self.sign(params)):
            raise LinkError("storage.bad_signature")
        expires = params.get("expires", "")
        if not expires.isdigit() or int(expires) < time.time():
            raise LinkError("storage.link_expired")
        return params

    # the interface

    async def start(self) -> None:
        def make() -> None:
            for d in (self.root, self.tmp, self.parts):
                d.mkdir(parents=True, exist_ok=True)

        await asyncio.to_thread(make)

    async def close(self) -> None:
        return None

    async def upload_form(
        self, key: str, *, content_type: str, max_bytes: int, expires: int
    ) -> UploadForm:
        self.path(key)
        url = self.signed_url(
            "put", {"key": key, "type": content_type, "max": str(max_bytes)}, expires
        )
        return UploadForm("PUT", url, headers={"Content-Type": content_type})

    async def head(self, key: str) -> ObjectInfo | None:
        path = self.path(key)

        def stat() -> ObjectInfo | None:
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
            return ObjectInfo(key, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC))

        return await asyncio.to_thread(stat)

    async def read_head(self, key: str, length: int) -> bytes:
        path = self.path(key)

        def read() -> bytes:
            with path.open("rb") as f:
                return f.read(length)

        return await asyncio.to_thread(read)

    async def get_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path(key).read_bytes)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path(key)
        await asyncio.to_thread(self._write_atomic, path, [data])

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        dst = self.path(key)

        def run() -> None:
            tmp = self.tmp / uuid.uuid4().hex
            try:
                shutil.copyfile(path, tmp)
                with tmp.open("rb") as f:
                    os.fsync(f.fileno())
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dst)
            finally:
                tmp.unlink(missing_ok=True)

        await asyncio.to_thread(run)

    def _write_atomic(self, path: Path, chunks: list[bytes], *, make_parent: bool = True) -> None:
        tmp = self.tmp / uuid.uuid4().hex
        try:
            with tmp.open("wb") as f:
                for c in chunks:
                    f.write(c)
                f.flush()
                os.fsync(f.fileno())
            if make_parent:
                path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    async def digest(self, key: str) -> tuple[str, int]:
        path = self.path(key)

        def run() -> tuple[str, int]:
            h = hashlib.sha256()
            size = 0
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
            return h.hexdigest(), size

        return await asyncio.to_thread(run)

    async def copy(self, src: str, dst: str) -> None:
        s, d = self.path(src), self.path(dst)

        def run() -> None:
            tmp = self.tmp / uuid.uuid4().hex
            try:
                shutil.copyfile(s, tmp)
                d.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, d)
            finally:
                tmp.unlink(missing_ok=True)

        await asyncio.to_thread(run)

    async def move(self, src: str, dst: str) -> None:
        s, d = self.path(src), self.path(dst)

        def run() -> None:
            d.parent.mkdir(parents=True, exist_ok=True)
            os.replace(s, d)

        await asyncio.to_thread(run)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)

    async def list_objects(self) -> list[ObjectInfo]:
        def walk() -> list[ObjectInfo]:
            found = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    p = Path(dirpath) / name
                    key = p.relative_to(self.root).as_posix()
                    st = p.stat()
                    found.append(
                        ObjectInfo(key, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC))
                    )
            # Parts of multipart uploads count as objects too (the sweep aborts stale ones).
            return found

        return await asyncio.to_thread(walk)

    async def download_url(
        self, key: str, *, expires: int, content_type: str, filename: str
    ) -> str:
        self.path(key)
        return self.signed_url(
            "get", {"key": key, "type": content_type, "name": filename[:200]}, expires
        )

    async def start_multipart(self, key: str, content_type: str) -> str:
        """Each part is a file of its own, so a part is replaced whole or not at all."""
        self.path(key)
        upload_id = uuid.uuid4().hex
        await asyncio.to_thread((self.parts / upload_id).mkdir, parents=True)
        return upload_id

    def part_dir(self, upload_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id):
            raise LinkError("storage.bad_key")
        return self.parts / upload_id

    async def part_forms(
        self, key: str, upload_id: str, numbers: list[int], *, expires: int, part_bytes: int
    ) -> list[UploadForm]:
        self.part_dir(upload_id)
        return [
            UploadForm(
                "PUT",
                self.signed_url(
                    "part",
                    {"key": key, "upload": upload_id, "n": str(n), "max": str(part_bytes)},
                    expires,
                ),
            )
            for n in numbers
        ]

    async def write_part(
        self, upload_id: str, number: int, part_bytes: int, chunks: AsyncIterator[bytes]
    ) -> Part:
        """Receive part `number` into a file of its own; it counts once its record is written.

        The bytes go to a temp file, are fsynced and renamed to a name no other write uses;
        then the part's record (`00001`: size, SHA-256, MD5, file name) is replaced
        atomically. A body that breaks half way changes nothing: a part received before stays
        whole and listed. The record's SHA-256 is checked again when the upload completes.
        """
        d = self.part_dir(upload_id)
        if not await asyncio.to_thread(d.is_dir):
            raise LinkError("storage.link_expired")
        name = f"{number:05d}-{uuid.uuid4().hex}"
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)  # S3-style ETag

        def hashing(chunk: bytes) -> None:
            sha.update(chunk)
            md5.update(chunk)

        try:
            size = await self.write_stream(d / name, chunks, on_chunk=hashing, make_parent=False)
        except FileNotFoundError:  # the upload was completed or aborted meanwhile
            raise LinkError("storage.link_expired") from None
        record = {"size": size, "sha256": sha.hexdigest(), "md5": md5.hexdigest(), "file": name}

        def commit() -> None:
            marker = d / f"{number:05d}"
            before = self._part_record(d, number)
            try:
                self._write_atomic(marker, [json.dumps(record).encode()], make_parent=False)
            except BaseException:
                (d / name).unlink(missing_ok=True)
                raise
            if before and before["file"] != name:
                (d / before["file"]).unlink(missing_ok=True)

        try:
            await asyncio.to_thread(commit)
        except FileNotFoundError:
            raise LinkError("storage.link_expired") from None
        return Part(number, size, f'"{record["md5"]}"')

    @staticmethod
    def _part_record(d: Path, number: int) -> dict[str, Any] | None:
        try:
            record = json.loads((d / f"{number:05d}").read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(record, dict) or not re.fullmatch(
            rf"{number:05d}-[0-9a-f]{{32}}", str(record.get("file", ""))
        ):
            return None  # not a record this store wrote: the part counts as missing
        return record

    def _drop_part(self, d: Path, number: int, file: str) -> None:
        """Forget a part whose bytes went bad, unless it was replaced meanwhile."""
        record = self._part_record(d, number)
        if record is not None and record["file"] == file:
            (d / f"{number:05d}").unlink(missing_ok=True)
            (d / file).unlink(missing_ok=True)

    async def write_stream(
        self,
        path: Path,
        chunks: AsyncIterator[bytes],
        on_chunk: Callable[[bytes], None] | None = None,
        *,
        make_parent: bool = True,
    ) -> int:
        """Write a stream to path via a temp file and a rename; nothing is left if it breaks.

        `on_chunk` sees every chunk in order, in the writer thread (for hashing off the loop).
        """
        tmp = self.tmp / uuid.uuid4().hex
        f = await asyncio.to_thread(tmp.open, "wb")
        size = 0
        pending: list[bytes] = []
        pending_bytes = 0

        def write(batch: list[bytes]) -> None:
            if on_chunk is not None:
                for c in batch:
                    on_chunk(c)
            f.writelines(batch)

        # At most one write in flight while the next MiB arrives: the disk and the network
        # overlap, and the loop never waits on the disk.
        writing: asyncio.Future[None] | None = None
        try:
            async for chunk in chunks:
                size += len(chunk)
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= CHUNK:
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(asyncio.to_thread(write, pending))
                    pending, pending_bytes = [], 0
            if writing is not None:
                await writing
                writing = None
            if pending:
                await asyncio.to_thread(write, pending)

            def finish() -> None:
                f.flush()
                os.fsync(f.fileno())
                f.close()
                if make_parent:
                    path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)

            await asyncio.to_thread(finish)
            return size
        finally:
            if writing is not None:  # the body broke: let the last write finish, then discard
                await asyncio.gather(writing, return_exceptions=True)
            if not f.closed:
                await asyncio.to_thread(f.close)
            await asyncio.to_thread(tmp.unlink, missing_ok=True)

    async def list_parts(self, key: str, upload_id: str) -> list[Part]:
        d = self.part_dir(upload_id)

        def run() -> list[Part]:
            if not d.is_dir():
                return []
            out = []
            for p in sorted(d.iterdir()):
                if re.fullmatch(r"[0-9]{5}", p.name):
                    record = self._part_record(d, int(p.name))
                    if record is not None:
                        out.append(Part(int(p.name), int(record["size"]), f'"{record["md5"]}"'))
            return out

        return await asyncio.to_thread(run)

    async def complete_multipart(self, key: str, upload_id: str, parts: list[Part]) -> None:
        """Join the parts into the object, checking each against its record as it is read.

        A part whose bytes no longer match its SHA-256 (or that was replaced since `parts`
        was listed) is dropped and PartMismatch names it; nothing is stored then.
        """
        d = self.part_dir(upload_id)
        path = self.path(key)

        def run() -> None:
            records = {p.number: self._part_record(d, p.number) for p in parts}
            bad = [
                p.number
                for p in parts
                if (r := records[p.number]) is None
                or int(r["size"]) != p.size
                or f'"{r["md5"]}"' != p.etag
            ]
            if bad:
                raise PartMismatch(bad)
            tmp = self.tmp / uuid.uuid4().hex
            try:
                with tmp.open("wb") as out:
                    for p in parts:
                        r = records[p.number]
                        assert r is not None
                        h, n = hashlib.sha256(), 0
                        try:
                            with (d / r["file"]).open("rb") as f:
                                while chunk := f.read(CHUNK):
                                    h.update(chunk)
                                    n += len(chunk)
                                    out.write(chunk)
                        except FileNotFoundError:
                            bad.append(p.number)
                            continue
                        if n != int(r["size"]) or h.hexdigest() != r["sha256"]:
                            self._drop_part(d, p.number, r["file"])
                            bad.append(p.number)
                    if bad:
                        raise PartMismatch(bad)
                    out.flush()
                    os.fsync(out.fileno())
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            shutil.rmtree(d, ignore_errors=True)

        await asyncio.to_thread(run)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.part_dir(upload_id), True)

    async def set_retention(self, days: list[int]) -> bool:
        return False  # a directory has no lifecycle rules; the sweep does it all

    async def stale_temp(self, older_than: dt.datetime) -> int:
        """Delete temp files and multipart directories untouched since older_than."""

        def run() -> int:
            n = 0
            cutoff = older_than.timestamp()
            for p in list(self.tmp.iterdir()) + list(self.parts.iterdir()):
                if p.stat().st_mtime < cutoff:
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink(missing_ok=True)
                    n += 1
            return n

        return await asyncio.to_thread(run)


# -- S3


class S3Store:
    """Any S3 API (SeaweedFS, MinIO, Ceph RGW, AWS, OSS) through boto3, always SigV4."""

    name = "s3"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.pool = ThreadPoolExecutor(max_workers=settings.s3_max_threads, thread_name_prefix="s3")
        self.client: Any = None
        self.signer: Any = None  # same credentials, the endpoint browsers reach

    def _client(self, endpoint: str) -> Any:
        import boto3
        from botocore.config import Config

        s = self.settings
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if s.s3_path_style else "virtual"},
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=s.s3_max_threads,
            connect_timeout=5,
            read_timeout=60,
        )
        # A session per client: boto3's default session is a module global.
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=s.s3_region,
            aws_access_key_id=s.s3_access_key_id or None,
            aws_secret_access_key=s.s3_secret_access_key or None,
            config=config,
        )

    async def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: fn(*args, **kw))

    async def start(self) -> None:
        s = self.settings

        def make() -> None:
            self.client = self._client(s.s3_endpoint_url)
            self.signer = (
                self._client(s.s3_public_endpoint_url) if s.s3_public_endpoint_url else self.client
            )
            from botocore.exceptions import ClientError

            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                    raise
                self.client.create_bucket(Bucket=self.bucket)
            origins = sorted(s.origins)
            if origins:
                try:
                    self.client.put_bucket_cors(
                        Bucket=self.bucket,
                        CORSConfiguration={
                            "CORSRules": [
                                {
                                    "AllowedOrigins": origins,
                                    "AllowedMethods": ["GET", "PUT", "POST"],
                                    "AllowedHeaders": ["*"],
                                    "ExposeHeaders": ["ETag"],
                                    "MaxAgeSeconds": 600,
                                }
                            ]
                        },
                    )
                except ClientError as e:
                    log.warning("bucket CORS not set: %s", e)

        await self.run(make)

    async def close(self) -> None:
        await asyncio.to_thread(self.pool.shutdown, wait=True)

    async def upload_form(
        self, key: str, *, content_type: str, max_bytes: int, expires: int
    ) -> UploadForm:
        post = await self.run(
            self.signer.generate_presigned_post,
            self.bucket,
            key,
            Fields={"Content-Type": content_type},
            Conditions=[["content-length-range", 1, max_bytes], {"Content-Type": content_type}],
            ExpiresIn=expires,
        )
        return UploadForm("POST", post["url"], fields=dict(post["fields"]))

    async def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            r = await self.run(self.client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(key, int(r["ContentLength"]), r["LastModified"])

    async def read_head(self, key: str, length: int) -> bytes:
        def run() -> bytes:
            r = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}")
            return r["Body"].read()

        return await self.run(run)

    async def get_bytes(self, key: str) -> bytes:
        def run() -> bytes:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

        return await self.run(run)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        await self.run(
            self.client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
        )

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        # upload_file switches to multipart for large files by itself.
        await self.run(
            self.client.upload_file,
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type},
        )

    async def digest(self, key: str) -> tuple[str, int]:
        def run() -> tuple[str, int]:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            h = hashlib.sha256()
            size = 0
            for chunk in body.iter_chunks(CHUNK):
                h.update(chunk)
                size += len(chunk)
            return h.hexdigest(), size

        return await self.run(run)

    async def copy(self, src: str, dst: str) -> None:
        await self.run(
            self.client.copy_object,
            Bucket=self.bucket,
            Key=dst,
            CopySource={"Bucket": self.bucket, "Key": src},
        )

    async def move(self, src: str, dst: str) -> None:
        await self.copy(src, dst)  # server-side: the bytes never pass through the app
        await self.delete(src)

    async def delete(self, key: str) -> None:
        await self.run(self.client.delete_object, Bucket=self.bucket, Key=key)

    async def list_objects(self) -> list[ObjectInfo]:
        def run() -> list[ObjectInfo]:
            out = []
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                for o in page.get("Contents", []):
                    out.append(ObjectInfo(o["Key"], int(o["Size"]), o["LastModified"]))
            return out

        return await self.run(run)

    async def download_url(
        self, key: str, *, expires: int, content_type: str, filename: str
    ) -> str:
        disposition = "inline; filename*=UTF-8''" + urllib.parse.quote(filename or "document")
        return await self.run(
            self.signer.generate_presigned_url,
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition,
                "ResponseCacheControl": "private, no-store",
            },
            ExpiresIn=expires,
        )

    async def start_multipart(self, key: str, content_type: str) -> str:
        r = await self.run(
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            ContentType=content_type,
        )
        return str(r["UploadId"])

    async def part_forms(
        self, key: str, upload_id: str, numbers: list[int], *, expires: int, part_bytes: int
    ) -> list[UploadForm]:
        def run() -> list[UploadForm]:
            return [
                UploadForm(
                    "PUT",
                    self.signer.generate_presigned_url(
                        "upload_part",
                        Params={
                            "Bucket": self.bucket,
                            "Key": key,
                            "UploadId": upload_id,
                            "PartNumber": n,
                        },
                        ExpiresIn=expires,
                    ),
                )
                for n in numbers
            ]

        return await self.run(run)

    async def list_parts(self, key: str, upload_id: str) -> list[Part]:
        from botocore.exceptions import ClientError

        def run() -> list[Part]:
            out = []
            marker = 0
            while True:
                r = self.client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
                for p in r.get("Parts", []):
                    out.append(Part(int(p["PartNumber"]), int(p["Size"]), p["ETag"]))
                if not r.get("IsTruncated"):
                    return out
                marker = int(r["NextPartNumberMarker"])

        try:
            return await self.run(run)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
                return []
            raise

    async def complete_multipart(self, key: str, upload_id: str, parts: list[Part]) -> None:
        """S3 checks each part's ETag (its MD5) against the one we listed; a part replaced
        since then fails the whole completion, and PartMismatch names the changed parts."""
        from botocore.exceptions import ClientError

        try:
            await self.run(
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]
                },
            )
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("InvalidPart", "InvalidPartOrder"):
                raise
            now = {p.number: p.etag for p in await self.list_parts(key, upload_id)}
            changed = [p.number for p in parts if now.get(p.number) != p.etag]
            raise PartMismatch(changed or [p.number for p in parts]) from None

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            await self.run(
                self.client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id
            )
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
                raise

    async def set_retention(self, days: list[int]) -> bool:
        """Lifecycle rules: expire r<days>/ a day after the sweep would; drop stale multipart."""
        from botocore.exceptions import ClientError

        rules: list[dict[str, Any]] = [
            {
                "ID": f"retention-{d}",
                "Filter": {"Prefix": f"r{d}/"},
                "Status": "Enabled",
                "Expiration": {"Days": d + 1},
            }
            for d in sorted(set(days))
        ]
        rules.append(
            {
                "ID": "abort-stale-multipart",
                "Filter": {"Prefix": ""},
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
            }
        )
        try:
            await self.run(
                self.client.put_bucket_lifecycle_configuration,
                Bucket=self.bucket,
                LifecycleConfiguration={"Rules": rules},
            )
        except ClientError as e:
            log.warning("lifecycle rules not supported by this S3 server: %s", e)
            return False
        return True

"""Upload benchmark: document uploads through CloudWindow against plain writes, same run.

    python bench/uploads.py            # 10 MB and 500 MB local, 10 MB through S3
    python bench/uploads.py --quick    # 10 MB and 100 MB local, fewer repeats (smoke run)

Local backend: the browser PUTs to the app, which streams to a temp file and renames it. The
baseline is this process writing the same bytes to a file in the same directory (with fsync).
S3 backend: the browser POSTs straight to SeaweedFS; only the slot request and the confirm
reach the app. The baseline is a direct boto3 `put_object` of the same bytes.
Prints one JSON line of figures at the end; targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from procstat import cpu_s, free_port, rss_kb  # noqa: E402

MB = 1024 * 1024
PASSWORD = "bench-password-0"


def say(*parts: Any) -> None:
    print(*parts, flush=True)


def payload(size: int) -> bytes:
    """A PDF-looking file of exactly `size` bytes (random body: nothing compresses)."""
    head, tail = b"%PDF-1.7\n", b"\n%%EOF\n"
    return head + os.urandom(size - len(head) - len(tail)) + tail


class App:
    """`cloudwindow serve` on a fresh SQLite database with the demo district."""

    def __init__(self, work: Path, extra_env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = work / f"data-{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CLOUDWINDOW_")},
            "CLOUDWINDOW_DATA_DIR": str(self.data),
            "CLOUDWINDOW_PORT": str(self.port),
            "CLOUDWINDOW_SECRET_KEY": "bench-secret-key",
            "CLOUDWINDOW_DEMO_PASSWORD": PASSWORD,
            "CLOUDWINDOW_PASSWORD_HASH_TIME_COST": "1",
            "CLOUDWINDOW_PASSWORD_HASH_MEMORY_KIB": "64",
            "CLOUDWINDOW_LOG_LEVEL": "WARNING",
            **extra_env,
        }
        self.log = work / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "web.cli", *args],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def launch(self) -> None:
        self.cli("migrate")
        self.cli("seed", "--demo", "--no-progress")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "web.cli", "serve"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        await asyncio.to_thread(self.launch)
        assert self.proc is not None
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                assert self.proc.poll() is None, self.log.read_text()[-2000:]
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base}/readyz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError("server not ready")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


class Worker:
    """A logged-in community worker with one open case for 户口簿 (accepts PDF)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        # The bytes go without cookies, on a kept-alive connection (as a browser sends them).
        self.raw = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        self.csrf = ""
        self.case_id = 0
        self.spec_id = 0

    async def setup(self) -> None:
        from tests.factories import aged

        base = self.app.base
        async with self.http.post(
            f"{base}/api/v1/auth/login", json={"username": "worker", "password": PASSWORD}
        ) as r:
            self.csrf = (await r.json())["csrf_token"]
        sites = await self.get("/api/v1/sites?kind=community")
        point = next(s for s in sites if s["code"] == "T07-C01")
        resident = await self.post(
            "/api/v1/residents", {"name": "压测居民", "id_number": aged(84, 777)}
        )
        case = await self.post(
            "/api/v1/cases",
            {"item_code": "MZ-004", "resident_id": resident["id"], "site_id": point["id"]},
        )
        self.case_id = case["id"]
        checklist = await self.get(f"/api/v1/cases/{self.case_id}/checklist")
        self.spec_id = next(i["spec_id"] for i in checklist["items"] if i["name"] == "户口簿")

    async def get(self, path: str) -> Any:
        async with self.http.get(f"{self.app.base}{path}") as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def post(self, path: str, body: Any = None) -> Any:
        async with self.http.post(
            f"{self.app.base}{path}", json=body, headers={"X-CSRF-Token": self.csrf}
        ) as r:
            assert r.status in (200, 201), await r.text()
            return await r.json()

    async def slot(self, size: int, multipart: bool) -> dict[str, Any]:
        return await self.post(
            f"/api/v1/cases/{self.case_id}/uploads",
            {
                "spec_id": self.spec_id,
                "content_type": "application/pdf",
                "size": size,
                "filename": "bench.pdf",
                "multipart": multipart,
            },
        )

    async def send_single(self, form: dict[str, Any], data: bytes) -> None:
        url = form["url"] if form["url"].startswith("http") else self.app.base + form["url"]
        raw = self.raw
        if form["method"] == "PUT":
            async with raw.put(url, data=data, headers=form["headers"]) as r:
                assert r.status in (200, 201), await r.text()
            return
        fd = aiohttp.FormData()
        for k, v in form["fields"].items():
            fd.add_field(k, v)
        fd.add_field("file", data, filename="bench.pdf", content_type="application/pdf")
        async with raw.post(url, data=fd) as r:
            assert r.status in (200, 201, 204), await r.text()

    async def send_parts(self, form: dict[str, Any], data: bytes, concurrency: int = 4) -> None:
        part, count = form["part_bytes"], form["parts_count"]
        urls = await self.post(
            f"/api/v1/uploads/{form['id']}/parts", {"numbers": list(range(1, count + 1))}
        )
        view = memoryview(data)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for u in urls:
            queue.put_nowait(u)
        raw = self.raw

        async def pump() -> None:
            while not queue.empty():
                u = queue.get_nowait()
                n = u["number"]
                url = u["url"] if u["url"].startswith("http") else self.app.base + u["url"]
                chunk = view[(n - 1) * part : n * part]
                async with raw.put(url, data=bytes(chunk)) as r:
                    assert r.status in (200, 201), await r.text()

        await asyncio.gather(*(pump() for _ in range(concurrency)))

    async def confirm(self, slot_id: int) -> dict[str, Any]:
        return await self.post(f"/api/v1/uploads/{slot_id}/confirm")

    async def close(self) -> None:
        await self.http.close()
        await self.raw.close()


def write_file(path: Path, data: bytes, chunk: int = 8 * MB) -> None:
    with path.open("wb") as f:
        view = memoryview(data)
        for i in range(0, len(data), chunk):
            f.write(view[i : i + chunk])
        f.flush()
        os.fsync(f.fileno())


class RssSampler:
    """Samples a process's RSS every 20 ms in a thread; reports growth over the start."""

    def __init__(self, pid: int) -> None:
        self.pid, self.start_kb, self.peak_kb = pid, rss_kb(pid), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return round(max(0, self.peak_kb - self.start_kb) / 1024, 1)


async def bench_local(work: Path, sizes: list[int], repeats: int) -> dict[str, Any]:
    app = App(work, {"CLOUDWINDOW_STORAGE_BACKEND": "local"})
    await app.start()
    w = Worker(app)
    out: dict[str, Any] = {}
    try:
        await w.setup()
        for size in sizes:
            data = payload(size)
            multipart = size > 50 * MB
            ours, base, confirms, growth = [], [], [], 0.0
            for i in range(repeats if size <= 50 * MB else 1):
                target = app.data / f"baseline-{i}.bin"
                t0 = time.perf_counter()
                await asyncio.to_thread(write_file, target, data)
                base.append(time.perf_counter() - t0)
                target.unlink()

                form = await w.slot(size, multipart)
                with RssSampler(app.pid) as rss:
                    t0 = time.perf_counter()
                    if multipart:
                        await w.send_parts(form, data)
                    else:
                        await w.send_single(form, data)
                    ours.append(time.perf_counter() - t0)
                growth = max(growth, rss.growth_mb)
                t0 = time.perf_counter()
                m = await w.confirm(form["id"])
                confirms.append(time.perf_counter() - t0)
                assert m["size"] == size
            mbps = size / MB / statistics.median(ours)
            base_mbps = size / MB / statistics.median(base)
            out[f"local_{size // MB}MB"] = {
                "upload_MBps": round(mbps, 1),
                "file_write_MBps": round(base_mbps, 1),
                "ratio": round(mbps / base_mbps, 2),
                "target_ratio": ">= 0.7",
                "confirm_s": round(statistics.median(confirms), 2),
                "server_rss_growth_MB": growth,
                "method": "multipart, 4 parts in flight" if multipart else "single PUT",
                "runs": len(ours),
            }
            say(f"local {size // MB} MB:", json.dumps(out[f"local_{size // MB}MB"]))
    finally:
        await w.close()
        app.stop()
    return out


async def _app_requests(app: App) -> float:
    """Requests the app has served so far (its own Prometheus counter), /metrics excluded."""
    async with aiohttp.ClientSession() as http, http.get(f"{app.base}/metrics") as r:
        text = await r.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("cloudwindow_http_requests_total{") and "/metrics" not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def bench_s3(work: Path, size: int, repeats: int) -> dict[str, Any]:
    from tests import s3server

    weed = s3server.start(work / "seaweedfs")
    app = App(
        work,
        {
            "CLOUDWINDOW_STORAGE_BACKEND": "s3",
            "CLOUDWINDOW_S3_ENDPOINT_URL": weed.endpoint,
            "CLOUDWINDOW_S3_ACCESS_KEY_ID": weed.access_key,
            "CLOUDWINDOW_S3_SECRET_ACCESS_KEY": weed.secret_key,
            "CLOUDWINDOW_S3_BUCKET": "cloudwindow-bench",
        },
    )
    w = Worker(app)
    try:
        await app.start()
        await w.setup()
        s3 = s3server.client(weed)
        data = payload(size)
        direct, ours, cpu, app_requests = [], [], [], []
        for i in range(repeats):
            t0 = time.perf_counter()
            await asyncio.to_thread(
                s3.put_object, Bucket="cloudwindow-bench", Key=f"baseline/{i}", Body=data
            )
            direct.append(time.perf_counter() - t0)

            req0, cpu0 = await _app_requests(app), cpu_s(app.pid)
            t0 = time.perf_counter()
            form = await w.slot(size, False)
            await w.send_single(form, data)
            await w.confirm(form["id"])
            ours.append(time.perf_counter() - t0)
            cpu.append(cpu_s(app.pid) - cpu0)
            app_requests.append(await _app_requests(app) - req0)
        figures = {
            "upload_s": round(statistics.median(ours), 3),
            "boto3_put_object_s": round(statistics.median(direct), 3),
            "ratio": round(statistics.median(ours) / statistics.median(direct), 2),
            "server_cpu_s_per_upload": round(statistics.median(cpu), 3),
            "app_requests_per_upload": statistics.median(app_requests),
            "note": "upload = slot + browser POST to S3 + confirm (SHA-256 read back)",
            "runs": repeats,
        }
        say(f"s3 {size // MB} MB:", json.dumps(figures))
        return {f"s3_{size // MB}MB": figures}
    finally:
        await w.close()
        app.stop()
        weed.stop()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    p.add_argument("--only", default="local,s3", help="comma list: local, s3")
    args = p.parse_args()
    only = set(args.only.split(","))
    sizes = [10 * MB, 100 * MB] if args.quick else [10 * MB, 500 * MB]
    repeats = 2 if args.quick else 5
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cw-bench-uploads-") as tmp:
        work = Path(tmp)
        if "local" in only:
            figures.update(await bench_local(work, sizes, repeats))
        if "s3" in only:
            figures.update(await bench_s3(work, 10 * MB, repeats))
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())

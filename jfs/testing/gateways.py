"""Test helper: a real `jfs gateway` process on a free port, always stopped (also on failure)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jfs.testing.servers import free_port, stop_process

ACCESS_KEY = "jfs-admin"
SECRET_KEY = "jfs-secret-key-123"


@dataclass
class RunningGateway:
    endpoint: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, verify: bool | str = True, **config: object) -> object:
        """A boto3 S3 client of this gateway (path-style, SigV4)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY, verify=verify,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                          retries={"max_attempts": 1}, **config))  # type: ignore[arg-type]


def _healthy(endpoint: str) -> bool:
    import ssl

    unverified = ssl._create_unverified_context()  # test certificates are self-signed
    try:
        with urllib.request.urlopen(f"{endpoint}/minio/health/ready", timeout=2, context=unverified) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def gateway(meta_url: str, workdir: Path, *extra: str, timeout: float = 30.0,
            env: dict[str, str] | None = None, tls: bool = False) -> Iterator[RunningGateway]:
    """Run `jfs gateway META-URL 127.0.0.1:<free port>` until the block ends (SIGTERM, then SIGKILL).
    `tls`: `extra` has --cert-file/--key-file; the endpoint is https."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / f"gateway-{port}.log"
    log = open(log_path, "ab")
    full_env = {**os.environ, "MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jfs.cli.main", "gateway", meta_url, f"127.0.0.1:{port}",
         "--cache-dir", str(workdir / "gw-cache"), *extra],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=full_env,
    )
    endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(endpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(f"gateway did not come up (exit {proc.poll()}):\n"
                                   f"{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield RunningGateway(endpoint, port, proc, log_path)
    finally:
        stop_process(proc)
        log.close()

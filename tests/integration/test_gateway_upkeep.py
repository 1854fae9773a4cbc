"""The gateway's upkeep with a real `jfs gateway` process: what killed or abandoned uploads leave in
``/.sys`` is purged after its age (at start, periodically, and by the call `jfs gc` makes), and ``-d``
runs the gateway detached with its log where ``--log`` says."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jfs
from jfs.cli.gateway_uploads import purge_volume_uploads
from jfs.testing.gateways import ACCESS_KEY, SECRET_KEY, free_port, gateway
from jfs.testing.mounts import format_volume
from jfs.testing.servers import stop_pid

VOLUME = "upkeepvol"


def _sys_entries(url: str) -> tuple[list[str], list[str]]:
    """(files in /.sys/tmp, uploads in /.sys/multipart) as a fresh SDK client sees them."""
    c = jfs.Client(url, cache_dir=None, background_jobs=False)
    try:
        tmp = c.listdir("/.sys/tmp") if c.exists("/.sys/tmp") else []
        uploads = c.listdir("/.sys/multipart") if c.exists("/.sys/multipart") else []
        return sorted(tmp), sorted(uploads)
    finally:
        c.close()


def _cut_off_put(port: int, key: str) -> socket.socket:
    """A signed PUT of 64 MiB of which only 20 MiB are sent (the connection is left open)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest("PUT", f"http://127.0.0.1:{port}/{VOLUME}/{key}", headers={
        "Host": f"127.0.0.1:{port}", "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(64 << 20)})
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
    head = f"PUT /{VOLUME}/{key} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head.encode() + b"\r\n" + os.urandom(20 << 20))
    return sock


def test_uploads_left_by_a_killed_gateway_are_purged_after_their_age(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), VOLUME)
    with gateway(url, tmp_path) as g:
        s3 = g.client()
        s3.put_object(Bucket=VOLUME, Key="keep/me", Body=b"kept")
        up = s3.create_multipart_upload(Bucket=VOLUME, Key="big/mp")["UploadId"]
        s3.upload_part(Bucket=VOLUME, Key="big/mp", UploadId=up, PartNumber=1, Body=os.urandom(5 << 20))
        done = s3.create_multipart_upload(Bucket=VOLUME, Key="big/aborted")["UploadId"]
        s3.abort_multipart_upload(Bucket=VOLUME, Key="big/aborted", UploadId=done)
        sock = _cut_off_put(g.port, "big/cut")
        time.sleep(1.0)
        g.proc.kill()  # SIGKILL: no cleanup of its own
        g.proc.wait()
        sock.close()
    killed_at = time.monotonic()
    tmp, uploads = _sys_entries(url)
    assert uploads == [up] and len(tmp) == 1, (tmp, uploads)
    age = 6.0
    with gateway(url, tmp_path, "--purge-uploads-after", str(age)) as g:
        s3 = g.client()
        if time.monotonic() - killed_at < age - 1:  # still young: kept
            assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=VOLUME).get("Uploads", [])] == [up]
        deadline = killed_at + age + 10
        while time.monotonic() < deadline and _sys_entries(url) != ([], []):
            time.sleep(0.5)
        assert _sys_entries(url) == ([], [])
        assert s3.list_multipart_uploads(Bucket=VOLUME).get("Uploads", []) == []
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=VOLUME)["Contents"]] == ["keep/me"]
        assert s3.get_object(Bucket=VOLUME, Key="keep/me")["Body"].read() == b"kept"
        # a fresh upload is left alone by the periodic pass
        fresh = s3.create_multipart_upload(Bucket=VOLUME, Key="new/mp")["UploadId"]
        s3.upload_part(Bucket=VOLUME, Key="new/mp", UploadId=fresh, PartNumber=1, Body=b"x" * 100)
        time.sleep(2.0)
        assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=VOLUME).get("Uploads", [])] == [fresh]


def test_the_gc_entry_point_reports_then_purges(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), VOLUME)
    with gateway(url, tmp_path, "--purge-uploads-after", "0") as g:
        s3 = g.client()
        up = s3.create_multipart_upload(Bucket=VOLUME, Key="a/b")["UploadId"]
        s3.upload_part(Bucket=VOLUME, Key="a/b", UploadId=up, PartNumber=1, Body=b"y" * 1000)
        s3.upload_part(Bucket=VOLUME, Key="a/b", UploadId=up, PartNumber=2, Body=b"z" * 10)
    time.sleep(0.1)
    assert asyncio.run(purge_volume_uploads(url, 3600)).uploads == 0  # younger than an hour
    found = asyncio.run(purge_volume_uploads(url, 0, dry_run=True))
    assert (found.uploads, found.parts, found.bytes) == (1, 2, 1010)
    assert _sys_entries(url)[1] == [up]
    purged = asyncio.run(purge_volume_uploads(url, 0))
    assert (purged.uploads, purged.parts) == (1, 2)
    assert _sys_entries(url) == ([], [])


def test_background_gateway_logs_to_the_given_file(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), VOLUME)
    port = free_port()
    log = tmp_path / "logs" / "gw.log"
    env = {**os.environ, "MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY}
    cmd = [sys.executable, "-m", "jfs.cli.main", "gateway", url, f"127.0.0.1:{port}", "-d", "--log", str(log),
           "--cache-dir", str(tmp_path / "cache")]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pid = int(out.stderr.split("gateway ")[1].split()[0])
    try:
        import boto3
        from botocore.config import Config

        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}))
        s3.put_object(Bucket=VOLUME, Key="bg", Body=b"detached")
        assert s3.get_object(Bucket=VOLUME, Key="bg")["Body"].read() == b"detached"
        assert "gateway_serving" in log.read_text()
        # a second one on the same address refuses at once, in one line
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode != 0 and "in use" in again.stderr
        # no credentials: refused before detaching
        bare = {k: v for k, v in env.items() if k not in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")}
        nocred = subprocess.run([*cmd[:5], f"127.0.0.1:{free_port()}", *cmd[6:]], env=bare, capture_output=True,
                                text=True, timeout=60)
        assert nocred.returncode != 0 and "credentials" in nocred.stderr
    finally:
        stop_pid(pid)
    assert "gateway_stopped" in log.read_text()


def test_jfs_gc_counts_then_deletes_stale_gateway_uploads(tmp_path: Path) -> None:
    url = f"sqlite3://{tmp_path}/meta.db"
    format_volume(url, str(tmp_path / "bucket"), VOLUME)
    with gateway(url, tmp_path, "--purge-uploads-after", "0") as g:
        s3 = g.client()
        up = s3.create_multipart_upload(Bucket=VOLUME, Key="k")["UploadId"]
        s3.upload_part(Bucket=VOLUME, Key="k", UploadId=up, PartNumber=1, Body=b"p" * 5000)
    env = {**os.environ, "JFS_GC_UPLOAD_AGE": "0"}

    def gc(*extra: str) -> dict:
        import json

        out = subprocess.run([sys.executable, "-m", "jfs.cli.main", "gc", url, "--json", *extra],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert gc()["stale_gateway_uploads"]["uploads"] == 1
    assert _sys_entries(url)[1] == [up]  # counted, not removed
    assert gc("--delete")["stale_gateway_uploads"] == {"tmp_files": 0, "uploads": 1, "parts": 1, "bytes": 5000}
    assert _sys_entries(url) == ([], [])

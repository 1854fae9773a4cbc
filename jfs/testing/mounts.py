"""Test helpers: format a volume and mount it with a real `jfs mount` process, always cleaned up.

`mount_process` is the one loop that starts ``jfs mount --foreground``, waits for the mount and, on exit
(also on failure), unmounts (lazily as a last resort) and stops the process; `mounted` adds the defaults
most tests want (a created mount point, its own cache directory, xattrs, ``-o allow_other``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.adapters.fuse.mounting import is_mounted
from jfs.testing.engines import wipe_engine
from jfs.testing.servers import stop_process

__all__ = ["format_test_volume", "format_volume", "is_mounted", "jfs", "mount_process", "mounted", "reachable_dir"]


@contextlib.contextmanager
def reachable_dir(prefix: str) -> Iterator[Path]:
    """A new directory (mode 0755) outside pytest's private (0700) temp tree, so that other users and mount
    processes reach what is below it, and short (a unix socket path must fit in 108 bytes); removed with
    everything in it on exit (a mount point still mounted below it is lazily unmounted first)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        inside = str(path) + "/"
        with open("/proc/self/mountinfo") as f:
            left = [line.split()[4] for line in f if line.split()[4].startswith(inside)]
        for mountpoint in sorted(left, reverse=True):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


def jfs(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jfs.cli.main", *args], capture_output=True, text=True,
                          check=check, timeout=120)


def format_volume(meta_url: str, bucket: str, name: str = "test-vol", *extra: str) -> None:
    """``jfs format META-URL NAME --bucket BUCKET --trash-days 0 EXTRA...`` (CalledProcessError on failure)."""
    jfs("format", meta_url, name, "--bucket", bucket, "--trash-days", "0", *extra)


def format_test_volume(request: pytest.FixtureRequest, base: Path, *extra: str, redis_db: int,
                       bucket_prefix: str) -> str:
    """A freshly formatted volume for a fixture parametrized by engine pair (``request.param``):
    ``sqlite-file...`` (SQLite and a bucket directory in `base`) or ``redis-s3`` (database `redis_db` of the
    session's Redis, wiped, and a new SeaweedFS bucket `bucket_prefix`-<random>; the test module must
    import the ``seaweed_s3`` fixture). `extra` goes to ``jfs format``. Returns its META-URL."""
    if str(request.param).startswith("sqlite-file"):
        url = f"sqlite3://{base}/meta.db"
        format_volume(url, str(base / "bucket"), "test-vol", *extra)
        return url
    url = f"{request.getfixturevalue('redis_server_url')}/{redis_db}"
    asyncio.run(wipe_engine(url))
    s3 = request.getfixturevalue("seaweed_s3")
    bucket = f"{bucket_prefix}-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=bucket)
    format_volume(url, f"{s3.endpoint}/{bucket}", "test-vol", "--storage", "s3", "--access-key", s3.access_key,
                  "--secret-key", s3.secret_key, *extra)
    return url


@contextlib.contextmanager
def mount_process(meta_url: str, mountpoint: Path, *args: str, log: Path,
                  timeout: float = 30.0) -> Iterator[subprocess.Popen[bytes]]:
    """``jfs mount META-URL MOUNTPOINT --foreground ARGS...`` in a child process, its output appended to
    `log`, once the mount is up. The mount point is used as given (not created here). On exit the mount is
    unmounted and the process stopped (killed after 20 s; a lazy unmount if it is still mounted), also when
    the body killed it. RuntimeError with the log's tail when it is not up within `timeout` seconds."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jfs.cli.main", "mount", meta_url, str(mountpoint), "--foreground", *args],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + timeout
        while not is_mounted(str(mountpoint)):
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace")
                raise RuntimeError(f"mount did not come up (exit {proc.poll()}):\n{text[-3000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        if is_mounted(str(mountpoint)):
            subprocess.run(["umount", str(mountpoint)], capture_output=True)
        try:
            proc.wait(20)  # the unmount ends it
        except subprocess.TimeoutExpired:
            stop_process(proc, grace=5)
        if is_mounted(str(mountpoint)):
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


@contextlib.contextmanager
def mounted(meta_url: str, mountpoint: Path, *extra: str, timeout: float = 30.0) -> Iterator[Path]:
    """Mount `meta_url` at `mountpoint` (created with its parents) in a child process (xattrs enabled,
    ``-o allow_other``: tests reach it as other users; cache and log next to the mount point); unmount and
    stop it on exit (also on failure)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    cache = mountpoint.parent / f"{mountpoint.name}-cache"
    with mount_process(meta_url, mountpoint, "--cache-dir", str(cache), "--enable-xattr", "-o", "allow_other",
                       *extra, log=mountpoint.parent / f"{mountpoint.name}.log", timeout=timeout):
        yield mountpoint

"""Test helper: format a volume and mount it with a real `jfs mount` process, always cleaned up."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from jfs.adapters.fuse.mounting import is_mounted

__all__ = ["format_volume", "is_mounted", "jfs", "mounted"]


def jfs(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jfs.cli.main", *args], capture_output=True, text=True,
                          check=check, timeout=120)


def format_volume(meta_url: str, bucket: str, name: str = "test-vol", *extra: str) -> None:
    jfs("format", meta_url, name, "--bucket", bucket, "--trash-days", "0", *extra)


@contextlib.contextmanager
def mounted(meta_url: str, mountpoint: Path, *extra: str, timeout: float = 30.0) -> Iterator[Path]:
    """Mount `meta_url` at `mountpoint` in a child process (xattrs enabled, ``-o allow_other``: tests
    reach it as other users); unmount and stop it on exit (also on failure)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    log = open(mountpoint.parent / f"{mountpoint.name}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jfs.cli.main", "mount", meta_url, str(mountpoint), "--foreground",
         "--cache-dir", str(mountpoint.parent / f"{mountpoint.name}-cache"), "--enable-xattr", "-o", "allow_other", *extra],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while not is_mounted(str(mountpoint)):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                text = (mountpoint.parent / f"{mountpoint.name}.log").read_text(errors="replace")
                raise RuntimeError(f"mount did not come up (exit {proc.poll()}):\n{text[-3000:]}")
            time.sleep(0.05)
        yield mountpoint
    finally:
        if is_mounted(str(mountpoint)):
            subprocess.run(["umount", str(mountpoint)], capture_output=True)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if is_mounted(str(mountpoint)):
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
        log.close()

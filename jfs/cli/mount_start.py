"""What ``jfs mount`` runs before it serves — checks of its arguments and, with ``-d``, starting the serving
child and waiting for it — importing neither the engines nor the FUSE server, which only the child needs
(ADR 0069; `jfs.cli.mount` re-exports these names).

`check_mountpoint` and `check_metrics` raise VolumeError with one line for the user; `spawn_background`
raises it with the child's own error line (or its last log line) when the mount does not come up.
"""

from __future__ import annotations

import os
import sys

from jfs.adapters.fuse.mountinfo import is_mounted
from jfs.adapters.metrics.address import MetricsError, parse_address
from jfs.app.errors import VolumeError
from jfs.cli.background import spawn_detached


def check_mountpoint(path: str) -> str:
    """The absolute mount point; VolumeError when it exists but is not a directory, or is already mounted.
    A missing one is fine: `prepare_mountpoint` makes it once the volume is open."""
    mountpoint = os.path.abspath(path)
    if os.path.lexists(mountpoint) and not os.path.isdir(mountpoint):
        raise VolumeError(f"mount point {mountpoint} is not a directory")
    if is_mounted(mountpoint):
        raise VolumeError(f"{mountpoint} is already a mount point (unmount it first)")
    return mountpoint


def check_metrics(addr: str) -> None:
    """VolumeError when `addr` is not a usable metrics address (checked before mounting)."""
    if addr.strip().lower() in ("", "off", "none"):
        return
    try:
        parse_address(addr)
    except MetricsError as exc:
        raise VolumeError(str(exc)) from None


def spawn_background(argv: list[str], mountpoint: str, timeout: float = 30.0, log_file: str | None = None) -> None:
    """Start `argv` (a foreground mount) detached, logging to `log_file` (default `default_log_path()`), and
    wait until `mountpoint` is mounted; VolumeError (the child's last log line) when it does not come up."""
    spawn_detached(argv, lambda: is_mounted(mountpoint), f"mount of {mountpoint}", log_file, timeout=timeout,
                   ready_pipe=True)


def foreground_argv() -> list[str]:
    """The command line that re-runs this process's `jfs mount` in the foreground. `-P`: the daemon imports
    the jfs this process runs, never a `jfs` directory that happens to be its working directory."""
    args = [a for a in sys.argv[1:] if a not in ("-d", "--background", "--update-fstab")]
    return [sys.executable, "-P", "-m", "jfs.cli.main", *args, "--foreground"]

"""``jfs umount``: unmount a mount and return once its server has flushed and exited — without importing the
engines, the FUSE server or structlog (ADR 0069).

`umount` is the command's body (`jfs.cli.main` calls it; `jfs.cli.mount` re-exports it). `main` is the fast
entry `jfs.cli.run` takes for the plain forms ``jfs umount [-f|--force] MOUNTPOINT`` (`plain_args`): they
need no option parsing beyond that, so typer is not imported either; anything else (``--help``, an unknown
option, two mount points, global options before the command) goes through `jfs.cli.main`, whose answers
are the same.
"""

from __future__ import annotations

import os
import sys
import time

from jfs.adapters.fuse import mountinfo
from jfs.app.errors import VolumeError

EXIT_WAIT = 300.0
"""Seconds `umount` waits for the mount process to exit once unmounted (its final flush and session close)."""


def umount(mountpoint: str, *, force: bool = False, wait: float = 30.0, exit_wait: float = EXIT_WAIT) -> None:
    """Unmount `mountpoint` and return once the mount has gone and, unless `force`, once the process that
    served it has exited: its data is flushed to the object store and its session removed by then.

    The server is the process named by the mount's ``.config`` (``Mount.Pid``; JuiceFS's ``Pid``) if it has
    ``/dev/fuse`` open here; a mount that names none, does not answer within 2 s, or names a process that is
    no FUSE server in this pid namespace is waited for only until it leaves the mount table, as before. `force` detaches lazily (a hung backend) and does not wait for the server. VolumeError when
    nothing is mounted there, the unmount is refused (busy), or the server is still running after
    `exit_wait` seconds.
    """
    path = os.path.abspath(mountpoint)
    if not mountinfo.is_mounted(path):
        raise VolumeError(f"{path} is not mounted")
    pid = None if force else mountinfo.server_pid(path)
    pidfd = mountinfo.open_process(pid) if pid is not None else None
    try:
        mountinfo.unmount(path, lazy=force)
    except OSError as exc:
        if pidfd is not None:
            os.close(pidfd)
        raise VolumeError(f"cannot unmount {path}: {exc.strerror or exc}") from None
    deadline = time.monotonic() + wait
    while mountinfo.is_mounted(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    if pidfd is not None and not mountinfo.wait_exit(pidfd, exit_wait):
        raise VolumeError(f"{path} is unmounted, but its mount process {pid} is still running after "
                          f"{exit_wait:.0f} s (still flushing? see its log)")


def plain_args(args: list[str]) -> tuple[str, bool] | None:
    """(mount point, force) of ``umount`` arguments in the plain forms the fast entry takes; None for any
    other (left to typer: help, unknown options, a missing or second mount point)."""
    force, paths, options_end = False, [], False
    for arg in args:
        if not options_end and arg in ("-f", "--force"):
            force = True
        elif not options_end and arg == "--":
            options_end = True
        elif options_end or not arg.startswith("-"):
            paths.append(arg)
        else:
            return None
    return (paths[0], force) if len(paths) == 1 and paths[0] else None


def main(mountpoint: str, force: bool) -> None:
    """``jfs umount`` in a plain form (`plain_args`), entered by `jfs.cli.run` without typer: errors as the
    full CLI prints them (one line, exit status 1)."""
    from jfs.cli.messages import print_error, state

    state.debug = os.environ.get("JFS_DEBUG", "").lower() in ("1", "true", "yes", "on")
    try:
        umount(mountpoint, force=force)
    except VolumeError as exc:
        print_error(str(exc))
        sys.exit(1)
    except Exception as exc:  # a bug or a broken install: the full CLI's one-line report
        from jfs.cli.errors import report

        sys.exit(report(exc))

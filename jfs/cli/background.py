"""Commands that serve in the background (``jfs mount -d``, ``jfs webdav -d``): start the serving command
again as a detached child that logs to a file, wait until it serves, and explain in one line when it did
not come up.

`spawn_detached` does the three and raises VolumeError with the child's own error line (or its last log
line) when it does not come up. `start_detached` raises VolumeError when the log file cannot be opened; `wait_for` never raises (it answers
whether the child got ready); `last_log_line` answers "" for a missing or empty log.
A shared log (the default /var/log/jfs.log) is read only from where it ended when the child started.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time
from collections.abc import Callable

from jfs.app.errors import VolumeError


def start_detached(argv: list[str], log_path: str, *, env: dict[str, str] | None = None,
                   pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    """`argv` in a new session, stdin from /dev/null, stdout and stderr appended to `log_path` (its
    directory created), `pass_fds` inherited."""
    try:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        out = open(log_path, "ab")  # noqa: SIM115 (closed below, once the child holds it)
    except OSError as exc:
        raise VolumeError(f"cannot open log file {log_path}: {exc.strerror or exc}") from None
    with out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                env=env, pass_fds=pass_fds)


def wait_for(child: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float,
             wake: int | None = None) -> bool:
    """Whether `ready()` came true within `timeout` seconds while `child` ran (False once it exits).
    `ready()` is asked every 50 ms and, when `wake` is the read end of the child's ready pipe
    (`READY_FD_ENV`), at once whenever the child writes to it; its end of file (the child closed it or
    exited) leaves the 50 ms polling alone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        if child.poll() is not None:
            return False
        if wake is None:
            time.sleep(0.05)
        elif select.select([wake], [], [], 0.05)[0] and not os.read(wake, 64):
            wake = None
    return False


READY_FD_ENV = "JFS_READY_FD"
"""The descriptor a background child writes one byte to once it serves (`tell_ready`), so that its parent
stops waiting at once rather than at its next poll (ADR 0069). Only a hint: the parent still checks
readiness itself."""


def take_ready_fd() -> int | None:
    """The ready pipe this process was given (`READY_FD_ENV`, removed from the environment and not passed on
    to this process's own children), or None."""
    text = os.environ.pop(READY_FD_ENV, "")
    if not text.isdigit():
        return None
    fd = int(text)
    try:
        os.set_inheritable(fd, False)
    except OSError:
        return None
    return fd


def tell_ready(fd: int) -> None:
    """Write the ready byte to `fd` and close it (errors ignored: the parent may have given up)."""
    try:
        os.write(fd, b"1")
    except OSError:
        pass
    finally:
        os.close(fd)


def last_log_line(log_path: str, since: int = 0) -> str:
    """The last non-blank line of `log_path` written after byte `since`, stripped ("" when there is none or
    it cannot be read)."""
    lines = _log_lines(log_path, since)
    return lines[-1] if lines else ""


def _log_lines(log_path: str, since: int) -> list[str]:
    try:
        with open(log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def log_size(log_path: str) -> int:
    """The size of `log_path` in bytes (0 when missing): where a child started now begins writing."""
    try:
        return os.path.getsize(log_path)
    except OSError:
        return 0


LOG_FILE_ENV = "JFS_LOG_FILE"
"""Set by a background process's parent to the file its stdout/stderr go to (reopened on SIGHUP;
`jfs.cli.logs` re-exports it)."""

CHILD_ERROR = "jfs: error: "
"""How a foreground command's error line starts (`jfs.cli.errors`)."""


def default_log_path() -> str:
    """Where a background process logs without ``--log``: /var/log/jfs.log as root, else ~/.jfs/jfs.log."""
    return "/var/log/jfs.log" if os.geteuid() == 0 else os.path.expanduser("~/.jfs/jfs.log")


def spawn_detached(argv: list[str], ready: Callable[[], bool], what: str, log_path: str | None = None,
                   timeout: float = 30.0, ready_pipe: bool = False) -> subprocess.Popen[bytes]:
    """Start `argv` (a foreground command) in its own session, its output appended to `log_path`
    (`default_log_path()` when None; the child learns it through ``$JFS_LOG_FILE`` to reopen it on SIGHUP),
    and wait until `ready()` holds; returns the child.

    With `ready_pipe` the child also gets a ready pipe (`READY_FD_ENV`; `jfs mount` writes it once FUSE INIT
    is answered), so that the wait ends as soon as it serves.

    Raises VolumeError with the child's last log line if it exits or is not ready within `timeout`
    (`what` names it in the message, e.g. "mount of /mnt/jfs"), or when the log file cannot be opened.
    """
    log_path = os.path.abspath(os.path.expanduser(log_path)) if log_path else default_log_path()
    since = log_size(log_path)  # other daemons may share the log: only what was written after this counts
    env = {**os.environ, LOG_FILE_ENV: log_path}
    read_end = write_end = None
    if ready_pipe:
        read_end, write_end = os.pipe()
        env[READY_FD_ENV] = str(write_end)
    try:
        child = start_detached(argv, log_path, env=env, pass_fds=(write_end,) if write_end is not None else ())
        if write_end is not None:
            os.close(write_end)
            write_end = None
        if wait_for(child, ready, timeout, wake=read_end):
            return child
    finally:
        for fd in (read_end, write_end):
            if fd is not None:
                os.close(fd)
    lines = _log_lines(log_path, since)
    tail = lines[-1] if lines else ""
    refusal = next((ln for ln in reversed(lines) if ln.startswith(CHILD_ERROR)), None)
    if child.poll() is None:
        child.terminate()
    elif refusal is not None:  # the child refused (no volume, encrypted, ...): its own one line says why
        raise VolumeError(refusal[len(CHILD_ERROR):])
    raise VolumeError(f"{what} did not come up: {tail or 'no output'} (log: {log_path})")


def listening(host: str, port: int) -> bool:
    """Whether a TCP connection to a server at `host`:`port` succeeds (a wildcard address: loopback)."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False

"""Which FUSE mounts exist, unmounting one, and waiting for the process that served it — the half of
`jfs.adapters.fuse.mounting` that ``jfs umount`` needs, importing nothing but the standard library's small
modules (no structlog, no asyncio: ADR 0069).

`is_mounted` and `mount_device` read ``/proc/self/mountinfo`` without touching the mount point (a dead mount
would hang a ``stat``). `unmount` is ``umount2`` (root) or ``fusermount3 -u``; it raises OSError.
`server_pid` asks a live mount which process serves it (its ``.config``, within a timeout; None when it cannot
tell); `open_process` takes a pidfd of it if it is a FUSE server here; `wait_exit` waits for that process to end (a pidfd: no polling) and answers whether it did in time.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import subprocess
import threading
from typing import Final

MNT_DETACH: Final = 2
FUSERMOUNT: Final = "fusermount3"


class _Libc:
    """The few libc calls Python does not expose (mount, umount2)."""

    def __init__(self) -> None:
        try:  # glibc's soname: no ``ldconfig -p`` child (ctypes.util.find_library) on every mount/umount
            self.lib = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:
            from ctypes.util import find_library

            self.lib = ctypes.CDLL(find_library("c"), use_errno=True)
        self.lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                   ctypes.c_char_p]
        self.lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        if self.lib.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount {target}: {os.strerror(err)}")

    def umount2(self, target: str, flags: int) -> None:
        if self.lib.umount2(target.encode(), flags) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"umount {target}: {os.strerror(err)}")


_libc: _Libc | None = None


def libc() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def mount_device(mountpoint: str) -> tuple[int, int] | None:
    """(major, minor) of the FUSE mount at `mountpoint` from /proc/self/mountinfo, without touching it."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            found = None
            for line in f:
                fields = line.split()
                if len(fields) > 4 and _unescape(fields[4]) == mountpoint:
                    major, _, minor = fields[2].partition(":")
                    found = (int(major), int(minor))
            return found  # the last one is the top of the stack
    except OSError:
        return None


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def is_mounted(mountpoint: str | os.PathLike[str]) -> bool:
    """Whether a FUSE file system is mounted exactly at `mountpoint` (per /proc/self/mountinfo)."""
    return mount_device(os.path.abspath(mountpoint)) is not None


def unmount(mountpoint: str | os.PathLike[str], *, lazy: bool = True, fusermount: bool | None = None) -> None:
    """Unmount `mountpoint`: ``umount2`` as root, else ``fusermount3 -u [-z]``. Raises OSError."""
    target = os.path.abspath(mountpoint)
    if fusermount is None:
        fusermount = os.geteuid() != 0
    if not fusermount:
        libc().umount2(target, MNT_DETACH if lazy else 0)
        return
    args = [FUSERMOUNT, "-u"] + (["-z"] if lazy else []) + ["--", target]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(errno.EIO, f"{' '.join(args)}: {done.stderr.strip()}")


def config_pid(text: bytes) -> int | None:
    """The serving process's id in the text of a mount's ``.config``: jfs puts it under ``Mount.Pid``,
    JuiceFS at the top (``Pid``). None when the text has neither (an older mount) or is not JSON."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    mount = doc.get("Mount")
    for pid in ((mount.get("Pid") if isinstance(mount, dict) else None), doc.get("Pid")):
        if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
            return pid
    return None


def server_pid(mountpoint: str, timeout: float = 2.0) -> int | None:
    """The id of the process serving the mount at `mountpoint`, read from its ``.config``; None when the
    mount does not say, cannot be read, or does not answer within `timeout` seconds (a hung server: the
    reading thread is left blocked and does not keep the process alive)."""
    found: list[int | None] = [None]

    def read() -> None:
        try:
            with open(os.path.join(mountpoint, ".config"), "rb") as f:
                found[0] = config_pid(f.read(1 << 20))
        except OSError:
            pass

    reader = threading.Thread(target=read, name="jfs-umount-config", daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0]


def open_process(pid: int) -> int | None:
    """A pidfd of process `pid` when it holds ``/dev/fuse`` open (None otherwise: gone, not a FUSE server,
    not ours to inspect, or no pidfds). Taken before unmounting, so that a recycled pid cannot be mistaken
    for the server later; the ``/dev/fuse`` check is made after it for the same reason. It keeps a pid read
    from another pid namespace (a mount made in a container) from naming an unrelated process here."""
    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None
    if not holds_fuse_device(pid):
        os.close(pidfd)
        return None
    return pidfd


def holds_fuse_device(pid: int) -> bool:
    """Whether process `pid` has ``/dev/fuse`` open (False when that cannot be read)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/fuse":
                return True
        except OSError:
            continue
    return False


def wait_exit(pidfd: int, timeout: float) -> bool:
    """Whether the process of `pidfd` exited within `timeout` seconds (the pidfd becomes readable when it
    does; it is closed here either way)."""
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    finally:
        os.close(pidfd)

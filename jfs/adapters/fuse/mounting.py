"""Mounting and unmounting a FUSE file system, and the options that say how.

`mount_with_syscall` (root) opens ``/dev/fuse`` and calls ``mount(2)``; `mount_with_fusermount` runs
``fusermount3``, which mounts and hands the device fd back over a socket. Either way the caller owns
the returned fd. `unmount` is ``umount2`` or ``fusermount3 -u``; `is_mounted` and `mount_device` read
``/proc/self/mountinfo`` without touching the mount point (a dead mount would hang a ``stat``).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

# The light half (no structlog; `jfs umount`, ADR 0069), re-exported under its old names.
from jfs.adapters.fuse.mountinfo import (  # noqa: F401
    FUSERMOUNT,
    MNT_DETACH,
    is_mounted,
    libc,
    mount_device,
    unmount,
)

log = structlog.get_logger("jfs.fuse")

MS_RDONLY: Final = 1
MS_NOSUID: Final = 2
MS_NODEV: Final = 4
MS_NOEXEC: Final = 8
MS_SYNCHRONOUS: Final = 16
MS_DIRSYNC: Final = 128
MS_NOATIME: Final = 1024
MS_NODIRATIME: Final = 2048
MS_RELATIME: Final = 1 << 21
MS_STRICTATIME: Final = 1 << 24
MOUNT_FLAGS: Final = {
    "noexec": MS_NOEXEC, "sync": MS_SYNCHRONOUS, "dirsync": MS_DIRSYNC, "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME,
}
"""Generic mount flags a ``-o`` word may set (``mount(2)`` bits; fusermount3 takes the words)."""


@dataclass(slots=True)
class MountOptions:
    """How to mount and what to negotiate at INIT. Cache timeouts are per reply (see `EntryOut`)."""

    fsname: str = "jfs"
    """Shown as the mount source in /proc/mounts and ``df``."""
    subtype: str = "jfs"
    """The file-system type is ``fuse.<subtype>``."""
    allow_other: bool | None = None
    """Let other users access the mount (``-o allow_other``; non-root needs ``user_allow_other`` in
    /etc/fuse.conf); None: only when running as root (`jfs mount` passes False unless asked)."""
    default_permissions: bool = True
    """The kernel checks permissions against the mode bits (no ACCESS requests, no checks in the FS)."""
    read_only: bool = False
    max_write: int = 1 << 20
    """Largest WRITE payload (the kernel also caps it at ``max_pages`` pages, 256 = 1 MiB here)."""
    max_read: int = 1 << 20
    """Largest READ the kernel sends (``max_read`` mount option)."""
    max_readahead: int = 1 << 20
    """Upper bound we accept for the kernel's readahead window (it never goes above what it offers)."""
    read_ahead_kb: int | None = 1024
    """Kernel readahead window for this mount, written to ``/sys/class/bdi/<dev>/read_ahead_kb`` after
    INIT (root only; skipped otherwise). The kernel starts FUSE mounts at 128 KiB; 1024 (JuiceFS's
    value) lets sequential reads arrive as 1 MiB READs. ``None`` leaves the kernel's default."""
    max_background: int = 200
    congestion_threshold: int = 150
    writeback_cache: bool = False
    """Let the kernel cache writes (FUSE_WRITEBACK_CACHE); off by default, as in JuiceFS."""
    async_read: bool = True
    readdirplus: str = "auto"
    """"auto" (FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO), "always" or "never"."""
    posix_locks: bool = True
    flock_locks: bool = True
    parallel_dirops: bool = True
    auto_inval_data: bool = True
    """Drop cached pages when a GETATTR shows a changed mtime or size (another client wrote)."""
    cache_symlinks: bool = False
    """Let the kernel cache READLINK results (FUSE_CACHE_SYMLINKS)."""
    use_fusermount: bool | None = None
    """Mount via fusermount3 even as root (``None``: only when not root)."""
    mount_flags: tuple[str, ...] = ()
    """Words of `MOUNT_FLAGS` (``noatime``, ``noexec``, ...) to mount with."""
    suid_dev: bool = False
    """Mount without ``nosuid,nodev`` (``-o suid``/``-o dev``; root only, as with any FUSE mount)."""
    extra_options: tuple[str, ...] = ()
    """More ``-o`` style options appended to the mount data (e.g. ``"blksize=4096"`` is fuseblk-only)."""
    debug: bool = False
    """Log every request and reply at debug level."""
    dispatch: str = "eager-task"
    """How a decoded request starts its handler:

    * ``"eager-task"`` (default): as an asyncio Task whose first step runs at once, inside the reader
      callback (Python 3.12's ``eager_start``; emulated on 3.11). A handler that never suspends is
      answered before the next request is read; one that suspends continues as an ordinary task.
      Saves a loop iteration per request and keeps full task semantics.
    * ``"task"``: an ordinary task, first run in the next loop iteration.
    * ``"inline"``: no Task until the handler first suspends (the fastest: no Task at all for
      requests answered from memory). Its synchronous prefix runs in a private contextvars copy but
      outside any task, so code that needs ``asyncio.current_task()`` before its first suspending
      ``await`` (``asyncio.timeout``, ``TaskGroup``) fails there: only for handlers known not to."""
    drain_timeout: float = 10.0
    """How long `serve` waits for in-flight handlers after the connection ended, before cancelling them."""
    stop_timeout: float = 10.0
    """After a stop request, how long to wait for the lazy unmount to end the connection (open files
    keep it alive) before aborting it."""
    pool_buffers: int = 16
    """How many idle request buffers to keep."""
    read_batch: int = 64
    """Requests read per readable event before yielding to the loop."""
    place_writes: bool = True
    """Read the payload of a sequential writer's next WRITE straight into the buffer the file system
    offers for it (`Operations.write_target`, ``readv``): no copy of it in user space (ADR 0030)."""


def mount_with_syscall(mountpoint: str, options: MountOptions, allow_other: bool) -> int:
    """Open ``/dev/fuse`` (non-blocking) and ``mount(2)`` it at `mountpoint` (root only); the device fd."""
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        flags = (0 if options.suid_dev else MS_NOSUID | MS_NODEV) | (MS_RDONLY if options.read_only else 0)
        for word in options.mount_flags:
            flags |= MOUNT_FLAGS[word]
        data = [f"fd={fd}", f"rootmode={stat.S_IFDIR:o}", f"user_id={os.getuid()}", f"group_id={os.getgid()}",
                *_common_options(options, allow_other)]
        libc().mount(options.fsname, mountpoint, f"fuse.{options.subtype}", flags, ",".join(data))
    except BaseException:
        os.close(fd)
        raise
    return fd


def mount_with_fusermount(mountpoint: str, options: MountOptions, allow_other: bool) -> int:
    """Mount through fusermount3 and receive the device fd (blocking) over the _FUSE_COMMFD socket."""
    o = options
    opts = [f"fsname={o.fsname}", f"subtype={o.subtype}", "ro" if o.read_only else "rw",
            *([] if o.suid_dev else ["nosuid", "nodev"]), *o.mount_flags, *_common_options(o, allow_other)]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        env = dict(os.environ, _FUSE_COMMFD=str(theirs.fileno()))
        proc = subprocess.Popen([FUSERMOUNT, "-o", ",".join(opts), "--", mountpoint], env=env,
                                pass_fds=(theirs.fileno(),), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        theirs.close()
        _, stderr = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise OSError(errno.EIO, f"fusermount3 failed: {stderr.strip()}")
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    if not fds:
        raise OSError(errno.EIO, "fusermount3 sent no file descriptor")
    os.set_inheritable(fds[0], False)
    return fds[0]


def _common_options(o: MountOptions, allow_other: bool) -> list[str]:
    opts = [f"max_read={o.max_read}"]
    if allow_other:
        opts.append("allow_other")
    if o.default_permissions:
        opts.append("default_permissions")
    opts.extend(o.extra_options)
    return opts


FUSE_OPTION_NOOPS = frozenset({"rw", "nosuid", "nodev", "exec", "async", "atime", "default_permissions",
                               "auto_unmount", "nonempty", "big_writes"})
"""``-o`` words that change nothing here: jfs's defaults already, or libfuse 2 words FUSE 3 dropped."""


def apply_fuse_options(options: MountOptions, words: list[str]) -> tuple[MountOptions, bool]:
    """`options` changed by ``-o`` FUSE options, as JuiceFS passes them to the kernel; and whether
    ``ro`` was among them (the VFS must refuse changes too).

    ``allow_other``, ``ro``, ``writeback_cache``, ``max_read=N``, ``fsname=…``, ``subtype=…``,
    ``suid``/``dev`` (root), the generic flags of `MOUNT_FLAGS`; the words of `FUSE_OPTION_NOOPS` are
    accepted and change nothing; any other word goes to the kernel as it is (which refuses what it does
    not know: the mount then fails with EINVAL). ValueError for a malformed ``max_read``."""
    o = dataclasses.replace(options)
    read_only = False
    flags = list(o.mount_flags)
    extra = list(o.extra_options)
    for word in filter(None, (w.strip() for text in words for w in text.split(","))):
        key, _, value = word.partition("=")
        if word == "allow_other":
            o.allow_other = True
        elif word == "ro":
            o.read_only = read_only = True
        elif word == "writeback_cache":
            o.writeback_cache = True
        elif word in ("suid", "dev"):
            o.suid_dev = True
        elif word in MOUNT_FLAGS:
            flags.append(word)
        elif key == "max_read":
            if not value.isdigit() or int(value) < 4096:
                raise ValueError(f"-o max_read={value}: a number of bytes, at least 4096")
            o.max_read = int(value)
        elif key == "fsname" and value:
            o.fsname = value
        elif key == "subtype" and value:
            o.subtype = value
        elif word in FUSE_OPTION_NOOPS:
            continue
        else:
            extra.append(word)
    o.mount_flags, o.extra_options = tuple(dict.fromkeys(flags)), tuple(extra)
    return o, read_only


def set_read_ahead(device: tuple[int, int] | None, kb: int) -> None:
    """Set the readahead window of the mount on `device` (root only; a no-op otherwise, a warning on failure)."""
    if device is None or os.geteuid() != 0:
        return
    try:
        Path(f"/sys/class/bdi/{device[0]}:{device[1]}/read_ahead_kb").write_text(str(kb))
    except OSError as exc:
        log.warning("fuse_read_ahead_not_set", error=str(exc))

"""`jfs mount` / `jfs umount`: wire a volume's engine, object store, data path and the FUSE server."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from jfs.adapters.fuse.collector import settle_for_serving
from jfs.adapters.fuse.mounting import MountOptions, apply_fuse_options
from jfs.adapters.fuse.server import FuseServer
from jfs.adapters.fuse.vfs_operations import MountConfig, VfsOperations
from jfs.adapters.objects import file, file_pages
from jfs.app.errors import VolumeError
from jfs.bootstrap import ClientOptions, default_cache_dir, open_client
from jfs.cli.background import take_ready_fd, tell_ready
from jfs.cli.logs import reload_on_sighup
from jfs.cli.mount_start import (  # noqa: F401 (re-exported: what `jfs mount -d`'s parent runs lives there)
    check_metrics,
    check_mountpoint,
    foreground_argv,
    spawn_background,
)
from jfs.cli.unmount import umount  # noqa: F401 (re-exported: `jfs umount`'s body lives there)

log = structlog.get_logger("jfs.mount")


@dataclass(frozen=True, slots=True)
class MountArgs:
    meta_url: str
    mountpoint: str
    cache_dir: str | None = None
    cache_size: int = 100 << 30
    """Bytes (the CLI takes units, `jfs.cli.units`)."""
    buffer_size: int = 300 << 20
    attr_cache: float = 1.0
    entry_cache: float = 1.0
    dir_entry_cache: float = 1.0
    negative_cache: float = 0.0
    enable_xattr: bool = False
    writeback_cache: bool = False
    readdir_cache: bool = True
    readdir_plus: str = "always"
    """Which listing replies carry attributes (`MountOptions.readdirplus`; ADRs 0071, 0080): "always" (every
    reply is READDIRPLUS), "auto" (the kernel chooses: the first reply, and after a lookup in the directory),
    "never" (plain READDIR; every stat then LOOKUPs)."""
    read_only: bool = False
    fuse_options: tuple[str, ...] = ()
    """``-o`` words (`apply_fuse_options`): ``allow_other`` is off unless given."""
    subdir: str = ""
    """Serve this directory of the volume as the mount's root."""
    heartbeat: float = 12.0
    max_uploads: int = 20
    no_bgjob: bool = False
    prefetch: int = 16
    free_space_ratio: float = 0.1
    upload_limit: float = 0
    """Mbps (0 = no limit)."""
    download_limit: float = 0
    writeback: bool = False
    """Stage written blocks in the cache directory, upload them in the background."""
    backup_meta: float = 3600.0
    """Seconds between automatic metadata backups into the bucket (0 = none)."""
    log_file: str | None = None
    """Where a background mount logs (default: `default_log_path`)."""
    metrics: str = "127.0.0.1:9567"
    """Prometheus endpoint address ("" = none); the next free port is used when it is taken."""


def prepare_mountpoint(mountpoint: str) -> list[str]:
    """Create `mountpoint` with its missing parents, as JuiceFS does; returns the directories created
    (parents first), for `remove_created` should the mount not come up. VolumeError naming the path and
    the reason when it cannot be made. A non-empty mount point is allowed, as in JuiceFS (FUSE 3 has no
    ``nonempty`` check): its files are hidden while the volume is mounted, and a warning says so."""
    created: list[str] = []
    missing = mountpoint
    while not os.path.lexists(missing) and missing != os.path.dirname(missing):
        created.insert(0, missing)
        missing = os.path.dirname(missing)
    try:
        os.makedirs(mountpoint, exist_ok=True)
    except OSError as exc:
        remove_created(created)
        where = "" if exc.filename in (None, mountpoint) else f" ({exc.filename})"
        raise VolumeError(f"cannot create mount point {mountpoint}: {exc.strerror or exc}{where}") from None
    if not os.path.isdir(mountpoint):  # raced with something else
        raise VolumeError(f"mount point {mountpoint} is not a directory")
    if created:
        log.info("mountpoint_created", mountpoint=mountpoint)
    else:
        try:
            with os.scandir(mountpoint) as entries:
                hidden = next(entries, None) is not None
        except OSError:
            hidden = False
        if hidden:
            log.warning("mountpoint_not_empty", mountpoint=mountpoint,
                        detail="its files are hidden while the volume is mounted")
    return created


def remove_created(created: list[str]) -> None:
    """Remove the directories `prepare_mountpoint` made (deepest first), as long as they are empty."""
    for path in reversed(created):
        try:
            os.rmdir(path)
        except OSError:
            return


def fuse_mount_options(args: MountArgs, fsname: str) -> tuple[MountOptions, bool]:
    """The FUSE mount options of `args` (its ``-o`` words applied) and whether the mount is read-only.
    VolumeError for a malformed ``-o`` word."""
    if args.readdir_plus not in ("always", "auto", "never"):
        raise VolumeError(f"--readdir-plus must be always, auto or never, not {args.readdir_plus!r}")
    base = MountOptions(
        fsname=fsname, subtype="jfs", allow_other=False, read_only=args.read_only,
        writeback_cache=args.writeback_cache,
        # "always" by default (ADR 0080): "auto" lets the kernel ask READDIRPLUS for a listing's first
        # reply and after lookups only, so `ls -l` / `du` LOOKUP most entries one by one.
        readdirplus=args.readdir_plus,
    )
    try:
        options, ro = apply_fuse_options(base, list(args.fuse_options))
    except ValueError as exc:
        raise VolumeError(str(exc)) from None
    return options, args.read_only or ro


async def serve(args: MountArgs) -> None:
    """Mount the volume and serve it until unmounted or signalled; everything is released on the way out."""
    mountpoint = check_mountpoint(args.mountpoint)
    ready_fd = take_ready_fd()  # closed when this process exits, if not before
    told: asyncio.Task[None] | None = None
    _, read_only = fuse_mount_options(args, "jfs")  # a bad -o word fails before anything is opened
    created = prepare_mountpoint(mountpoint)
    server: FuseServer | None = None
    try:
        client = await open_client(args.meta_url, ClientOptions(
            cache_dir=args.cache_dir if args.cache_dir is not None else default_cache_dir(),
            cache_size=args.cache_size,
            buffer_size=args.buffer_size,
            max_uploads=args.max_uploads,
            read_only=read_only,
            subdir=args.subdir,
            prefetch=args.prefetch,
            free_space_ratio=args.free_space_ratio,
            upload_limit=args.upload_limit,
            download_limit=args.download_limit,
            writeback=args.writeback,
            give_back_memory=os.environ.get("JFS_GIVE_BACK_MEMORY", "1") != "0",  # ADR 0048
            heartbeat=args.heartbeat,
            background_jobs=not args.no_bgjob,
            enable_xattr=args.enable_xattr,
            # The kernel checks permissions itself (default_permissions); jfs checks `.control` requests.
            permission_checks=False,
            entry_cache=0, attr_cache=0,  # the kernel caches names and attributes for a mount
            mountpoint=mountpoint,
            metrics=args.metrics,
            extra={"AttrCache": args.attr_cache, "EntryCache": args.entry_cache, "DirEntryCache": args.dir_entry_cache,
                   # `jfs umount` waits for this process to exit (its final flush; ADR 0069)
                   "Pid": os.getpid()},
        ))
    except BaseException:
        remove_created(created)  # the volume did not open: leave no directory behind
        raise
    backup = None
    if args.backup_meta > 0 and not args.no_bgjob and not read_only:
        from jfs.app.meta_backup import MetaBackup

        cache_dir = client.vfs.config.options.get("CacheDir")
        workdir = os.path.join(cache_dir, client.meta.settings.uuid) if cache_dir else None
        backup = MetaBackup(client.kv, client.store, client.meta.settings.name, args.backup_meta, workdir).start()
    reload_on_sighup(asyncio.get_running_loop())  # SIGHUP: log level, log file (docs/operations.md)
    try:
        ops = VfsOperations(client.vfs, MountConfig(
            attr_timeout=args.attr_cache, entry_timeout=args.entry_cache,
            dir_entry_timeout=args.dir_entry_cache, negative_timeout=args.negative_cache,
            readdir_cache=args.readdir_cache,
        ), root=client.root)
        options, _ = fuse_mount_options(args, f"jfs:{client.meta.settings.name}")
        server = FuseServer(ops, mountpoint, options)
        if ready_fd is not None:  # `jfs mount -d`'s parent stops waiting at once (ADR 0069)
            told = asyncio.create_task(_tell_when_ready(server, ready_fd))
            ready_fd = None
        settle_for_serving()
        log.info("mounting", volume=client.meta.settings.name, mountpoint=mountpoint, sid=client.meta.sid,
                 subdir=args.subdir or None, allow_other=bool(options.allow_other), read_only=read_only)
        await server.run()
    except BaseException:
        if server is None or not server.ready.is_set():  # never came up: leave no directory behind
            remove_created(created)
        raise
    finally:
        if told is not None:
            told.cancel()
        if backup is not None:
            await backup.close()
        await client.close()
        log.info("unmounted", mountpoint=mountpoint)


async def _tell_when_ready(server: FuseServer, fd: int) -> None:
    """`tell_ready` on `fd` once `server` answered FUSE INIT; `fd` is closed either way."""
    try:
        await server.ready.wait()
    except BaseException:
        os.close(fd)
        raise
    tell_ready(fd)


GIL_SWITCH_INTERVAL = 0.0005
"""Seconds a busy event loop may hold the GIL before a waiting worker thread (SQLite writer, object-store
and cache pools) gets it. Python's default (5 ms) made a metadata transaction wait up to 5 ms behind a
busy loop; 0.5 ms gave +5-20 % on mdtest phases through the mount (docs/benchmarks.md)."""


def run_foreground(args: MountArgs) -> None:
    # A big write through a `file` bucket reuses the page frames of its older block files instead of
    # taking cold ones (ADR 0059; the gateway's ADR 0052); $JFS_FILE_KEEP_WRITTEN_MIB=0: off.
    os.environ.setdefault(file_pages.KEEP_ENV, str(file_pages.MOUNT_KEEP_MIB))
    # ... and writes its big blocks around the page cache altogether where the file system allows it
    # (ADR 0059); $JFS_FILE_DIRECT_WRITES=0: off.
    os.environ.setdefault(file.DIRECT_ENV, "1")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    with asyncio.Runner(loop_factory=mount_loop_factory(args.meta_url)) as runner:
        runner.run(serve(args))


def mount_loop_factory(meta_url: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a mount of the volume in `meta_url` runs on (None: the standard one).

    uvloop's (libuv; its loop, callbacks and tasks scheduled in C) for engines reached over the network:
    -20-34 % mount CPU per metadata operation on Redis (ADR 0037). The standard loop for SQLite, whose
    transaction bodies run inline on the loop thread: there a request is answered within the reader's
    callback only with the standard loop's eager dispatch (`FuseServer`), and uvloop measured no cheaper
    and slower. ``JFS_EVENT_LOOP=asyncio`` / ``uvloop`` overrides the choice; without uvloop installed, the
    standard loop."""
    choice = os.environ.get("JFS_EVENT_LOOP") or ("asyncio" if meta_url.startswith("sqlite") else "uvloop")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop

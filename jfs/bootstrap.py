"""The composition root of a client: META-URL + options → a live `Client` (engine, settings, object store,
data path, metadata engine with its session, VFS), closed in the reverse order.

Every face that serves a volume (the FUSE mount, the SDK, gateways) builds its client here, so they all
get the same wiring, the same checks at start, and the same one-line errors (`VolumeError`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import structlog

from jfs.adapters.direct_files import DirectWriter
from jfs.adapters.malloc_tuning import give_back_free_memory
from jfs.adapters.objects import file_pages
from jfs.app.data.config import DataConfig
from jfs.app.data.files import DataPath
from jfs.app.data.staging import StagingStore, staging_dir
from jfs.app.data.throttle import throttled
from jfs.app.errors import VolumeError
from jfs.app.meta import Meta
from jfs.app.meta.engine import HEARTBEAT, VolumeNotFormatted
from jfs.app.vfs import VFS, PathResolver, VfsConfig
from jfs.app.vfs.names import NameCache
from jfs.compose import open_bucket, open_engine
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.errors import FSError
from jfs.ports.kv import KV
from jfs.ports.objects import ObjectStore

log = structlog.get_logger("jfs.client")


def default_cache_dir() -> str:
    return "/var/jfsCache" if os.geteuid() == 0 else os.path.expanduser("~/.jfs/cache")


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """What a client of a volume may choose (the mount's options where they apply; sizes in bytes)."""

    cache_dir: str | None = ""
    """Disk block cache directory: "" = the default (/var/jfsCache as root, ~/.jfs/cache otherwise),
    None = no disk cache."""
    cache_size: int = 100 << 30
    buffer_size: int = 300 << 20
    max_uploads: int = 20
    read_only: bool = False
    subdir: str = ""
    """Serve this directory of the volume as the client's root."""
    heartbeat: float = HEARTBEAT
    background_jobs: bool = True
    """Run the session's background jobs (stale-session cleanup, trash expiry, deletions)."""
    entry_cache: float = 1.0
    """Seconds a path-based client (SDK, gateways) remembers name → inode (a mount: the kernel does)."""
    attr_cache: float = 1.0
    """Seconds a path-based client remembers attributes."""
    enable_xattr: bool = True
    permission_checks: bool = True
    free_space_ratio: float = 0.1
    """The disk cache writes nothing while its file system has less than this share free."""
    prefetch: int = 16
    """Background block loads (read-ahead) in flight at most; 0 = no read-ahead."""
    writeback: bool = False
    """Stage written blocks in the cache directory and upload them in the background (`StagingStore`:
    acknowledged writes survive a crash of the client, not the loss of its disk). Staged bytes are bounded
    by `cache_size` and by `free_space_ratio` of the disk: beyond, blocks are uploaded directly."""
    upload_limit: float = 0
    """Upload bandwidth limit in Mbps (0 = none), as JuiceFS's ``--upload-limit``."""
    download_limit: float = 0
    """Download bandwidth limit in Mbps (0 = none)."""
    mountpoint: str = ""
    """How the session is labelled in `jfs status` (the mount point, or e.g. "sdk:<pid>")."""
    extra: dict[str, Any] = field(default_factory=dict)
    """More options shown in ``.config``."""
    metrics: str = ""
    """Serve this client's Prometheus metrics at HOST:PORT (the next free port when taken); "" = none.
    Off by default for the SDK; `jfs mount`, `jfs gateway` and `jfs webdav` pass JuiceFS's default."""
    give_back_memory: bool = False
    """Return free heap memory to the OS after write bursts (`malloc_trim`, ADR 0048): `jfs mount` sets it;
    the SDK's host process and the gateway (which keeps freed block buffers for reuse, ADR 0029) do not."""


class Client:
    """One live client of a volume. Build with `open_client`; `close()` commits buffered data, ends the
    session and releases every connection."""

    def __init__(self, kv: KV, store: ObjectStore, meta: Meta, data: DataPath, vfs: VFS, root: int) -> None:
        self.kv = kv
        self.store = store
        self.meta = meta
        self.data = data
        self.vfs = vfs
        self.root = root
        self.paths = PathResolver(vfs, root)
        self.metrics: Any = None
        """The running metrics endpoint (`jfs.adapters.metrics.prometheus.MetricsServer`), if any."""
        self._closed = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.metrics is not None:
            self.metrics.close()
        try:
            try:
                await self.data.close()
            finally:
                await self.meta.close()
        finally:
            try:
                await self.store.close()
            finally:
                await self.kv.close()


async def open_client(meta_url: str, options: ClientOptions | None = None) -> Client:
    """Connect to the volume of `meta_url` and start a client session.

    VolumeError (one line for the user) when the engine is unreachable or not formatted, the bucket cannot
    be opened, or the subdir does not exist; nothing is left open then.
    """
    opts = options or ClientOptions()
    kv = await open_engine(meta_url)
    store: ObjectStore | None = None
    meta: Meta | None = None
    data: DataPath | None = None
    try:
        try:
            meta = await Meta.load(kv)
        except VolumeNotFormatted as exc:
            raise VolumeError(str(exc)) from None
        store = throttled(await open_bucket(meta.settings), opts.upload_limit, opts.download_limit)
        await meta.start_session(opts.mountpoint or f"sdk:{os.getpid()}", heartbeat=opts.heartbeat,
                                 background=opts.background_jobs)
        config = DataConfig.from_settings(
            meta.settings,
            cache_dir=default_cache_dir() if opts.cache_dir == "" else opts.cache_dir,
            cache_size=opts.cache_size,
            buffer_size=opts.buffer_size,
            max_uploads=opts.max_uploads,
            cache_free_ratio=opts.free_space_ratio,
            prefetch=opts.prefetch,
        )
        if opts.writeback:
            if not config.cache_dir:
                raise VolumeError("--writeback needs a cache directory (--cache-dir)")
            staging = await StagingStore(store, staging_dir(config.cache_dir, meta.settings.uuid),
                                         concurrency=opts.max_uploads, max_bytes=config.cache_size,
                                         free_ratio=config.cache_free_ratio).start()
            meta.session_extra = lambda: {"Staging": staging.status()}  # `jfs status`, at each heartbeat
            store = staging
        give_back = give_back_free_memory if opts.give_back_memory else None
        # The disk cache's files get the same page-cache budget as a `file` bucket's (ADR 0059), when the
        # process asked for one ($JFS_FILE_KEEP_WRITTEN_MIB; `jfs mount` and `jfs gateway` do).
        cache_pages = file_pages.from_env() if config.cache_dir else None
        # Big disk-cache entries go around the page cache (ADR 0059): a disk cache is a copy on disk, its
        # page-cache copy only doubled the memory cache's, at the price of touching fresh pages per block.
        # An entry a small read finds not cached is warmed whole instead (ADR 0074).
        data = await DataPath(meta, store, config, give_back=give_back,
                              cache_written=cache_pages.written if cache_pages is not None else None,
                              cache_direct_write=DirectWriter().write if config.cache_dir else None,
                              cache_warm=file_pages.willneed if config.cache_dir else None).start()
        vfs = VFS(meta, data, VfsConfig(
            permission_checks=opts.permission_checks, enable_xattr=opts.enable_xattr, read_only=opts.read_only,
            options={"MountPoint": opts.mountpoint, "CacheDir": config.cache_dir, "CacheSize": config.cache_size,
                     "BufferSize": config.buffer_size, "ReadOnly": opts.read_only, "Subdir": opts.subdir,
                     "Writeback": opts.writeback,
                     **opts.extra},
        ))
        if opts.entry_cache > 0 or opts.attr_cache > 0:
            vfs.names = NameCache(opts.entry_cache, opts.attr_cache)
        root = ROOT_INODE
        if opts.subdir.strip("/"):
            try:
                root, attr = await PathResolver(vfs).resolve(vfs.ctx(), opts.subdir)
            except FSError as exc:
                raise VolumeError(f"subdir {opts.subdir!r} of volume {meta.settings.name}: {exc.strerror}") from None
            if attr.typ is not FileType.DIRECTORY:
                raise VolumeError(f"subdir {opts.subdir!r} of volume {meta.settings.name} is not a directory")
        client = Client(kv, store, meta, data, vfs, root)
        client.metrics = serve_metrics(client, opts.metrics, opts.mountpoint or f"sdk:{os.getpid()}")
        return client
    except BaseException:
        if data is not None:
            await data.close()
        if meta is not None:
            await meta.close()
        if store is not None:
            await store.close()
        await kv.close()
        raise


def serve_metrics(client: Client, addr: str, label: str) -> Any:
    """Serve `client`'s metrics at `addr` with JuiceFS's labels (``vol_name``, ``mp`` = `label`); None when
    `addr` is "" or "off". The address served goes into ``.config`` (``Metrics``).

    An endpoint that cannot start is logged, not fatal: the file system matters more than its metrics.
    """
    if addr.strip().lower() in ("", "off", "none"):
        return None
    from jfs.adapters.metrics import prometheus
    from jfs.adapters.metrics.address import MetricsError
    from jfs.app.metrics import families

    vfs = client.vfs
    try:
        server = prometheus.start(addr, lambda: families(vfs), {"vol_name": client.meta.settings.name, "mp": label})
    except MetricsError as exc:
        log.warning("metrics_unavailable", error=str(exc))
        return None
    vfs.config.options["Metrics"] = server.address
    log.info("metrics", address=f"http://{server.address}/metrics")
    return server

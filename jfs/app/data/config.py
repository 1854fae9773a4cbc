"""`DataConfig`: every knob of one client's data path (block layout from the volume, the rest per mount)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from jfs.domain.retry import BLOCK_IO, BLOCK_IO_ATTEMPTS
from jfs.domain.settings import Settings

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True, slots=True)
class DataConfig:
    """How one client stores, caches, buffers and reads file data.

    `volume`, `uuid`, `block_size`, `compression`, `hash_prefix` and `checksum` come from the volume's
    settings and decide object names, framing and integrity records; the rest are mount options.
    """

    volume: str
    """Object keys are ``<volume>/chunks/...``."""
    uuid: str
    """The volume's UUID: the disk cache lives in ``<cache_dir>/<uuid>/raw/``."""
    block_size: int
    """Bytes per block object (the setting stores KiB)."""
    compression: str = "none"
    hash_prefix: bool = False
    checksum: bool = False
    """Write a block-checksum record with every slice and verify blocks fetched from the object store
    against the records (ADR 0008)."""

    cache_dir: str | None = None
    """Disk block cache directory; None disables the disk cache."""
    cache_size: int = 1 * GiB
    """Bytes the disk cache may hold (entries are evicted least recently used first)."""
    cache_free_ratio: float = 0.1
    """The disk cache evicts entries while its file system has less than this share of space free."""
    cache_small_writes: bool = True
    """Put written blocks shorter than a full block into the disk cache (as JuiceFS does). Off for
    ``file`` buckets, like `cache_full_writes`: the copy is a second file create per small file for
    nothing (the bucket is as local as the cache)."""
    cache_full_writes: bool = True
    """Put full written blocks into the disk cache too: data read back soon after it was written (a common
    pattern) is then read locally. Off for ``file`` buckets (already local). JuiceFS 1.4.2 does this only
    with ``--cache-large-write`` (default off): on S3 each big-write block goes into the page cache twice
    here, once in JuiceFS (ADR 0053 leaves it on for the read-back rate)."""
    cache_loads: bool = True
    """Put whole blocks loaded from the object store into the disk cache (as JuiceFS does). Off for
    ``file`` buckets: reading the bucket is as fast as reading the cache, and the copy cost a fifth of the
    big-file read rate (`jfs warmup` and small random reads still fill the cache)."""
    mem_cache_size: int = 128 * MiB
    """Bytes of decompressed blocks kept in memory (hot blocks and read-ahead)."""

    buffer_size: int = 300 * MiB
    """Bytes writers may hold (buffered, uploading or awaiting commit) before writes wait."""
    max_uploads: int = 20
    """Block uploads in flight per client."""
    upload_backlog: int = 8
    """Blocks that may wait for an upload slot beyond `max_uploads` before writes wait: writes wait while
    (`max_uploads` + this) blocks' worth of bytes are handed to the uploader and not stored (ADR 0053).
    `buffer_size` still bounds everything writers hold."""
    max_deletes: int = 16
    """Block deletions in flight per client."""
    readahead_blocks: int = 8
    """Largest read-ahead window, in blocks."""
    prefetch: int = 16
    """Background block loads (read-ahead) in flight at most (``--prefetch``); 0 turns read-ahead off."""
    io_retries: int = BLOCK_IO_ATTEMPTS
    """Attempts per object-store call before the data path gives up with EIO (`jfs.domain.retry.BLOCK_IO`)."""
    retry_delay: float = BLOCK_IO.first
    """First back-off between attempts, doubled each time (with jitter) up to `retry_max_delay`."""
    retry_max_delay: float = BLOCK_IO.cap
    idle_flush: float = 1.0
    """A slice untouched for this many seconds is frozen and committed."""
    max_slice_age: float = 5.0
    """A slice older than this many seconds is frozen and committed even if still written."""
    sweep_interval: float = 0.1
    attr_ttl: float = 1.0
    """Cached slice layouts of an open file are revalidated against its attributes after this long."""
    max_compactions: int = 10
    compact_on_read: bool = True
    """Schedule a background compaction when a read sees a fragmented chunk."""
    recompact_delay: float = 1.0
    """A chunk compacted in the background is not compacted in the background again for this many
    seconds (reads and commits that ask meanwhile are ignored; `compact_chunk` is not delayed)."""
    cpu_workers: int = 4
    """Threads for compression, decompression and checksums."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DataConfig:
        """The configuration for the volume `settings`, with mount options in `overrides`."""
        base = cls(
            volume=settings.name,
            uuid=settings.uuid,
            block_size=settings.block_bytes,
            compression=settings.compression or "none",
            hash_prefix=settings.hash_prefix,
            checksum=bool(settings.checksum),
            # A local directory bucket reads as fast as the cache would: caching full written blocks there
            # only doubles the disk writes (measured: fio sequential write 505 -> 228 MiB/s).
            cache_small_writes=settings.storage.lower() != "file",
            cache_full_writes=settings.storage.lower() != "file",
            cache_loads=settings.storage.lower() != "file",
        )
        return dataclasses.replace(base, **overrides)

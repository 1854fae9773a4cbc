"""A whole client's data path on a fresh volume, for tests and benchmarks: KV + Meta + store + DataPath.

`DataVolume.create` formats a volume in the given KV engine and opens a `DataPath` over the given store;
`restart` closes the client (flushing everything) and opens a new one on the same KV and bucket, as a
remount would, optionally with a different (e.g. cold) cache directory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jfs.app.data.config import DataConfig
from jfs.app.data.files import DataPath
from jfs.app.meta.engine import Meta, format_meta
from jfs.domain.settings import Settings
from jfs.ports.kv import KV
from jfs.ports.objects import ObjectStore

StoreFactory = Callable[[], Awaitable[ObjectStore]]


@dataclass
class DataVolume:
    kv: KV
    meta: Meta
    store: ObjectStore
    dp: DataPath
    config: DataConfig
    open_store: StoreFactory
    cache_warm: Callable[[str], object] | None = None
    """The disk cache's page-cache warming, kept for `restart`."""

    @classmethod
    async def create(
        cls,
        kv: KV,
        open_store: StoreFactory,
        *,
        name: str = "data-test",
        block_kib: int = 64,
        compression: str = "none",
        checksum: bool = False,
        cache_warm: Callable[[str], object] | None = None,
        **overrides: Any,
    ) -> DataVolume:
        """Format volume `name` in `kv` (trash off; block checksums if `checksum`) and start a client on a
        store from `open_store` (`cache_warm`: the disk cache's page-cache warming, `DataPath`'s)."""
        await format_meta(
            kv,
            Settings(
                name=name, trash_days=0, block_size=block_kib, compression=compression,
                checksum="crc32" if checksum else "",
            ),
        )
        meta = await Meta.load(kv)
        await meta.start_session(background=False)
        store = await open_store()
        config = DataConfig.from_settings(meta.settings, **overrides)
        dp = await DataPath(meta, store, config, cache_warm=cache_warm).start()
        return cls(kv, meta, store, dp, config, open_store, cache_warm)

    async def new_file(self, name: bytes, mode: int = 0o644) -> int:
        ino, _ = await self.meta.create(1, name, mode)
        return ino

    async def write_new_file(self, name: bytes, data: bytes, off: int = 0) -> int:
        """A new file `name` in the root with `data` written at `off` through one handle, released."""
        ino = await self.new_file(name)
        h = await self.dp.open(ino, os.O_WRONLY)
        await self.dp.write(h, off, data)
        await self.dp.release(h)
        return ino

    async def stop(self) -> None:
        """Close the client (pending writes are flushed) but keep the KV engine open."""
        await self.dp.close()
        await self.meta.close()
        await self.store.close()

    async def restart(self, **overrides: Any) -> None:
        """Close this client and start a new one on the same KV and bucket (config changes in `overrides`)."""
        await self.stop()
        self.meta = await Meta.load(self.kv)
        await self.meta.start_session(background=False)
        self.store = await self.open_store()
        self.config = dataclasses.replace(self.config, **overrides)
        self.dp = await DataPath(self.meta, self.store, self.config, cache_warm=self.cache_warm).start()

    async def close(self) -> None:
        await self.stop()
        await self.kv.close()

"""`BlockStore`: one block of one slice in and out of the object store — naming, compression, retries.

Objects are named ``<volume>/`` + `block_key(slice_id, index, blen)` where `blen` is the uncompressed
length (exactly as JuiceFS names them), and each holds the block compressed on its own with the volume's
codec (raw LZ4 block, zstd frame, or nothing) — then sealed, on an encrypted volume, with the sealer of the
`EncryptedStore` in the chain of store layers it is given (`jfs.app.data.crypto`; a block that does not
open is bad content). Blocks are sealed and opened in the same CPU-pool call as they are (de)compressed,
and pass that store untouched (`sealed_by_caller`), byte for byte as it would have sealed them, through
every other layer (request metrics, throttling) (ADR 0023).

Contracts:

* CPU work (compression, checksums, sealing and their inverses) runs on this store's bounded thread pool,
  one call per block, never on the loop.
* Every call is tried under the `BLOCK_IO` budget of `jfs.domain.retry` (the volume's `io_retries`
  attempts, doubling jittered back-off) on object-store errors, and at most `BLOCK_CORRUPT_ATTEMPTS` times
  on bad content (a short object, or one that does not decompress to `blen` bytes). This is the only
  retry of block I/O (ADR 0017). What survives it is `FSError(EIO)`, logged once with the object key.
* With block checksums on (ADR 0008), `put` returns the CRC-32 of the uncompressed block and `get`
  checks a block against the CRC it is given: a mismatch is bad content (retried, then EIO with the key).
* A missing object is not retried here: it raises `BlockMissing`, because the usual cause is that the
  slice was compacted or truncated away since the caller resolved it; the caller re-resolves and asks
  again, and turns a repeat into EIO.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog

from jfs.app.data.compress import CorruptBlock, get_codec
from jfs.app.data.config import DataConfig
from jfs.app.data.crypto import find_sealer, sealed_by_caller
from jfs.domain.checksums import block_crc
from jfs.domain.chunks import block_count, block_key, block_len
from jfs.domain.errors import FSError
from jfs.domain.retry import BLOCK_CORRUPT_ATTEMPTS, BLOCK_IO
from jfs.ports.objects import ObjectNotFound, ObjectStore, ObjectStoreError

T = TypeVar("T")
log = structlog.get_logger("jfs.data")

# Errors worth another attempt: the store's own failures, bad content (a torn or truncated response),
# and OS-level I/O errors from local adapters.
_RETRYABLE = (ObjectStoreError, CorruptBlock, OSError)
CORRUPT_ATTEMPTS = BLOCK_CORRUPT_ATTEMPTS


def _delete_fanin(store: object) -> int:
    """`delete_fanin` of `store` or of the store its wrappers wrap: how many queued deletions one of its
    requests carries at most (1 for stores without batching)."""
    while store is not None:
        fanin = getattr(type(store), "delete_fanin", None)
        if isinstance(fanin, int):
            return max(1, fanin)
        store = getattr(store, "inner", None)
    return 1


def store_capability(store: object, name: str) -> Callable[..., Any] | None:
    """Method `name` of `store` or of a store it wraps (``inner``, a few layers down), else None: the
    optional capabilities of a store whose objects are local files (`FileStore.warm`, `FileStore.get_now`,
    `FileStore.get_pooled`).
    Looked up on the classes, so that a wrapper delegating unknown attributes is not taken for one; None
    below a layer that sets ``hides_local_reads`` (`ThrottledStore` with a download limit)."""
    for _ in range(8):
        if store is None or getattr(store, "__dict__", {}).get("hides_local_reads"):
            return None  # a layer every read must pass (a download limit)
        if callable(getattr(type(store), name, None)):
            return getattr(store, name)  # type: ignore[no-any-return]
        store = getattr(store, "inner", None)
    return None


class BlockMissing(Exception):
    """The object of a block does not exist (the slice may have been deleted since it was resolved)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"block object '{key}' not found")
        self.key = key


class BlockStore:
    """Blocks of slices in one volume's prefix of an object store."""

    def __init__(self, store: ObjectStore, config: DataConfig) -> None:
        self.store = store
        self.config = config
        self.block_size = config.block_size
        self.codec = get_codec(config.compression)
        # On an encrypted volume the seal is part of encoding a block (one CPU-pool call per block, not
        # one for compression and another for the seal): blocks pass the EncryptedStore as they are.
        self._sealer = find_sealer(store)
        self._objects: ObjectStore = store
        self.ranged = self.codec.name == "none" and self._sealer is None
        """Whether part of a block can be fetched with a ranged GET (only uncompressed, unencrypted blocks)."""
        self._get_pooled = store_capability(store, "get_pooled") if self.ranged else None
        """A store that reads a whole stored-as-is block into a recycled buffer (`FileStore.get_pooled`,
        ADR 0070): `get` then returns a read-only memoryview of it instead of new bytes."""
        self.checksum = config.checksum
        self._prefix = f"{config.volume}/"
        self._cpu = ThreadPoolExecutor(max_workers=max(1, config.cpu_workers), thread_name_prefix="jfs-cpu")
        # A store that sends queued deletions together (S3 DeleteObjects) takes that many times more at once.
        self._deletes = asyncio.Semaphore(max(1, config.max_deletes) * _delete_fanin(store))
        self._retry = BLOCK_IO.tuned(attempts=config.io_retries, first=config.retry_delay, cap=config.retry_max_delay)

    # -- naming ----------------------------------------------------------------------------------------

    def cache_key(self, slice_id: int, index: int, blen: int) -> str:
        """Key of a block relative to the volume (``chunks/...``), as the disk cache names it."""
        return block_key(slice_id, index, blen, self.config.hash_prefix)

    def key(self, slice_id: int, index: int, blen: int) -> str:
        """Full object key of a block."""
        return self._prefix + block_key(slice_id, index, blen, self.config.hash_prefix)

    def slice_keys(self, slice_id: int, size: int) -> list[str]:
        bs = self.block_size
        return [self.key(slice_id, i, block_len(size, bs, i)) for i in range(block_count(size, bs))]

    # -- plumbing --------------------------------------------------------------------------------------

    async def cpu(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on the CPU pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._cpu, functools.partial(fn, *args))

    async def _retrying(self, op: str, key: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        policy = self._retry
        attempt = 0
        while True:
            attempt += 1
            try:
                return await attempt_once()
            except ObjectNotFound:
                raise BlockMissing(key) from None
            except _RETRYABLE as exc:
                if policy.gives_up_after(attempt) or (isinstance(exc, CorruptBlock) and attempt >= CORRUPT_ATTEMPTS):
                    log.error("block_io_failed", op=op, key=key, attempts=attempt, error=str(exc))
                    raise FSError(errno.EIO, f"{op} of object '{key}' failed: {exc}") from exc
                log.warning("block_io_retry", op=op, key=key, attempt=attempt, error=str(exc))
                await asyncio.sleep(policy.delay(attempt, random.random()))

    # -- operations ------------------------------------------------------------------------------------

    def _encode(self, data: bytes | memoryview) -> tuple[bytes | memoryview, int | None]:
        """The stored form of a block (compressed, then sealed on an encrypted volume) and its CRC."""
        crc = block_crc(data) if self.checksum else None
        if self._sealer is not None:
            # The compressed form is only read by the encryption: a per-thread scratch buffer will do.
            return memoryview(self._sealer.seal(self.codec.compress_scratch(data))), crc
        return (data if self.ranged else memoryview(self.codec.compress(data))), crc

    async def put(self, slice_id: int, index: int, data: bytes | memoryview) -> int | None:
        """Store block `index` of slice `slice_id` (its whole uncompressed content is `data`); returns the
        block's CRC-32 when checksums are on, else None.

        Raises FSError(EIO) when every attempt failed; a failed attempt may still have stored the object.
        """
        key = self.key(slice_id, index, len(data))
        if self.ranged and not self.checksum:
            payload, crc = data, None
        else:
            payload, crc = await self.cpu(self._encode, data)

        async def once() -> None:
            with sealed_by_caller():
                await self._objects.put(key, payload)

        await self._retrying("put", key, once)
        return crc

    def _decode(self, key: str, raw: bytes, blen: int, crc: int | None = None) -> bytes:
        try:
            if self._sealer is None:
                opened: bytes | memoryview = raw
            elif self.codec.name == "none":
                opened = self._sealer.open(raw)  # the plaintext is the block: its own bytes
            else:  # only read by the decompression: a per-thread scratch buffer will do
                opened = self._sealer.open_scratch(raw)
            data = self.codec.decompress(opened, blen)
        except CorruptBlock as exc:
            raise CorruptBlock(f"object '{key}' ({len(raw)} bytes stored): {exc}") from None
        if crc is not None:
            got = block_crc(data)
            if got != crc:
                log.warning("block_checksum_mismatch", key=key, expected=f"{crc:08x}", got=f"{got:08x}")
                raise CorruptBlock(f"object '{key}': crc32 {got:08x} does not match the recorded {crc:08x}")
        return data

    def _check_view(self, key: str, view: memoryview, blen: int, crc: int | None) -> bytes:
        """`view` (a stored-as-is block) if it is exactly `blen` bytes and matches `crc` (when given)."""
        if len(view) != blen:
            raise CorruptBlock(f"object '{key}' ({len(view)} bytes stored): expected {blen} bytes")
        if crc is not None:
            got = block_crc(view)
            if got != crc:
                log.warning("block_checksum_mismatch", key=key, expected=f"{crc:08x}", got=f"{got:08x}")
                raise CorruptBlock(f"object '{key}': crc32 {got:08x} does not match the recorded {crc:08x}")
        return view  # type: ignore[return-value]  # bytes-like and immutable: read-only, never recycled while held

    async def get(self, slice_id: int, index: int, blen: int, crc: int | None = None) -> bytes:
        """The whole uncompressed block (exactly `blen` bytes), checked against `crc` if given: new bytes, or
        a read-only memoryview of a recycled buffer from a store with `get_pooled` (ADR 0070; the buffer is
        reused only once no view of it is left, so the bytes never change while held).

        Raises BlockMissing when the object does not exist, FSError(EIO) when it stays unreadable or corrupt
        (including a checksum mismatch).
        """
        key = self.key(slice_id, index, blen)

        async def once() -> bytes:
            # An uncompressed, unsealed block is stored as is: asking for a range of its length lets a store
            # serve a small one without a thread hop (the file store's RWF_NOWAIT path). One byte more, so
            # that an object longer than its block still fails the size check.
            with sealed_by_caller():
                if self._get_pooled is not None:
                    raw = await self._get_pooled(key, blen + 1)
                else:
                    raw = await (self._objects.get(key, 0, blen + 1) if self.ranged else self._objects.get(key))
            if isinstance(raw, memoryview):  # a pooled buffer: checked in place, never copied
                if crc is None:
                    return self._check_view(key, raw, blen, None)
                return await self.cpu(self._check_view, key, raw, blen, crc)
            if self.ranged and crc is None:
                return self._decode(key, raw, blen)
            return await self.cpu(self._decode, key, raw, blen, crc)

        return await self._retrying("get", key, once)

    async def get_range(self, slice_id: int, index: int, blen: int, off: int, n: int) -> bytes:
        """Bytes [off, off+n) of an uncompressed block (`ranged` must be true); exactly n bytes or an error."""
        if not self.ranged:
            raise ValueError("ranged reads need uncompressed blocks")
        if off < 0 or n < 0 or off + n > blen:
            raise ValueError(f"range [{off}, {off + n}) outside a block of {blen} bytes")
        key = self.key(slice_id, index, blen)

        async def once() -> bytes:
            data = await self._objects.get(key, off, n)
            if len(data) != n:
                raise CorruptBlock(f"object '{key}': ranged read of {n} bytes at {off} returned {len(data)}")
            return data

        return await self._retrying("get", key, once)

    async def delete(self, slice_id: int, index: int, blen: int) -> None:
        key = self.key(slice_id, index, blen)

        async def once() -> None:
            async with self._deletes:
                await self._objects.delete(key)

        await self._retrying("delete", key, once)

    async def delete_slice(self, slice_id: int, size: int) -> None:
        """Delete every block of slice `slice_id` of `size` bytes (missing ones are fine).

        Raises FSError(EIO) if some block could not be deleted (the others are gone).
        """
        bs = self.block_size
        results = await asyncio.gather(
            *(self.delete(slice_id, i, block_len(size, bs, i)) for i in range(block_count(size, bs))),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def close(self) -> None:
        await asyncio.to_thread(self._cpu.shutdown, True)

"""Block compression codecs, byte-compatible with JuiceFS (`pkg/compress`).

Every block is compressed on its own, before encryption:

* ``none``: the block as is.
* ``lz4``: a **raw LZ4 block** — no frame, no magic, no size header. The decoder must be told the
  uncompressed size, which the block key carries (``<id>_<index>_<blockLen>``). Compressed with
  `cramjam` (the reference C liblz4 at acceleration 1, the same bytes as python-lz4's ``lz4.block``)
  outside the GIL, into cramjam's own buffer (`compress`) or a per-thread scratch buffer
  (`compress_scratch`): python-lz4 compresses into a scratch allocation and then copies the result into
  a new ``bytes`` while holding the GIL, a 4 MiB copy per block that stalled the mount's event loop.
  Decompressed with python-lz4 (one allocation: the ``bytes`` returned).
* ``zstd``: one standard zstd frame (magic ``28 b5 2f fd``) at level 1.

`Codec.decompress` always checks the result against the expected size; any decoder error or size
mismatch raises `CorruptBlock`. `Codec.compress_scratch` gives the stored form in a buffer the calling
thread reuses, for a caller that consumes it at once (the seal of an encrypted volume encrypts it into
the object's own buffer). Codecs are stateless from the caller's view and safe to use from several
threads at once (zstd contexts and lz4 scratch buffers are kept per thread).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

# The codecs' libraries are imported by the codec's constructor, which `get_codec` calls on first use: a
# volume without compression never loads them (ADR 0063).
cramjam: Any = None
lz4: Any = None
zstandard: Any = None

ZSTD_LEVEL = 1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class CorruptBlock(ValueError):
    """A stored block does not decompress to the expected bytes."""


class UnknownCodec(ValueError):
    """The compression name is not one of ``none``, ``lz4``, ``zstd``."""


Buffer = bytes | bytearray | memoryview


class Codec(Protocol):
    name: str

    def compress(self, data: Buffer) -> Buffer:
        """The stored form of the block `data`, in a buffer the caller owns."""
        ...

    def compress_scratch(self, data: Buffer) -> Buffer:
        """The stored form of `data`, possibly in a buffer the calling thread reuses: valid only until the
        same thread's next `compress_scratch` (consume it at once, never keep it)."""
        ...

    def decompress(self, data: Buffer, uncompressed_size: int) -> bytes:
        """The block stored as `data`, which must be exactly `uncompressed_size` bytes; else CorruptBlock."""
        ...


def _check_size(name: str, out: bytes, expected: int) -> bytes:
    if len(out) != expected:
        raise CorruptBlock(f"{name} block decompressed to {len(out)} bytes, expected {expected}")
    return out


class NoCompression:
    name = "none"

    def compress(self, data: Buffer) -> bytes:
        return data if isinstance(data, bytes) else bytes(data)

    def compress_scratch(self, data: Buffer) -> Buffer:
        return data

    def decompress(self, data: Buffer, uncompressed_size: int) -> bytes:
        out = data if isinstance(data, bytes) else bytes(data)
        return _check_size(self.name, out, uncompressed_size)


class LZ4:
    name = "lz4"

    def __init__(self) -> None:
        global cramjam, lz4
        import cramjam
        import lz4.block  # type: ignore[import-untyped]

        self._local = threading.local()

    def compress(self, data: Buffer) -> Buffer:
        if not len(data):
            return lz4.block.compress(data, store_size=False)  # type: ignore[no-any-return]
        # cramjam's own buffer: allocated outside the GIL too (a bytearray would be zero-filled holding it).
        return memoryview(cramjam.lz4.compress_block(data, store_size=False))

    def compress_scratch(self, data: Buffer) -> Buffer:
        if not len(data):
            return self.compress(data)
        bound = cramjam.lz4.compress_block_bound(data)
        scratch: bytearray | None = getattr(self._local, "scratch", None)
        if scratch is None or len(scratch) < bound:
            scratch = self._local.scratch = bytearray(bound)
        return memoryview(scratch)[: cramjam.lz4.compress_block_into(data, scratch, store_size=False)]

    def decompress(self, data: Buffer, uncompressed_size: int) -> bytes:
        if uncompressed_size < 0:
            raise CorruptBlock(f"lz4 block: negative expected size {uncompressed_size}")
        try:
            out = lz4.block.decompress(data, uncompressed_size=uncompressed_size)
        except Exception as exc:  # LZ4BlockError is not importable under a stable name
            raise CorruptBlock(
                f"lz4 block of {len(data)} bytes does not decode to {uncompressed_size} bytes: {exc}"
            ) from None
        return _check_size(self.name, out, uncompressed_size)


class Zstd:
    name = "zstd"

    def __init__(self, level: int = ZSTD_LEVEL) -> None:
        global zstandard
        import zstandard

        self.level = level
        # ZstdCompressor/ZstdDecompressor objects must not be shared between threads.
        self._local = threading.local()

    def _cctx(self) -> Any:
        cctx: Any = getattr(self._local, "cctx", None)
        if cctx is None:
            cctx = self._local.cctx = zstandard.ZstdCompressor(level=self.level)
        return cctx

    def _dctx(self) -> Any:
        dctx: Any = getattr(self._local, "dctx", None)
        if dctx is None:
            dctx = self._local.dctx = zstandard.ZstdDecompressor()
        return dctx

    def compress(self, data: Buffer) -> bytes:
        out: bytes = self._cctx().compress(data)
        return out

    def compress_scratch(self, data: Buffer) -> Buffer:
        return self.compress(data)

    def decompress(self, data: Buffer, uncompressed_size: int) -> bytes:
        try:
            declared = zstandard.frame_content_size(data)
            # A corrupt header could declare a huge size: refuse it before anything is allocated.
            if declared not in (-1, uncompressed_size):
                raise CorruptBlock(f"zstd frame declares {declared} bytes, expected {uncompressed_size}")
            out = self._dctx().decompress(data, max_output_size=uncompressed_size)
        except zstandard.ZstdError as exc:
            raise CorruptBlock(f"zstd block of {len(data)} bytes does not decode: {exc}") from None
        return _check_size(self.name, out, uncompressed_size)


_FACTORIES: dict[str, type[Codec]] = {c.name: c for c in (NoCompression, LZ4, Zstd)}  # type: ignore[misc]
_CODECS: dict[str, Codec] = {}
"""The codecs made so far: one per name, built on first use (its library imported then)."""


def get_codec(name: str) -> Codec:
    """The codec called `name` (case-insensitive; ``""`` means ``none``); raises UnknownCodec."""
    key = (name or "none").lower()
    codec = _CODECS.get(key)
    if codec is None:
        factory = _FACTORIES.get(key)
        if factory is None:
            raise UnknownCodec(f"unknown compression '{name}' (known: {', '.join(sorted(_FACTORIES))})")
        codec = _CODECS.setdefault(key, factory())
    return codec

"""Chunk and block arithmetic, and the object keys of data blocks (JuiceFS-compatible).

A file is cut into fixed 64 MiB chunks (chunk index = offset >> 26). Each write inside a chunk becomes
an immutable slice with a globally unique id; a slice of `size` bytes is stored as objects of
`block_size` bytes (the last one shorter), named::

    chunks/<id // 1_000_000>/<id // 1000>/<id>_<index>_<blen>          (default)
    chunks/<id % 256 as 2 uppercase hex>/<id // 1_000_000>/<id>_<index>_<blen>   (hash prefix)

`blen` is the uncompressed, unencrypted block length. Keys are relative to the volume's `<name>/` prefix.
"""

from __future__ import annotations

CHUNK_BITS = 26
CHUNK_SIZE = 1 << CHUNK_BITS  # 64 MiB
DEFAULT_BLOCK_SIZE = 4 << 20  # 4 MiB; the setting stores it in KiB (4096)

BLOCK_PREFIX = "chunks/"


def chunk_index(offset: int) -> int:
    """Index of the chunk that holds byte `offset` of a file."""
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    return offset >> CHUNK_BITS


def _pieces(off: int, length: int, unit: int) -> list[tuple[int, int, int]]:
    """[off, off+length) cut at multiples of `unit`: (unit index, offset inside it, length) each."""
    out: list[tuple[int, int, int]] = []
    end = off + length
    while off < end:
        index, inner = divmod(off, unit)
        n = min(end - off, unit - inner)
        out.append((index, inner, n))
        off += n
    return out


def split_range(offset: int, length: int) -> list[tuple[int, int, int]]:
    """The chunk pieces of the byte range [offset, offset+length), in file order.

    Each item is (chunk index, position inside that chunk, length); an empty range gives [].
    """
    if offset < 0 or length < 0:
        raise ValueError(f"invalid range offset={offset} length={length}")
    return _pieces(offset, length, CHUNK_SIZE)


def block_count(slice_size: int, block_size: int) -> int:
    """Number of blocks that store a slice of `slice_size` bytes (0 for an empty slice)."""
    _check_block_size(block_size)
    if slice_size < 0:
        raise ValueError(f"negative slice size {slice_size}")
    return -(-slice_size // block_size)


def block_len(slice_size: int, block_size: int, index: int) -> int:
    """Length of block `index` of a slice: `block_size`, except the last block which holds the rest.

    Raises ValueError when the slice has no block `index`.
    """
    if not 0 <= index < block_count(slice_size, block_size):
        raise ValueError(f"slice of {slice_size} bytes has no block {index}")
    return min(block_size, slice_size - index * block_size)


def valid_block(slice_size: int, block_size: int, index: int, blen: int) -> bool:
    """Whether an object named (index, blen) belongs to a slice of `slice_size` bytes.

    This is the gc consistency rule: full blocks must fit inside the slice and the last block must end
    exactly at `slice_size`. Objects failing it are leaked.
    """
    if not 0 <= index < block_count(slice_size, block_size):
        return False
    return blen == block_len(slice_size, block_size, index)


def block_key(slice_id: int, index: int, blen: int, hash_prefix: bool = False) -> str:
    """Object key of block `index` (of length `blen`) of slice `slice_id`."""
    if slice_id <= 0 or index < 0 or blen < 0:
        raise ValueError(f"invalid block ({slice_id}, {index}, {blen})")
    if hash_prefix:
        return f"{BLOCK_PREFIX}{slice_id % 256:02X}/{slice_id // 1_000_000}/{slice_id}_{index}_{blen}"
    return f"{BLOCK_PREFIX}{slice_id // 1_000_000}/{slice_id // 1000}/{slice_id}_{index}_{blen}"


def parse_block_key(key: str) -> tuple[int, int, int] | None:
    """(slice id, block index, block length) of a key made by `block_key` in either layout.

    Returns None for anything else, including keys whose directories don't match the slice id and
    non-canonical numbers (leading zeros, signs), so that such objects count as foreign/leaked.
    """
    if not key.startswith(BLOCK_PREFIX):
        return None
    parts = key[len(BLOCK_PREFIX) :].split("/")
    if len(parts) != 3:
        return None
    fields = parts[2].split("_")
    if len(fields) != 3:
        return None
    nums = [_canonical_int(f) for f in fields]
    if nums[0] is None or nums[1] is None or nums[2] is None:
        return None
    slice_id, index, blen = nums[0], nums[1], nums[2]
    if slice_id == 0:
        return None
    d1, d2 = parts[0], parts[1]
    plain = d1 == str(slice_id // 1_000_000) and d2 == str(slice_id // 1000)
    hashed = d1 == f"{slice_id % 256:02X}" and d2 == str(slice_id // 1_000_000)
    if not (plain or hashed):
        return None
    return slice_id, index, blen


def _canonical_int(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        return None
    return int(text)


def slice_block_keys(slice_id: int, size: int, block_size: int, hash_prefix: bool = False) -> list[str]:
    """Keys of every block of slice `slice_id` of `size` bytes, in block order."""
    return [
        block_key(slice_id, i, block_len(size, block_size, i), hash_prefix)
        for i in range(block_count(size, block_size))
    ]


def blocks_for_range(off: int, length: int, block_size: int) -> list[tuple[int, int, int]]:
    """The blocks touched by bytes [off, off+length) of a slice, in order.

    Each item is (block index, offset inside the block, length); an empty range gives [].
    """
    _check_block_size(block_size)
    if off < 0 or length < 0:
        raise ValueError(f"invalid range off={off} length={length}")
    return _pieces(off, length, block_size)


def _check_block_size(block_size: int) -> None:
    if block_size <= 0:
        raise ValueError(f"invalid block size {block_size}")

"""`resp.pack_mset` / `resp.pack_zadd` (the bulk loader's commands, packed by hand): byte for byte what
`resp.pack` (hiredis) makes of the same command, whatever the keys, values, prefix and score hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jfs.adapters.kv.resp import pack, pack_mset, pack_zadd

# bytes that could confuse a hand-made RESP packer or a %-format: separators, '%', '$', '*', NUL, long runs
_BYTES = st.binary(max_size=40) | st.sampled_from([b"", b"%", b"%b", b"%d%%", b"\r\n", b"$3\r\n", b"*", b"\x00"])


@given(prefix=_BYTES, pairs=st.lists(st.tuples(_BYTES, _BYTES | st.binary(min_size=100, max_size=300)),
                                     min_size=1, max_size=30))
def test_pack_mset_is_packs_mset(prefix: bytes, pairs: list[tuple[bytes, bytes]]) -> None:
    assert pack_mset(prefix, pairs) == pack((b"MSET", *[x for k, v in pairs for x in (prefix + k, v)]))


@given(key=_BYTES, score=st.sampled_from([b"0", b"1.5", b"-inf", b"%d"]), members=st.lists(_BYTES, min_size=1,
                                                                                         max_size=30))
def test_pack_zadd_is_packs_zadd(key: bytes, score: bytes, members: list[bytes]) -> None:
    assert pack_zadd(key, score, members) == pack((b"ZADD", key, *[x for m in members for x in (score, m)]))

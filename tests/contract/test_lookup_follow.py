"""The kernel's LOOKUP read outside a transaction (`FollowingKV.read_follow`, ADR 0094): on every engine, a
LOOKUP with permissions left to the kernel sees what another client did just before (a chmod, a write's
length, an unlink, a name replaced by a rename, a new file) and is counted as a metadata read (a negative one is no read error on Redis any more: the ENOENT is
raised after the read, not inside a transaction's body); on Redis it is
one FOLLOW script call and nothing else, answers exactly what a read-only transaction's `get_follow` answers
(present, absent, dangling, too short a pointer) and reloads a flushed script cache."""

from __future__ import annotations

import errno

import pytest

from jfs.app.meta import Meta
from jfs.app.meta.context import Ctx
from jfs.app.meta.setattr import SetAttr
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, FileType
from jfs.domain.errors import FSError
from jfs.ports.kv import KV, FollowingKV, Pointer, Tx

KERNEL = Ctx(uid=0, gid=0, check=False)
"""The kernel's LOOKUP: permissions already checked (default_permissions)."""
REDIS = pytest.mark.jfs_engines("redis")
POINTER = Pointer(0, 0, 2, prefix=b"t/")


async def _enoent(m: Meta, parent: int, name: bytes) -> None:
    with pytest.raises(FSError) as exc:
        await m.lookup(parent, name, KERNEL, dir_known=True)
    assert exc.value.errno == errno.ENOENT


async def test_a_kernel_lookup_sees_another_clients_changes_at_once(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    d, _ = await b.mkdir(ROOT_INODE, b"d", 0o755)
    await _enoent(a, d, b"f")
    ino, _ = await b.mknod(d, b"f", FileType.REGULAR, 0o644)
    got, attr = await a.lookup(d, b"f", KERNEL, dir_known=True)
    assert (got, attr.mode & 0o7777, attr.length) == (ino, 0o644, 0)

    await b.setattr(ino, SetAttr(mode=0o600, size=4096))
    _, attr = await a.lookup(d, b"f", KERNEL, dir_known=True)
    assert (attr.mode & 0o7777, attr.length) == (0o600, 4096)

    other, _ = await b.mknod(d, b"g", FileType.REGULAR, 0o644)
    await b.rename(d, b"g", d, b"f")  # replaces f
    got, _ = await a.lookup(d, b"f", KERNEL, dir_known=True)
    assert got == other
    await _enoent(a, d, b"g")

    await b.unlink(d, b"f")
    await _enoent(a, d, b"f")
    # A directory, and the same answers as a LOOKUP that checks permissions (the transaction's path).
    sub, _ = await b.mkdir(d, b"sub", 0o700)
    got, attr = await a.lookup(d, b"sub", KERNEL, dir_known=True)
    assert (got, attr.typ) == (sub, FileType.DIRECTORY)
    assert (await a.lookup(d, b"sub"))[0] == sub


async def test_trash_and_long_names_keep_their_answers(two_clients: tuple[Meta, Meta]) -> None:
    a, _ = two_clients
    got, attr = await a.lookup(ROOT_INODE, b".trash", KERNEL, dir_known=True)
    assert (got, attr.typ) == (TRASH_INODE, FileType.DIRECTORY)
    with pytest.raises(FSError) as exc:
        await a.lookup(ROOT_INODE, b"x" * 256, KERNEL, dir_known=True)
    assert exc.value.errno == errno.ENAMETOOLONG


async def test_a_kernel_lookup_is_counted_as_one_metadata_read(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    await b.mknod(ROOT_INODE, b"f", FileType.REGULAR, 0o644)
    reads = a.kv.reads  # type: ignore[attr-defined]  # TimedKV's meter (.stats)
    before = reads.count
    await a.lookup(ROOT_INODE, b"f", KERNEL, dir_known=True)
    await _enoent(a, ROOT_INODE, b"missing")
    assert reads.count - before == 2


async def _redis(kv: KV) -> KV:
    inner = getattr(kv, "inner", kv)
    if not hasattr(inner, "_sha") or "follow" not in inner._sha:
        pytest.skip("not the Redis adapter")
    return inner  # type: ignore[no-any-return]


@REDIS
async def test_read_follow_answers_what_a_transaction_get_follow_answers(kv: KV) -> None:
    inner = await _redis(kv)
    assert isinstance(inner, FollowingKV)

    async def put(tx: Tx) -> None:
        tx.put(b"p", b"ab")  # names t/ab
        tx.put(b"t/ab", b"target")
        tx.put(b"q", b"zz")  # names t/zz, absent
        tx.put(b"s", b"a")  # shorter than the pointer

    await kv.txn(put)
    for keys in ([b"p"], [b"q"], [b"s"], [b"none"], [b"p", b"q"]):
        async def follow(tx: Tx, keys: list[bytes] = keys) -> list[bytes | None]:
            return await tx.get_follow(keys, POINTER)

        want = await kv.read(follow)
        assert await inner.read_follow(keys, POINTER) == want  # type: ignore[attr-defined]
    assert await inner.read_follow([b"p"], POINTER) == [b"ab", b"target"]  # type: ignore[attr-defined]
    assert await inner.read_follow([b"none"], POINTER) == [None, None]  # type: ignore[attr-defined]
    assert await inner.read_follow([b"s"], Pointer(0, 0, 2, prefix=b"t/")) == [b"a", None]  # type: ignore[attr-defined]
    reversed_pointer = Pointer(0, 0, 2, prefix=b"t/", reverse=True)

    async def put_reversed(tx: Tx) -> None:
        tx.put(b"r", b"ba")
        tx.put(b"t/ab", b"again")

    await kv.txn(put_reversed)
    assert await inner.read_follow([b"r"], reversed_pointer) == [b"ba", b"again"]  # type: ignore[attr-defined]

    await inner._call(b"SCRIPT", b"FLUSH")  # type: ignore[attr-defined]  # as after a server restart
    assert await inner.read_follow([b"p"], POINTER) == [b"ab", b"again"]  # type: ignore[attr-defined]


@REDIS
async def test_a_kernel_lookup_on_redis_is_one_follow_call_and_no_transaction(
    two_clients: tuple[Meta, Meta], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_clients
    inner = await _redis(a.kv)
    ino, _ = await b.mknod(ROOT_INODE, b"f", FileType.REGULAR, 0o644)
    client = inner._client  # type: ignore[attr-defined]
    sent: list[bytes] = []
    execute = client.execute_packed

    def spy(command: bytes):  # type: ignore[no-untyped-def]
        sent.append(command)
        return execute(command)

    monkeypatch.setattr(client, "execute_packed", spy)

    def no_transaction(*_: object, **__: object) -> None:
        raise AssertionError("a kernel LOOKUP ran a transaction")

    monkeypatch.setattr(inner, "_run", no_transaction)
    assert (await a.lookup(ROOT_INODE, b"f", KERNEL, dir_known=True))[0] == ino
    await _enoent(a, ROOT_INODE, b"missing")
    assert len(sent) == 2
    assert all(b"EVALSHA" in c and inner._sha["follow"] in c for c in sent)  # type: ignore[attr-defined]

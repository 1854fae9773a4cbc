"""The metadata-engine contract: the behaviour of every file-system operation, run unchanged on each
KV adapter (memory, SQLite, Redis, TiKV, or yours).

Collected by ``tests/contract/test_meta_contract.py``; an adapter author runs it against an engine with
``pytest --pyargs jfs.testing.meta_contract --jfs-kv-url 'myengine://…'``.
Every test receives a `meta` fixture: a freshly formatted volume (trash off unless the test is about
trash) with a registered session, on the engine given by the `kv` fixture of jfs.testing.plugin
(`jfs.testing.meta_contract_support`). This module holds the namespace and data-map operations; the trash,
sessions, locks and concurrency are in `jfs.testing.meta_contract_lifecycle`, imported here so that one
``--pyargs`` run collects the whole contract.
"""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from jfs.app.meta import Ctx, Meta
from jfs.app.meta.chunks import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE
from jfs.app.meta.engine import VolumeExists, format_meta
from jfs.app.meta.rename import RENAME_EXCHANGE, RENAME_NOREPLACE
from jfs.app.meta.setattr import NOW, SetAttr
from jfs.app.meta.xattrs import XATTR_CREATE, XATTR_REPLACE
from jfs.domain import keys
from jfs.domain.attrs import ROOT_INODE, Attr, FileType
from jfs.domain.chunks import CHUNK_SIZE
from jfs.domain.errors import ENOATTR
from jfs.domain.records import NewSlice, SliceRecord, decode_i64
from jfs.domain.settings import Settings
from jfs.domain.slices import read_pieces
from jfs.ports.kv import KV, Tx
from jfs.testing.meta_contract_lifecycle import *  # noqa: F403  (collected with this module)
from jfs.testing.meta_contract_support import *  # noqa: F403  (the fixtures, by name)
from jfs.testing.meta_contract_support import ALICE, BOB, counter_value, errno_of, fresh_meta, names_in

# ------------------------------------------------------------------------------------------- format


async def test_format_writes_root_and_refuses_to_overwrite(kv: KV) -> None:
    await format_meta(kv, Settings(name="vol-one", trash_days=0))
    with pytest.raises(VolumeExists):
        await format_meta(kv, Settings(name="vol-two"))
    m = await Meta.load(kv)
    root = await m.getattr(ROOT_INODE)
    assert root.typ is FileType.DIRECTORY and root.nlink == 2 and root.mode == 0o777
    assert m.settings.name == "vol-one"
    with pytest.raises(VolumeExists):
        await format_meta(kv, Settings(name="vol-one", block_size=1024), force=True)


# ------------------------------------------------------------------------------------------- create/lookup


async def test_create_lookup_getattr(meta: Meta) -> None:
    ino, attr = await meta.create(ROOT_INODE, b"file", 0o644)
    assert attr.typ is FileType.REGULAR and attr.mode == 0o644 and attr.nlink == 1 and attr.length == 0
    found, fattr = await meta.lookup(ROOT_INODE, b"file")
    assert found == ino and fattr == attr
    assert await meta.getattr(ino) == attr
    with pytest.raises(FileExistsError):
        await meta.create(ROOT_INODE, b"file", 0o644)
    with pytest.raises(FileNotFoundError):
        await meta.lookup(ROOT_INODE, b"missing")
    with pytest.raises(NotADirectoryError):
        await meta.lookup(ino, b"x")
    with pytest.raises(OSError) as e:
        await meta.create(ROOT_INODE, b"x" * 256, 0o644)
    assert errno_of(e) == errno.ENAMETOOLONG
    for bad in (b"", b"a/b", b"a\0b"):
        with pytest.raises(OSError) as e:
            await meta.create(ROOT_INODE, bad, 0o644)
        assert errno_of(e) == errno.EINVAL
    ino255, _ = await meta.create(ROOT_INODE, b"y" * 255, 0o644)
    assert (await meta.lookup(ROOT_INODE, b"y" * 255))[0] == ino255


async def test_dot_and_dotdot(meta: Meta) -> None:
    d, _ = await meta.mkdir(ROOT_INODE, b"d", 0o755)
    assert (await meta.lookup(d, b"."))[0] == d
    assert (await meta.lookup(d, b".."))[0] == ROOT_INODE
    assert (await meta.lookup(ROOT_INODE, b".."))[0] == ROOT_INODE


async def test_umask_and_setgid_inheritance(meta: Meta) -> None:
    ctx = Ctx(uid=1000, gid=1000, umask=0o022)
    await meta.setattr(ROOT_INODE, SetAttr(mode=0o777))
    d, dattr = await meta.mkdir(ROOT_INODE, b"sg", 0o777, ctx)
    assert dattr.mode == 0o755
    await meta.setattr(d, SetAttr(mode=0o2777, gid=50))
    sub, sattr = await meta.mkdir(d, b"sub", 0o755, ctx)
    assert sattr.gid == 50 and sattr.mode & 0o2000
    f, fattr = await meta.create(d, b"f", 0o666, ctx)
    assert fattr.gid == 50 and fattr.mode == 0o644


async def test_mknod_special_files(meta: Meta) -> None:
    for name, typ in ((b"fifo", FileType.FIFO), (b"sock", FileType.SOCKET)):
        ino, attr = await meta.mknod(ROOT_INODE, name, typ, 0o600)
        assert attr.typ is typ
    ino, attr = await meta.mknod(ROOT_INODE, b"chr", FileType.CHARDEV, 0o600, rdev=os.makedev(1, 3))
    assert attr.rdev == os.makedev(1, 3)
    ino, attr = await meta.mknod(ROOT_INODE, b"blk", FileType.BLOCKDEV, 0o600, rdev=os.makedev(8, 1))
    assert (await meta.getattr(ino)).rdev == os.makedev(8, 1)
    assert sorted(await names_in(meta, ROOT_INODE)) == [b"blk", b"chr", b"fifo", b"sock"]


async def test_reserved_root_names(meta: Meta) -> None:
    with pytest.raises(PermissionError):
        await meta.mkdir(ROOT_INODE, b".trash", 0o755)
    d, _ = await meta.mkdir(ROOT_INODE, b"d", 0o755)
    await meta.mkdir(d, b".trash", 0o755)  # only reserved in the root


async def test_mkdir_updates_parent_nlink_and_times(meta: Meta) -> None:
    before = await meta.getattr(ROOT_INODE)
    await asyncio.sleep(0.12)
    d, attr = await meta.mkdir(ROOT_INODE, b"d", 0o755)
    assert attr.nlink == 2 and attr.typ is FileType.DIRECTORY
    after = await meta.getattr(ROOT_INODE)
    assert after.nlink == before.nlink + 1
    assert after.mtime_ns > before.mtime_ns and after.ctime_ns > before.ctime_ns
    await meta.rmdir(ROOT_INODE, b"d")
    assert (await meta.getattr(ROOT_INODE)).nlink == before.nlink


# ------------------------------------------------------------------------------------------- symlinks, links


async def test_symlink_and_readlink(meta: Meta) -> None:
    ino, attr = await meta.symlink(ROOT_INODE, b"ln", b"target/with/\xffbytes")
    assert attr.typ is FileType.SYMLINK and attr.length == len(b"target/with/\xffbytes") and attr.mode == 0o777
    assert await meta.readlink(ino) == b"target/with/\xffbytes"
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    with pytest.raises(OSError) as e:
        await meta.readlink(f)
    assert errno_of(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        await meta.symlink(ROOT_INODE, b"long", b"x" * 4097)
    assert errno_of(e) == errno.ENAMETOOLONG
    await meta.unlink(ROOT_INODE, b"ln")
    with pytest.raises(FileNotFoundError):
        await meta.readlink(ino)


async def test_hard_links_nlink_and_parents(meta: Meta) -> None:
    d1, _ = await meta.mkdir(ROOT_INODE, b"d1", 0o755)
    d2, _ = await meta.mkdir(ROOT_INODE, b"d2", 0o755)
    f, _ = await meta.create(d1, b"f", 0o644)
    attr = await meta.link(f, d2, b"g")
    assert attr.nlink == 2 and attr.parent == 0
    await meta.link(f, d2, b"h")
    assert (await meta.getattr(f)).nlink == 3
    await meta.unlink(d1, b"f")
    assert (await meta.getattr(f)).nlink == 2
    with pytest.raises(FileExistsError):
        await meta.link(f, d2, b"g")
    with pytest.raises(PermissionError):
        await meta.link(d1, d2, b"dirlink")
    await meta.unlink(d2, b"g")
    await meta.unlink(d2, b"h")
    await meta.close_file(f)
    await meta.drain()
    with pytest.raises(FileNotFoundError):
        await meta.getattr(f)


# ------------------------------------------------------------------------------------------- unlink/rmdir


async def test_unlink_and_rmdir_errors(meta: Meta) -> None:
    d, _ = await meta.mkdir(ROOT_INODE, b"d", 0o755)
    await meta.create(d, b"f", 0o644)
    with pytest.raises(OSError) as e:
        await meta.rmdir(ROOT_INODE, b"d")
    assert errno_of(e) == errno.ENOTEMPTY
    with pytest.raises(IsADirectoryError):
        await meta.unlink(ROOT_INODE, b"d")
    with pytest.raises(NotADirectoryError):
        await meta.rmdir(d, b"f")
    with pytest.raises(FileNotFoundError):
        await meta.unlink(d, b"nope")
    with pytest.raises(OSError) as e:
        await meta.rmdir(d, b".")
    assert errno_of(e) == errno.EINVAL
    await meta.unlink(d, b"f")
    await meta.rmdir(ROOT_INODE, b"d")
    assert await names_in(meta, ROOT_INODE) == []
    with pytest.raises(FileNotFoundError):
        await meta.getattr(d)


async def test_unlinked_open_file_keeps_data_until_last_close(meta: Meta) -> None:
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    sid = await meta.next_slice_id()
    await meta.write_slice(f, 0, 0, sid, 10, 0, 10)
    await meta.unlink(ROOT_INODE, b"f")
    attr = await meta.getattr(f)
    assert attr.nlink == 0 and attr.length == 10
    assert [s["Sustained"] for s in await meta.list_sessions()] == [[f]]
    assert await meta.read_chunk(f, 0)
    await meta.close_file(f)
    await meta.drain()
    with pytest.raises(FileNotFoundError):
        await meta.getattr(f)
    with pytest.raises(FileNotFoundError):
        await meta.read_chunk(f, 0)  # a deleted inode never reads as a hole
    assert [s["Sustained"] for s in await meta.list_sessions()] == [[]]


async def test_unlink_racing_the_last_close_leaves_no_sustained_inode(meta: Meta) -> None:
    """The unlink's body saw the file open (on an engine that runs bodies on a worker thread, the last
    close may land on the loop meanwhile): the inode must still be deleted, not kept for a close that
    already happened (it leaked one inode of usage until the session ended)."""
    f, _ = await meta.create(ROOT_INODE, b"racy", 0o644)
    await meta.close_file(f)  # closed before the unlink commits...
    real = meta.is_open
    seen = iter([True])
    meta.is_open = lambda ino: next(seen, False) if ino == f else real(ino)  # type: ignore[method-assign]
    try:
        await meta.unlink(ROOT_INODE, b"racy")  # ...but its body saw it open
    finally:
        meta.is_open = real  # type: ignore[method-assign]
    await meta.drain()
    with pytest.raises(FileNotFoundError):
        await meta.getattr(f)
    assert [s["Sustained"] for s in await meta.list_sessions()] == [[]]


async def test_sticky_directory(meta: Meta) -> None:
    await meta.setattr(ROOT_INODE, SetAttr(mode=0o1777))
    f, _ = await meta.create(ROOT_INODE, b"alice", 0o666, ALICE)
    await meta.close_file(f)
    with pytest.raises(PermissionError):
        await meta.unlink(ROOT_INODE, b"alice", BOB)
    with pytest.raises(PermissionError):
        await meta.rename(ROOT_INODE, b"alice", ROOT_INODE, b"bob", ctx=BOB)
    await meta.unlink(ROOT_INODE, b"alice", ALICE)


# ------------------------------------------------------------------------------------------- rename


async def test_rename_within_and_across_dirs(meta: Meta) -> None:
    a, _ = await meta.mkdir(ROOT_INODE, b"a", 0o755)
    b, _ = await meta.mkdir(ROOT_INODE, b"b", 0o755)
    f, _ = await meta.create(a, b"f", 0o644)
    await meta.rename(a, b"f", a, b"g")
    assert await names_in(meta, a) == [b"g"]
    ino, attr = await meta.rename(a, b"g", b, b"h")
    assert ino == f and attr.parent == b
    assert await names_in(meta, a) == [] and await names_in(meta, b) == [b"h"]
    sub, _ = await meta.mkdir(a, b"sub", 0o755)
    na, nb = (await meta.getattr(a)).nlink, (await meta.getattr(b)).nlink
    await meta.rename(a, b"sub", b, b"sub2")
    assert (await meta.getattr(a)).nlink == na - 1 and (await meta.getattr(b)).nlink == nb + 1
    assert (await meta.getattr(sub)).parent == b
    assert (await meta.lookup(sub, b".."))[0] == b


async def test_rename_replace_rules(meta: Meta) -> None:
    f1, _ = await meta.create(ROOT_INODE, b"f1", 0o644)
    f2, _ = await meta.create(ROOT_INODE, b"f2", 0o644)
    await meta.close_file(f1)
    await meta.close_file(f2)
    d1, _ = await meta.mkdir(ROOT_INODE, b"d1", 0o755)
    d2, _ = await meta.mkdir(ROOT_INODE, b"d2", 0o755)
    await meta.create(d2, b"child", 0o644)
    with pytest.raises(IsADirectoryError):
        await meta.rename(ROOT_INODE, b"f1", ROOT_INODE, b"d1")
    with pytest.raises(NotADirectoryError):
        await meta.rename(ROOT_INODE, b"d1", ROOT_INODE, b"f1")
    with pytest.raises(OSError) as e:
        await meta.rename(ROOT_INODE, b"d1", ROOT_INODE, b"d2")
    assert errno_of(e) == errno.ENOTEMPTY
    with pytest.raises(FileExistsError):
        await meta.rename(ROOT_INODE, b"f1", ROOT_INODE, b"f2", RENAME_NOREPLACE)
    await meta.rename(ROOT_INODE, b"f1", ROOT_INODE, b"f2")
    assert (await meta.lookup(ROOT_INODE, b"f2"))[0] == f1
    await meta.drain()
    with pytest.raises(FileNotFoundError):
        await meta.getattr(f2)
    d3, _ = await meta.mkdir(ROOT_INODE, b"d3", 0o755)
    n = (await meta.getattr(ROOT_INODE)).nlink
    await meta.rename(ROOT_INODE, b"d1", ROOT_INODE, b"d3")  # over an empty dir
    assert (await meta.getattr(ROOT_INODE)).nlink == n - 1
    with pytest.raises(FileNotFoundError):
        await meta.getattr(d3)
    assert (await meta.lookup(ROOT_INODE, b"d3"))[0] == d1


async def test_rename_into_own_subtree_is_einval(meta: Meta) -> None:
    a, _ = await meta.mkdir(ROOT_INODE, b"a", 0o755)
    b, _ = await meta.mkdir(a, b"b", 0o755)
    c, _ = await meta.mkdir(b, b"c", 0o755)
    for target in (a, b, c):
        with pytest.raises(OSError) as e:
            await meta.rename(ROOT_INODE, b"a", target, b"x")
        assert errno_of(e) == errno.EINVAL


async def test_rename_exchange(meta: Meta) -> None:
    a, _ = await meta.mkdir(ROOT_INODE, b"a", 0o755)
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    sub, _ = await meta.mkdir(a, b"sub", 0o755)
    nroot, na = (await meta.getattr(ROOT_INODE)).nlink, (await meta.getattr(a)).nlink
    await meta.rename(ROOT_INODE, b"f", a, b"sub", RENAME_EXCHANGE)
    assert (await meta.lookup(ROOT_INODE, b"f"))[0] == sub
    assert (await meta.lookup(a, b"sub"))[0] == f
    assert (await meta.getattr(sub)).parent == ROOT_INODE and (await meta.getattr(f)).parent == a
    assert (await meta.getattr(ROOT_INODE)).nlink == nroot + 1 and (await meta.getattr(a)).nlink == na - 1
    with pytest.raises(FileNotFoundError):
        await meta.rename(ROOT_INODE, b"f", ROOT_INODE, b"missing", RENAME_EXCHANGE)


async def test_rename_hard_link_onto_itself_is_noop(meta: Meta) -> None:
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    await meta.link(f, ROOT_INODE, b"g")
    await meta.rename(ROOT_INODE, b"f", ROOT_INODE, b"g")
    assert sorted(await names_in(meta, ROOT_INODE)) == [b"f", b"g"]
    assert (await meta.getattr(f)).nlink == 2


async def test_rename_hard_linked_file_across_dirs_keeps_nlink(meta: Meta) -> None:
    a, _ = await meta.mkdir(ROOT_INODE, b"a", 0o755)
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    await meta.link(f, a, b"g")
    await meta.rename(a, b"g", ROOT_INODE, b"h")
    assert (await meta.getattr(f)).nlink == 2
    await meta.unlink(ROOT_INODE, b"f")
    await meta.unlink(ROOT_INODE, b"h")
    await meta.close_file(f)
    with pytest.raises(FileNotFoundError):
        await meta.getattr(f)


# ------------------------------------------------------------------------------------------- setattr


async def test_chmod_chown_permissions(meta: Meta) -> None:
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644, ALICE)
    attr = await meta.setattr(f, SetAttr(mode=0o600), ALICE)
    assert attr.mode == 0o600
    with pytest.raises(PermissionError):
        await meta.setattr(f, SetAttr(mode=0o777), BOB)
    with pytest.raises(PermissionError):
        await meta.setattr(f, SetAttr(uid=1001), ALICE)
    attr = await meta.setattr(f, SetAttr(uid=1001, gid=1001))
    assert (attr.uid, attr.gid) == (1001, 1001)
    await meta.setattr(f, SetAttr(mode=0o6755))
    attr = await meta.setattr(f, SetAttr(uid=1000))
    assert not attr.mode & 0o6000


async def test_utimens(meta: Meta) -> None:
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644, ALICE)
    attr = await meta.setattr(f, SetAttr(atime=1_000_000_000_123, mtime=2_000_000_000_456))
    assert attr.atime_ns == 1_000_000_000_123 and attr.mtime_ns == 2_000_000_000_456
    before = attr.ctime_ns
    attr = await meta.setattr(f, SetAttr(mtime=NOW), ALICE)
    assert attr.mtime_ns >= before and attr.atime_ns == 1_000_000_000_123
    with pytest.raises(PermissionError):
        await meta.setattr(f, SetAttr(mtime=5), BOB)


async def test_truncate_and_read_chunks(meta: Meta) -> None:
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644, ALICE)
    s1 = await meta.next_slice_id()
    await meta.write_slice(f, 0, 0, s1, 1000, 0, 1000)
    attr = await meta.truncate(f, 100)
    assert attr.length == 100
    pieces = read_pieces(await meta.read_chunk(f, 0), 0, 1000)
    assert [(p.pos, p.id, p.len) for p in pieces] == [(0, s1, 100), (100, 0, 900)]
    attr = await meta.truncate(f, 3 * CHUNK_SIZE + 5)
    assert attr.length == 3 * CHUNK_SIZE + 5
    pieces = read_pieces(await meta.read_chunk(f, 0), 0, 1000)
    assert [(p.pos, p.id, p.len) for p in pieces] == [(0, s1, 100), (100, 0, 900)]
    s2 = await meta.next_slice_id()
    await meta.write_slice(f, 2, 10, s2, 50, 0, 50)
    await meta.truncate(f, CHUNK_SIZE)
    assert await meta.read_chunk(f, 2) == []
    with pytest.raises(PermissionError):
        await meta.truncate(f, 0, BOB)
    d, _ = await meta.mkdir(ROOT_INODE, b"d", 0o755)
    with pytest.raises(IsADirectoryError):
        await meta.truncate(d, 0)


# ------------------------------------------------------------------------------------------- data map


async def test_write_slice_appends_and_grows(meta: Meta) -> None:
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    s1, s2 = await meta.next_slice_id(), await meta.next_slice_id()
    attr, n = await meta.write_slice(f, 0, 0, s1, 12, 0, 12)
    assert attr.length == 12 and n == 1
    attr, n = await meta.write_slice(f, 1, 4, s2, 8, 0, 8)
    assert attr.length == CHUNK_SIZE + 12 and n == 1
    assert await meta.read_chunk(f, 0) == [SliceRecord(0, s1, 12, 0, 12)]
    assert await meta.read_chunk(f, 1) == [SliceRecord(4, s2, 8, 0, 8)]
    assert await meta.read_chunk(f, 7) == []
    d, _ = await meta.mkdir(ROOT_INODE, b"d", 0o755)
    with pytest.raises(OSError) as e:
        await meta.write_slice(d, 0, 0, s1, 1, 0, 1)
    assert errno_of(e) in (errno.EPERM, errno.EISDIR)
    assert await counter_value(meta, keys.USED_SPACE) == (CHUNK_SIZE + 4096) + 4096  # the file and d


async def test_write_slices_appends_several_in_order_in_one_commit(meta: Meta) -> None:
    """Several slices in one commit (ADR 0102): their records land after the chunk's, in the order given,
    the file grows to the furthest end, each slice's checksum record is kept, and a retry of this client's
    commit after its own earlier one (Redis: assumed, not read) still lands exactly once."""
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    s0, s1, s2, s3 = [await meta.next_slice_id() for _ in range(4)]
    await meta.write_slice(f, 0, 100, s0, 10, 0, 10)
    attr, n = await meta.write_slices(f, 0, [
        NewSlice(5000, s1, 20, 0, 20, sums=b"sums-1"), NewSlice(0, s2, 4, 0, 4), NewSlice(300, s3, 8, 0, 8),
    ])  # fmt: skip
    assert n == 4 and attr.length == 5020
    assert await meta.read_chunk(f, 0) == [
        SliceRecord(100, s0, 10, 0, 10), SliceRecord(5000, s1, 20, 0, 20), SliceRecord(0, s2, 4, 0, 4),
        SliceRecord(300, s3, 8, 0, 8),
    ]  # fmt: skip
    assert await meta.read_block_sums(s1) == b"sums-1" and await meta.read_block_sums(s2) is None
    s4, s5 = await meta.next_slice_id(), await meta.next_slice_id()
    attr, n = await meta.write_slices(f, 0, [NewSlice(0, s4, 1, 0, 1), NewSlice(1, s5, 1, 0, 1)])
    assert n == 6 and attr.length == 5020
    for bad in ([], [NewSlice(0, s4, 0, 0, 0)]):
        with pytest.raises(OSError) as e:
            await meta.write_slices(f, 0, bad)
        assert errno_of(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        await meta.write_slices(f, 0, [NewSlice(0, s4, 1, 0, 1), NewSlice(CHUNK_SIZE - 1, s5, 2, 0, 2)])
    assert errno_of(e) == errno.EFBIG
    assert len(await meta.read_chunk(f, 0)) == 6  # a refused commit lands none of its slices


async def test_fallocate_modes(meta: Meta) -> None:
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    attr = await meta.fallocate(f, 0, 0, 10_000)
    assert attr.length == 10_000
    attr = await meta.fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 50_000)
    assert attr.length == 10_000
    s = await meta.next_slice_id()
    await meta.write_slice(f, 0, 0, s, 10_000, 0, 10_000)
    await meta.fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 200)
    pieces = read_pieces(await meta.read_chunk(f, 0), 0, 10_000)
    assert [(p.pos, p.id, p.len) for p in pieces] == [(0, s, 100), (100, 0, 200), (300, s, 9700)]
    assert (await meta.getattr(f)).length == 10_000
    attr = await meta.fallocate(f, FALLOC_FL_ZERO_RANGE, 9_000, 2_000)
    assert attr.length == 11_000
    with pytest.raises(OSError) as e:
        await meta.fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, 1)
    assert errno_of(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        await meta.fallocate(f, 0x08, 0, 4096)
    assert errno_of(e) == errno.EOPNOTSUPP
    with pytest.raises(OSError) as e:
        await meta.fallocate(f, 0, 0, 0)
    assert errno_of(e) == errno.EINVAL


async def test_copy_file_range_shares_slices(meta: Meta) -> None:
    src, _ = await meta.create(ROOT_INODE, b"src", 0o644)
    dst, _ = await meta.create(ROOT_INODE, b"dst", 0o644)
    s = await meta.next_slice_id()
    await meta.write_slice(src, 0, 0, s, 1000, 0, 1000)
    n, attr = await meta.copy_file_range(src, 100, dst, CHUNK_SIZE - 50, 5000)
    assert n == 900 and attr.length == CHUNK_SIZE - 50 + 900
    p0 = read_pieces(await meta.read_chunk(dst, 0), CHUNK_SIZE - 50, 50)
    p1 = read_pieces(await meta.read_chunk(dst, 1), 0, 850)
    assert [(p.id, p.off, p.len) for p in p0] == [(s, 100, 50)]
    assert [(p.id, p.off, p.len) for p in p1] == [(s, 150, 850)]

    async def refs(tx: Tx) -> int:
        return decode_i64(await tx.get(keys.slice_ref(s, 1000)))

    assert await meta.kv.read(refs) == 2  # three records reference the slice: refs - 1
    await meta.unlink(ROOT_INODE, b"src")
    await meta.close_file(src)
    await meta.drain()
    assert await meta.kv.read(refs) == 1
    with pytest.raises(OSError) as e:
        await meta.copy_file_range(dst, 0, dst, 10, 100)
    assert errno_of(e) == errno.EINVAL


async def test_deleting_a_file_releases_its_slices(meta: Meta) -> None:
    freed: list[tuple[int, int]] = []

    async def hook(slices: list[tuple[int, int]]) -> None:
        freed.extend(slices)

    meta.free_hook = hook
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    s1, s2 = await meta.next_slice_id(), await meta.next_slice_id()
    await meta.write_slice(f, 0, 0, s1, 100, 0, 100)
    await meta.write_slice(f, 3, 0, s2, 50, 0, 50)
    await meta.close_file(f)
    await meta.unlink(ROOT_INODE, b"f")
    await meta.drain()
    assert sorted(freed) == sorted([(s1, 100), (s2, 50)])

    async def leftovers(tx: Tx) -> list[bytes]:
        return [k for k, _ in await tx.scan(b"D", b"E")] + [k for k, _ in await tx.scan(b"K", b"L")]

    assert await meta.kv.read(leftovers) == []


# ------------------------------------------------------------------------------------------- readdir


async def test_readdir_pages_and_plus(meta: Meta) -> None:
    d, _ = await meta.mkdir(ROOT_INODE, b"d", 0o755)
    names = sorted(b"n%04d" % i for i in range(130)) + [b"\x01low", b"\xffhigh"]
    for name in names:
        ino, _ = await meta.create(d, name, 0o644)
        await meta.close_file(ino)
    got = [e.name async for e in meta.readdir(d)]
    assert got == sorted(names)
    page, cursor = await meta.readdir_page(d, b"", 50, plus=True)
    assert len(page) == 50 and cursor == page[-1].name and all(e.attr is not None for e in page)
    rest, _ = await meta.readdir_page(d, cursor or b"", 1000)
    assert [e.name for e in page + rest] == sorted(names)
    # records=True (the mount's READDIRPLUS, ADR 0071): the same entries, each attribute its stored record
    raw, raw_cursor = await meta.readdir_page(d, b"", 50, plus=True, records=True)
    assert raw_cursor == cursor and [e[:3] for e in raw] == [e[:3] for e in page]
    assert all(type(e.attr) is bytes for e in raw)
    assert [Attr.decode(e.attr) for e in raw if isinstance(e.attr, bytes)] == [e.attr for e in page]
    more, _ = await meta.readdir_page(d, raw_cursor or b"", 1000, plus=True, records=True)
    assert [e.name for e in raw + more] == sorted(names)
    with pytest.raises(NotADirectoryError):
        await meta.readdir_page(page[0].ino, plus=True, records=True)
    with pytest.raises(FileNotFoundError):
        await meta.readdir_page(987654321, plus=True, records=True)
    await meta.setattr(d, SetAttr(mode=0o700))
    with pytest.raises(PermissionError):
        await meta.readdir_page(d, plus=True, records=True, ctx=Ctx(uid=1000, gid=1000, umask=0o022))
    with pytest.raises(NotADirectoryError):
        await meta.readdir_page(page[0].ino)


# ------------------------------------------------------------------------------------------- xattrs


async def test_xattrs(meta: Meta) -> None:
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    await meta.setxattr(f, b"user.a", b"1")
    await meta.setxattr(f, b"user.b", b"")
    assert await meta.getxattr(f, b"user.a") == b"1"
    assert await meta.getxattr(f, b"user.b") == b""
    assert await meta.listxattr(f) == [b"user.a", b"user.b"]
    with pytest.raises(FileExistsError):
        await meta.setxattr(f, b"user.a", b"2", XATTR_CREATE)
    with pytest.raises(OSError) as e:
        await meta.setxattr(f, b"user.c", b"2", XATTR_REPLACE)
    assert errno_of(e) == ENOATTR
    await meta.setxattr(f, b"user.a", b"2", XATTR_REPLACE)
    assert await meta.getxattr(f, b"user.a") == b"2"
    await meta.removexattr(f, b"user.a")
    with pytest.raises(OSError) as e:
        await meta.getxattr(f, b"user.a")
    assert errno_of(e) == ENOATTR
    with pytest.raises(OSError) as e:
        await meta.removexattr(f, b"user.a")
    assert errno_of(e) == ENOATTR
    with pytest.raises(OSError) as e:
        await meta.setxattr(f, b"user.big", b"x" * 65537)
    assert errno_of(e) == errno.E2BIG
    with pytest.raises(OSError) as e:
        await meta.setxattr(f, b"user." + b"n" * 300, b"x")
    assert errno_of(e) == errno.ERANGE
    with pytest.raises(PermissionError):
        await meta.setxattr(f, b"user.x", b"1", ctx=BOB)


# ------------------------------------------------------------------------------------------- statfs, limits


async def test_statfs_counts_space_and_inodes(meta: Meta) -> None:
    base = await meta.statfs()
    f, _ = await meta.create(ROOT_INODE, b"f", 0o644)
    await meta.write_slice(f, 0, 0, await meta.next_slice_id(), 10_000, 0, 10_000)
    await meta.mkdir(ROOT_INODE, b"d", 0o755)
    st = await meta.statfs()
    assert st.used_inodes == base.used_inodes + 2
    assert st.used_space == base.used_space + 12288 + 4096


async def test_capacity_and_inode_limits(kv: KV) -> None:
    m = await fresh_meta(kv, trash_days=0, capacity=1 << 20, inodes=3)
    try:
        f, _ = await m.create(ROOT_INODE, b"f", 0o644)
        await m.write_slice(f, 0, 0, await m.next_slice_id(), 1 << 20, 0, 1 << 20)
        with pytest.raises(OSError) as e:
            await m.write_slice(f, 0, 1 << 20, await m.next_slice_id(), 10, 0, 10)
        assert errno_of(e) == errno.ENOSPC
        await m.mkdir(ROOT_INODE, b"a", 0o755)
        await m.mkdir(ROOT_INODE, b"b", 0o755)
        with pytest.raises(OSError) as e:
            await m.mkdir(ROOT_INODE, b"c", 0o755)
        assert errno_of(e) == errno.ENOSPC
        st = await m.statfs()
        assert st.total_space == 1 << 20 and st.avail_inodes == 0
    finally:
        await m.close()



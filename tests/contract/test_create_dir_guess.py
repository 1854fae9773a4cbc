"""Creates that assume what this client's previous create left on the directory (`CommitTails.take_dir`,
`AssumingTx`), and rmdir assuming the directory empty (`AssumingTx.assume_empty`): on every engine, a
create after another client changed the directory or took the name keeps both changes and says EEXIST,
and rmdir of a directory another client filled says ENOTEMPTY."""

from __future__ import annotations

import errno

import pytest

from jfs.app.meta import Meta
from jfs.app.meta.context import Ctx
from jfs.app.meta.setattr import SetAttr
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.errors import FSError
from jfs.ports.kv import RESTARTS


async def _names(m: Meta, ino: int) -> list[bytes]:
    return sorted([e.name async for e in m.readdir(ino)])


async def test_creates_keep_what_another_client_changed_meanwhile(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
    await a.mkdir(d, b"a1", 0o755)  # a now guesses d's record
    await b.mkdir(d, b"b1", 0o755)  # ... which b changes (nlink)
    await a.mkdir(d, b"a2", 0o755)  # a's guess is wrong: the commit refuses it, the retry reads
    await a.mknod(d, b"f", FileType.REGULAR, 0o644)
    await b.mknod(d, b"g", FileType.REGULAR, 0o644)
    await a.mknod(d, b"h", FileType.REGULAR, 0o644)
    assert (await a.getattr(d)).nlink == 5
    assert await _names(a, d) == [b"a1", b"a2", b"b1", b"f", b"g", b"h"]


async def test_a_name_taken_by_another_client_is_eexist(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
    await a.mknod(d, b"x", FileType.REGULAR, 0o644)
    await b.mknod(d, b"y", FileType.REGULAR, 0o644)
    with pytest.raises(FSError) as exc:
        await a.mknod(d, b"y", FileType.REGULAR, 0o644)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(FSError) as exc:
        await a.mkdir(d, b"x", 0o755)
    assert exc.value.errno == errno.EEXIST


async def test_one_client_creating_alone_never_conflicts(two_clients: tuple[Meta, Meta]) -> None:
    a, _ = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
    RESTARTS.reset()
    for i in range(20):
        await a.mkdir(d, b"d%d" % i, 0o755)
        await a.mknod(d, b"f%d" % i, FileType.REGULAR, 0o644)
        await a.rename(d, b"f%d" % i, d, b"r%d" % i)
        await a.unlink(d, b"r%d" % i)
    assert RESTARTS.total == 0
    assert (await a.getattr(d)).nlink == 22


async def test_rmdir_assumes_empty_and_still_says_enotempty(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
    sub, _ = await a.mkdir(d, b"sub", 0o755)
    await b.mknod(sub, b"late", FileType.REGULAR, 0o644)  # another client fills it
    with pytest.raises(FSError) as exc:
        await a.rmdir(d, b"sub")
    assert exc.value.errno == errno.ENOTEMPTY
    await b.unlink(sub, b"late")
    RESTARTS.reset()
    await a.rmdir(d, b"sub")
    assert RESTARTS.total == 0
    assert await _names(a, d) == []
    assert (await a.getattr(d)).nlink == 2


async def test_a_create_allowed_by_another_clients_chmod_is_not_refused(two_clients: tuple[Meta, Meta]) -> None:
    """A guessed directory record that says "not writable" is checked against the stored one: another
    client's chmod since this client's last create here grants the write."""
    a, b = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
    await a.mknod(d, b"x", FileType.REGULAR, 0o644)  # a now guesses d's record: mode 0755, root's
    await b.setattr(d, SetAttr(mode=0o777))  # anyone may create in d now
    user = Ctx(uid=1000, gid=1000)
    ino, attr = await a.mknod(d, b"by-user", FileType.REGULAR, 0o644, user)
    assert attr.uid == 1000 and (await b.lookup(d, b"by-user"))[0] == ino

"""Renames that assume what the kernel's LOOKUPs of their two names just found and what this client last
left on the directory (`CommitTails.take_name` / `take_dir`, ADR 0086): on every engine, a rename whose
guess another client made wrong in between still does what a rename of the present state does — replaces
the destination another client created, moves the source's present attributes, says ENOENT for a source
another client moved away — and a rename by one client alone never conflicts."""

from __future__ import annotations

import errno

import pytest

from jfs.app.meta import Meta
from jfs.app.meta.context import Ctx
from jfs.app.meta.setattr import SetAttr
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.errors import FSError
from jfs.ports.kv import RESTARTS

KERNEL = Ctx(uid=0, gid=0, check=False)
"""The kernel's LOOKUP: permissions already checked (default_permissions)."""


async def _kernel_lookups(m: Meta, d: int, src: bytes, dst: bytes) -> None:
    """What the kernel sends before a RENAME whose dentries expired: LOOKUP of both names."""
    await m.lookup(d, src, KERNEL, dir_known=True)
    with pytest.raises(FSError) as exc:
        await m.lookup(d, dst, KERNEL, dir_known=True)
    assert exc.value.errno == errno.ENOENT


async def _assumes(m: Meta) -> bool:
    """Whether the engine's transactions take guesses (`AssumingTx`; the others read as before)."""

    async def body(tx: object) -> bool:
        return callable(getattr(tx, "assume", None))

    return await m.kv.read(body)


async def _names(m: Meta, ino: int) -> list[bytes]:
    return sorted([e.name async for e in m.readdir(ino)])


async def test_one_client_renaming_after_lookups_never_conflicts(two_clients: tuple[Meta, Meta]) -> None:
    a, _ = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
    inodes = [(await a.mknod(d, b"f%d" % i, FileType.REGULAR, 0o644))[0] for i in range(10)]
    RESTARTS.reset()
    for i in range(10):
        await _kernel_lookups(a, d, b"f%d" % i, b"r%d" % i)
        await a.rename(d, b"f%d" % i, d, b"r%d" % i)
        assert a.tails.take_name(d, b"f%d" % i) is False  # the guess was handed out (and not kept)
    assert RESTARTS.total == 0
    assert await _names(a, d) == [b"r%d" % i for i in range(10)]
    assert [(await a.lookup(d, b"r%d" % i))[0] for i in range(10)] == inodes


async def test_a_destination_another_client_created_is_replaced(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
    src, _ = await a.mknod(d, b"s", FileType.REGULAR, 0o644)
    await _kernel_lookups(a, d, b"s", b"t")
    await b.mknod(d, b"t", FileType.REGULAR, 0o600)  # the guess "no t" is now wrong
    RESTARTS.reset()
    await a.rename(d, b"s", d, b"t")
    assert RESTARTS.total == (1 if await _assumes(a) else 0)  # the guess was taken, refused, then read
    assert await _names(b, d) == [b"t"]
    assert (await b.lookup(d, b"t"))[0] == src


async def test_the_moved_inode_keeps_what_another_client_changed(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
    src, _ = await a.mknod(d, b"s", FileType.REGULAR, 0o644)
    await _kernel_lookups(a, d, b"s", b"t")
    await b.setattr(src, SetAttr(mode=0o600))  # the inode's record the guess holds is now stale
    await a.rename(d, b"s", d, b"t")
    ino, attr = await b.lookup(d, b"t")
    assert ino == src and attr.mode & 0o7777 == 0o600


async def test_a_source_another_client_moved_away_is_enoent(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
    await a.mknod(d, b"s", FileType.REGULAR, 0o644)
    await _kernel_lookups(a, d, b"s", b"t")
    await b.rename(d, b"s", d, b"elsewhere")
    with pytest.raises(FSError) as exc:
        await a.rename(d, b"s", d, b"t")
    assert exc.value.errno == errno.ENOENT
    assert await _names(a, d) == [b"elsewhere"]


async def test_a_directory_another_client_changed_keeps_both_changes(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o755)
    await a.mknod(d, b"s", FileType.REGULAR, 0o644)
    await _kernel_lookups(a, d, b"s", b"t")
    await b.mkdir(d, b"sub", 0o755)  # d's record (nlink) the guess holds is now stale
    await a.rename(d, b"s", d, b"t")
    assert await _names(a, d) == [b"sub", b"t"]
    assert (await a.getattr(d)).nlink == 3


async def test_an_error_on_guessed_records_is_checked_against_the_stored_ones(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    d, _ = await a.mkdir(ROOT_INODE, b"d", 0o1777)  # sticky: only the file's (or directory's) owner renames
    other, me = Ctx(uid=1001, gid=1001), Ctx(uid=1000, gid=1000)
    src, _ = await a.mknod(d, b"s", FileType.REGULAR, 0o644, other)
    await _kernel_lookups(a, d, b"s", b"t")  # the guess: s owned by 1001
    await b.setattr(src, SetAttr(uid=1000))  # now 1000's: 1000 may rename it
    await a.rename(d, b"s", d, b"t", ctx=me)
    assert (await b.lookup(d, b"t"))[0] == src


async def test_a_move_between_directories_guesses_both(two_clients: tuple[Meta, Meta]) -> None:
    a, b = two_clients
    d1, _ = await a.mkdir(ROOT_INODE, b"d1", 0o755)
    d2, _ = await a.mkdir(ROOT_INODE, b"d2", 0o755)
    sub, _ = await a.mkdir(d1, b"sub", 0o755)  # a directory moves: both parents' nlink change
    await a.mknod(d2, b"x", FileType.REGULAR, 0o644)  # a now guesses d1's and d2's records
    await a.lookup(d1, b"sub", KERNEL, dir_known=True)
    with pytest.raises(FSError):
        await a.lookup(d2, b"sub2", KERNEL, dir_known=True)
    RESTARTS.reset()
    await a.rename(d1, b"sub", d2, b"sub2")
    assert RESTARTS.total == 0
    assert (await b.getattr(d1)).nlink == 2 and (await b.getattr(d2)).nlink == 3
    assert (await b.getattr(sub)).parent == d2
    await a.lookup(d2, b"sub2", KERNEL, dir_known=True)
    with pytest.raises(FSError):
        await a.lookup(d1, b"back", KERNEL, dir_known=True)
    await b.mkdir(d1, b"other", 0o755)  # d1's record a guesses is now stale
    await a.rename(d2, b"sub2", d1, b"back")
    assert (await b.getattr(d1)).nlink == 4 and (await b.getattr(d2)).nlink == 2
    assert await _names(b, d1) == [b"back", b"other"]

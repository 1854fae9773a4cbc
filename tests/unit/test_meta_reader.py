"""The engine's shared reader (`jfs.app.meta.reader`) and scans (`jfs.app.meta.chunk_scan`): what the ops
tools get instead of keys. On the memory engine."""

from __future__ import annotations

import errno
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jfs.app.meta import Meta, reader
from jfs.app.meta.chunk_scan import chunk_slices, chunks_in, inode_chunks
from jfs.compose import format_volume
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, FileType
from jfs.domain.errors import FSError
from jfs.domain.settings import Settings
from jfs.ports.kv import Tx
from jfs.testing.engines import session_meta_at


@pytest.fixture
async def m(tmp_path: Path) -> AsyncIterator[Meta]:
    url = f"memory://reader-{uuid.uuid4().hex}"
    await format_volume(url, Settings(name="reader", storage="file", bucket=str(tmp_path / "b"), trash_days=0))
    async with session_meta_at(url) as meta:
        yield meta


async def _tree(m: Meta) -> dict[str, int]:
    """/a/b/f, /a/g (a hard link of /a/b/f), /a/s (symlink), /c: path → inode."""
    a, _ = await m.mkdir(ROOT_INODE, b"a", 0o755)
    b, _ = await m.mkdir(a, b"b", 0o755)
    f, _ = await m.create(b, b"f", 0o644)
    await m.close_file(f)
    await m.link(f, a, b"g")
    s, _ = await m.symlink(a, b"s", b"b/f")
    c, _ = await m.mkdir(ROOT_INODE, b"c", 0o755)
    return {"/a": a, "/a/b": b, "/a/b/f": f, "/a/s": s, "/c": c}


async def test_resolve_path_follows_names_and_names_what_is_missing(m: Meta) -> None:
    t = await _tree(m)
    assert await reader.resolve_path(m.kv, "/a/b/f") == (t["/a/b/f"], FileType.REGULAR)
    assert await reader.resolve_path(m.kv, "a/./b/") == (t["/a/b"], FileType.DIRECTORY)
    assert await reader.resolve_path(m.kv, "/") == (ROOT_INODE, FileType.DIRECTORY)
    assert (await reader.resolve_path(m.kv, "/.trash", trash=True))[0] == TRASH_INODE
    with pytest.raises(FSError) as exc:
        await reader.resolve_path(m.kv, "/.trash")
    assert exc.value.errno == errno.ENOENT
    with pytest.raises(FSError) as exc:
        await reader.resolve_path(m.kv, "/a/nope/x")
    assert (exc.value.errno, exc.value.filename) == (errno.ENOENT, "/a/nope")
    with pytest.raises(FSError) as exc:
        await reader.resolve_path(m.kv, "/a/b/f/x")
    assert (exc.value.errno, exc.value.filename) == (errno.ENOTDIR, "/a/b/f")


async def test_resolve_dir_refuses_files_and_names_the_path(m: Meta) -> None:
    t = await _tree(m)
    assert await reader.resolve_dir(m, "/a/b") == t["/a/b"]
    with pytest.raises(FSError) as exc:
        await reader.resolve_dir(m, "a/b/f")
    assert exc.value.errno == errno.ENOTDIR
    assert "/a/b/f in volume 'reader'" in str(exc.value)
    with pytest.raises(FSError) as exc:
        await reader.resolve_dir(m, "/zz")
    assert exc.value.errno == errno.ENOENT


async def test_walk_reports_each_inode_once_and_can_stop_at_one_level(m: Meta) -> None:
    t = await _tree(m)
    seen = [(parent, typ, ino) async for parent, typ, ino in reader.walk(m.kv, [ROOT_INODE])]
    inos = [ino for _, _, ino in seen]
    assert sorted(inos) == sorted(set(t.values()))  # the hard-linked file once
    assert (t["/a"], FileType.DIRECTORY, t["/a/b"]) in seen
    top = {ino async for _, _, ino in reader.walk(m.kv, [t["/a"]], recursive=False)}
    assert top == {t["/a/b"], t["/a/b/f"], t["/a/s"]}


async def test_dir_pages_cover_a_directory_in_name_order(m: Meta) -> None:
    d, _ = await m.mkdir(ROOT_INODE, b"many", 0o755)
    for i in range(25):
        await m.mkdir(d, b"n%02d" % i, 0o755)
    names: list[bytes] = []
    after = b""
    while page := await reader.dir_page(m.kv, d, after, limit=10):
        names += [name for name, _, _ in page]
        after = page[-1][0]
        if len(page) < 10:
            break
    assert names == [b"n%02d" % i for i in range(25)]
    assert [n for n, _, _ in await reader.dir_entries(m.kv, d)] == names
    assert set(await reader.names_in(m.kv, d, set())) == set()


async def test_paths_of_inodes_and_of_what_has_none(m: Meta) -> None:
    t = await _tree(m)
    cache = reader.PathCache(m.kv)
    assert await cache.dir_path(t["/a/b"]) == "/a/b"
    assert await cache.dir_path(ROOT_INODE) == "/"
    assert await reader.path_of(m.kv, t["/a/b/f"]) in ("/a/b/f", "/a/g")  # hard-linked: one of its names
    assert await reader.path_of(m.kv, 987654) == "<inode 987654>"
    assert await reader.is_below(m.kv, t["/a/b"], t["/a"])
    assert not await reader.is_below(m.kv, t["/c"], t["/a"])
    attrs = await reader.read_attrs(m.kv, [t["/a"], 987654])
    assert attrs[0] is not None and attrs[0].typ is FileType.DIRECTORY and attrs[1] is None


async def test_chunk_scans_see_every_chunk_of_the_volume(m: Meta) -> None:
    f, _ = await m.create(ROOT_INODE, b"data", 0o644)
    sid = await m.next_slice_id()
    await m.write_slice(f, 1, 0, sid, 4096, 0, 4096)
    await m.close_file(f)
    assert [(i, list(chunk_slices(v))) for i, v in await inode_chunks(m.kv, f)] == [(1, [(sid, 4096, 0, 4096)])]
    ticks: list[int] = []

    async def body(tx: Tx) -> list[tuple[int, int]]:
        return [(ino, indx) async for ino, indx, _ in chunks_in(tx, ticks.append)]

    assert (f, 1) in await m.kv.read(body)
    assert sum(ticks) > 0  # the rest of the keys scanned is reported at the end

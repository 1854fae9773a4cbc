"""`jfs summary` / `jfs info`'s totals (`tree_jobs.summary_tree`, `inode_info.summary`), which read directories
a folded page at a time (`jfs.app.meta.dir_totals`; on Redis three native commands and column-wise sums),
give exactly what the walk before them gave — every entry listed with its attributes — on a tree with
sparse files, hard links, symlinks, a fifo, nested and empty directories, a directory the caller may not
read, pages of a few names (the biggest entries then span pages) and the trash, with one, two or
`tree_jobs.PREFETCH` directories' pages read ahead (ADR 0093)."""

from __future__ import annotations

from typing import Any

import pytest

from jfs.app import inode_info, tree_jobs
from jfs.app.meta import Meta, dir_totals
from jfs.app.meta.context import ROOT_CTX, Ctx
from jfs.app.meta.engine import format_meta
from jfs.domain.attrs import ROOT_INODE, TRASH_INODE, Attr, FileType, align4k
from jfs.domain.errors import FSError
from jfs.domain.permissions import MAY_EXEC, MAY_READ, access_ok
from jfs.domain.settings import Settings
from jfs.ports.kv import KV, RangeFollowingKV

ENGINES = pytest.mark.jfs_engines("memory", "sqlite", "redis")
USER = Ctx(uid=1000, gid=1000, check=True)


async def _old_tree(meta: Meta, ctx: Ctx, ino: int, attr: Attr, name: str, depth: int, entries: int,
                    top: bool = False) -> dict[str, Any]:
    """The walk `summary_tree` made before pages were folded: every entry listed with its attributes."""
    node: dict[str, Any] = {"name": name, "inode": ino, "type": attr.typ.name.lower(), "files": 0, "dirs": 0,
                            "length": 0, "space": tree_jobs._space(attr.typ, attr.length), "unreadable": 0}
    if attr.typ is not FileType.DIRECTORY:
        node["files"] = 1
        node["length"] = attr.length if attr.typ is FileType.REGULAR else 0
        return node
    node["dirs"] = 1
    if not top and not tree_jobs._may(ctx, attr, tree_jobs.READ_AND_SEARCH):
        return tree_jobs._denied(node)
    kept: list[dict[str, Any]] = []
    async for e in meta.readdir(ino, ctx, plus=True):
        a = e.attr
        assert a is not None
        child_name = e.name.decode(errors="surrogateescape")
        if a.typ is FileType.DIRECTORY:
            child = await _old_tree(meta, ctx, e.ino, a, child_name, depth - 1, entries)
        else:
            child = {"name": child_name, "inode": e.ino, "type": a.typ.name.lower(), "files": 1, "dirs": 0,
                     "length": a.length if a.typ is FileType.REGULAR else 0,
                     "space": tree_jobs._space(a.typ, a.length), "unreadable": 0}
        for k in tree_jobs._TOTALS:
            node[k] += child[k]
        kept.append(child)
    if depth > 0:
        rows = sorted(kept, key=lambda c: (-c["space"], c["name"].encode(errors="surrogateescape")))
        if entries > 0 and len(rows) > entries:
            rest = rows[entries:]
            rows = rows[:entries] + [{"name": "...", "inode": 0, "type": "other",
                                      **{k: sum(c[k] for c in rest) for k in tree_jobs._TOTALS}}]
        node["children"] = rows
    return node


async def _old_totals(meta: Meta, ino: int, ctx: Ctx) -> dict[str, int]:
    """`inode_info.summary` before pages were folded."""
    totals = {"files": 0, "dirs": 1, "length": 0, "space": 4096, "unreadable": 0}
    stack = [ino]
    while stack:
        d = stack.pop()
        try:
            async for e in meta.readdir(d, ctx, plus=True):
                a = e.attr
                assert a is not None
                if a.typ is FileType.DIRECTORY:
                    totals["dirs"] += 1
                    totals["space"] += 4096
                    if ctx.check and not access_ok(a, ctx.caller, MAY_READ | MAY_EXEC):
                        totals["unreadable"] += 1
                    else:
                        stack.append(e.ino)
                    continue
                totals["files"] += 1
                totals["length"] += a.length if a.typ is FileType.REGULAR else 0
                totals["space"] += align4k(a.length if a.typ is FileType.REGULAR else 0)
        except PermissionError:
            totals["unreadable"] += 1
        except FSError:
            continue
    return totals


async def _tree(m: Meta) -> int:
    """A tree under /t (returns its inode); removes two files into the trash."""
    top, _ = await m.mkdir(ROOT_INODE, b"t", 0o755)
    sizes = [0, 1, 4095, 4096, 4097, 1 << 20, 5 << 30, 3, 3, 8192, 0, 12_345_678]
    a, _ = await m.mkdir(top, b"a", 0o755)
    for i, size in enumerate(sizes):
        ino, _ = await m.mknod(a, b"f%02d" % i, FileType.REGULAR, 0o644)
        if size:
            await m.truncate(ino, size)  # sparse: a length without blocks
    linked, _ = await m.mknod(top, b"big", FileType.REGULAR, 0o644)
    await m.truncate(linked, 7 << 20)
    await m.link(linked, a, b"big-link")  # a hard link: counted under each name, as before
    await m.symlink(a, b"sym", b"f01")
    await m.mknod(a, b"fifo", FileType.FIFO, 0o644)
    await m.mkdir(a, b"empty", 0o755)
    deep = a
    for level in range(4):
        deep, _ = await m.mkdir(deep, b"d%d" % level, 0o755)
        for i in range(level + 2):
            f, _ = await m.mknod(deep, b"x%d" % i, FileType.REGULAR, 0o644)
            await m.truncate(f, (i + 1) * 5000 * (level + 1))
    closed, _ = await m.mkdir(top, b"closed", 0o700)  # root's: a user may not read it
    f, _ = await m.mknod(closed, b"secret", FileType.REGULAR, 0o600)
    await m.truncate(f, 99_999)
    await m.mkdir(closed, b"inner", 0o755)
    for name in (b"f05", b"f06"):  # into the trash (trash days 1)
        await m.unlink(a, name)
    return top


@ENGINES
@pytest.mark.parametrize(("page", "prefetch"), [(3, 1), (3, tree_jobs.PREFETCH), (4096, 2), (4096, tree_jobs.PREFETCH)])
async def test_folded_pages_give_the_old_walks_totals(kv: KV, page: int, prefetch: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dir_totals, "PAGE", page)
    monkeypatch.setattr(tree_jobs, "PREFETCH", prefetch)  # how many pages are read ahead changes nothing
    assert isinstance(kv, RangeFollowingKV) == kv.url.startswith("redis")  # Redis takes the folded path
    await format_meta(kv, Settings(name="totals", trash_days=1))
    m = await Meta.load(kv)
    await m.start_session(background=False)
    try:
        top = await _tree(m)
        wide, _ = await m.mkdir(ROOT_INODE, b"wide", 0o755)  # more subdirectories than pages read ahead
        for i in range(40):
            d, _ = await m.mkdir(wide, b"s%02d" % i, 0o755 if i % 7 else 0o700)
            f, _ = await m.mknod(d, b"f", FileType.REGULAR, 0o644)
            await m.truncate(f, i * 1000)
        for ino, ctx in ((top, ROOT_CTX), (top, USER), (ROOT_INODE, ROOT_CTX), (TRASH_INODE, ROOT_CTX)):
            attr = await m.getattr_named(ino, ctx)
            for depth, entries in ((0, 10), (1, 1), (2, 3), (2, 10), (3, 0), (5, 2)):
                want = await _old_tree(m, ctx, ino, attr, "x", depth, entries, top=True)
                got = await tree_jobs.summary_tree(m, ino, "x", depth=depth, entries=entries, ctx=ctx)
                assert got == want, (ino, ctx, depth, entries)
            assert await inode_info.summary(m, ino, ctx=ctx) == await _old_totals(m, ino, ctx)
        whole = await tree_jobs.summary_tree(m, top, "t", depth=1, entries=2)
        assert whole["files"] == 12 + 1 + 1 + 1 + 1 + sum(range(2, 6)) + 1 - 2  # a/ (incl. link, symlink, fifo)
        assert whole["children"][-1]["name"] == "..."
    finally:
        await m.close()


@pytest.mark.jfs_engines("memory")
async def test_read_ahead_holds_what_eight_full_pages_held(kv: KV, monkeypatch: pytest.MonkeyPatch) -> None:
    """ADR 0093: `PREFETCH` first pages are read ahead, each of `AHEAD_PAGES` × PAGE / `PREFETCH` names, so
    at most 8 full pages' worth of entries wait in the read-ahead; a directory's later pages are full."""
    await format_meta(kv, Settings(name="ahead", trash_days=0))
    m = await Meta.load(kv)
    await m.start_session(background=False)
    try:
        wide, _ = await m.mkdir(ROOT_INODE, b"wide", 0o755)
        for i in range(tree_jobs.PREFETCH + 8):
            d, _ = await m.mkdir(wide, b"s%02d" % i, 0o755)
            for j in range(3):
                await m.mknod(d, b"f%d" % j, FileType.REGULAR, 0o644)
        monkeypatch.setattr(dir_totals, "PAGE", 8)
        ahead_names = tree_jobs.AHEAD_PAGES * 8 // tree_jobs.PREFETCH
        assert ahead_names * tree_jobs.PREFETCH <= 8 * 8
        asked: list[int] = []
        real = dir_totals.totals_page

        async def spy(meta: Meta, ctx: Ctx, ino: int, after: bytes = b"", limit: int = 0, *,
                      top: int = 0) -> dir_totals.TotalsPage:
            asked.append(limit)
            return await real(meta, ctx, ino, after, limit, top=top)

        monkeypatch.setattr(tree_jobs, "totals_page", spy)
        got = await tree_jobs.summary_tree(m, wide, "w", depth=1, entries=0)
        assert got["files"] == 3 * (tree_jobs.PREFETCH + 8) and got["dirs"] == tree_jobs.PREFETCH + 9
        assert set(asked) <= {0, max(1, ahead_names)}  # read ahead: the small first pages; else full pages
        assert asked.count(max(1, ahead_names)) == tree_jobs.PREFETCH + 8  # every subdirectory was read ahead
    finally:
        await m.close()

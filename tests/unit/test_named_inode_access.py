"""Requests that name inodes by number (`jfs info`, `summary`, `warmup`, `rmr` through ``.control``) see only
what their caller may: the use cases check search permission on a path to the inode and the caller's rights
on what they read, since no path lookup (kernel or engine) checked anything. Memory engine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from jfs.adapters.kv.memory import open_memory
from jfs.app.inode_info import inode_info
from jfs.app.meta import Ctx, Meta
from jfs.app.meta.engine import format_meta
from jfs.app.tree_jobs import remove_tree, summary_tree, warmup
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.permissions import MAY_READ
from jfs.domain.settings import Settings
from jfs.testing.engines import session_meta

ROOT = Ctx(check=True)
ALICE = Ctx(uid=1000, gid=1000, check=True)
STAFF = 50


@pytest.fixture
async def m() -> AsyncIterator[Meta]:
    kv = await open_memory("memory://")
    await format_meta(kv, Settings(name="named", trash_days=0))
    async with session_meta(kv) as meta:
        yield meta


async def _file(m: Meta, parent: int, name: bytes, mode: int, length: int = 0, *, uid: int = 0,
                gid: int = 0) -> int:
    ino, _ = await m.mknod(parent, name, FileType.REGULAR, mode, Ctx(uid=uid, gid=gid, check=False))
    if length:
        await m.write_slice(ino, 0, 0, await m.next_slice_id(), length, 0, length)
    return ino


async def _dir(m: Meta, parent: int, name: bytes, mode: int, *, uid: int = 0, gid: int = 0) -> int:
    ino, _ = await m.mkdir(parent, name, mode, Ctx(uid=uid, gid=gid, check=False))
    return ino


async def _tree(m: Meta) -> SimpleNamespace:
    """/priv (0700, root) with two files and a subdir; /secret (0600, root); /pub (0755) holding a readable
    file, a 0700 subdir with a file, a 0600 file; /mine (alice's) with a file."""
    t = SimpleNamespace()
    t.priv = await _dir(m, ROOT_INODE, b"priv", 0o700)
    t.priv_a = await _file(m, t.priv, b"private-a", 0o644, 5000)
    t.priv_b = await _file(m, t.priv, b"private-b", 0o600, 70)
    t.priv_sub = await _dir(m, t.priv, b"private-sub", 0o777)
    t.secret = await _file(m, ROOT_INODE, b"secret", 0o600, 9000)
    t.pub = await _dir(m, ROOT_INODE, b"pub", 0o755)
    t.pub_f = await _file(m, t.pub, b"open", 0o644, 100)
    t.closed = await _dir(m, t.pub, b"closed", 0o700)
    t.closed_f = await _file(m, t.closed, b"hidden-name", 0o644, 1 << 20)
    t.pub_secret = await _file(m, t.pub, b"pubsecret", 0o600, 10)
    t.mine = await _dir(m, ROOT_INODE, b"mine", 0o700, uid=1000, gid=1000)
    t.mine_f = await _file(m, t.mine, b"mine-f", 0o600, 42, uid=1000, gid=1000)
    return t


def _leaks(doc: Any, *names: str) -> list[str]:
    text = json.dumps(doc)
    return [n for n in names if n in text]


# ------------------------------------------------------------------ the engine's check


async def test_named_inode_needs_a_searchable_path_and_the_rights(m: Meta) -> None:
    t = await _tree(m)
    for ino in (t.priv_a, t.priv_sub, t.closed_f):  # mode allows, but a 0700 directory above does not
        with pytest.raises(PermissionError):
            await m.getattr_named(ino, ALICE)
    with pytest.raises(PermissionError):
        await m.getattr_named(t.secret, ALICE, MAY_READ)
    assert (await m.getattr_named(t.secret, ALICE)).length == 9000  # stat(2) would tell as much
    assert (await m.getattr_named(t.pub_f, ALICE, MAY_READ)).length == 100
    assert (await m.getattr_named(t.mine_f, ALICE, MAY_READ)).length == 42
    assert (await m.getattr_named(ROOT_INODE, ALICE, MAY_READ)).typ is FileType.DIRECTORY
    for ino in (t.priv_a, t.priv_b, t.secret, t.closed_f):
        await m.getattr_named(ino, ROOT, MAY_READ)
    unchecked = Ctx(uid=1000, gid=1000, check=False)
    await m.getattr_named(t.priv_b, unchecked, MAY_READ)
    with pytest.raises(FileNotFoundError):
        await m.getattr_named(999_999, ALICE)


async def test_supplementary_groups_grant_search_and_read(m: Meta) -> None:
    d = await _dir(m, ROOT_INODE, b"staff", 0o750, gid=STAFF)
    f = await _file(m, d, b"f", 0o640, 10, gid=STAFF)
    with pytest.raises(PermissionError):
        await m.getattr_named(f, ALICE, MAY_READ)
    member = Ctx(uid=1000, gid=1000, groups=frozenset({STAFF}), check=True)
    assert (await m.getattr_named(f, member, MAY_READ)).length == 10
    assert (await inode_info(m, f, ctx=member))["chunks"]


async def test_a_hard_linked_file_is_reachable_through_any_of_its_directories(m: Meta) -> None:
    closed = await _dir(m, ROOT_INODE, b"closed", 0o700)
    f = await _file(m, closed, b"f", 0o644, 10)
    closed2 = await _dir(m, ROOT_INODE, b"closed2", 0o700)
    await m.link(f, closed2, b"g")
    assert (await m.getattr(f)).parent == 0  # two parents: recorded apart
    with pytest.raises(PermissionError):
        await m.getattr_named(f, ALICE, MAY_READ)
    await m.link(f, ROOT_INODE, b"visible")
    assert (await m.getattr_named(f, ALICE, MAY_READ)).nlink == 3


async def test_an_unlinked_open_file_is_reachable_by_root_only(m: Meta) -> None:
    f = await _file(m, ROOT_INODE, b"f", 0o644, 10)
    m.open_file(f)
    await m.unlink(ROOT_INODE, b"f")
    with pytest.raises(PermissionError):
        await m.getattr_named(f, ALICE, MAY_READ)
    assert (await m.getattr_named(f, ROOT, MAY_READ)).nlink == 0


async def test_the_searchable_cache_is_only_a_cache(m: Meta) -> None:
    t = await _tree(m)
    seen: set[int] = set()
    await m.getattr_named(t.pub_f, ALICE, searchable=seen)
    assert seen == {t.pub, ROOT_INODE}
    with pytest.raises(PermissionError):
        await m.getattr_named(t.closed_f, ALICE, searchable=seen)
    assert t.closed not in seen


# ------------------------------------------------------------------ info


async def test_info_needs_read_permission_and_a_path(m: Meta) -> None:
    t = await _tree(m)
    for ino in (t.secret, t.priv_b, t.priv_a, t.priv, t.closed, t.pub_secret):
        with pytest.raises(PermissionError):
            await inode_info(m, ino, ctx=ALICE)
    doc = await inode_info(m, t.secret, ctx=ROOT)
    assert doc["chunks"][0]["slices"][0]["objects"]
    own = await inode_info(m, t.mine_f, ctx=ALICE)
    assert own["length"] == 42 and own["chunks"][0]["slices"][0]["objects"]
    assert (await inode_info(m, t.pub_f, ctx=ALICE))["chunks"]


async def test_info_summary_counts_what_the_caller_may_list(m: Meta) -> None:
    t = await _tree(m)
    doc = await inode_info(m, t.pub, ctx=ALICE)
    # /pub: itself, "closed" (counted, not listed), "open" and "pubsecret" (sizes are stat-visible)
    assert doc["summary"] == {"files": 2, "dirs": 2, "length": 110, "space": 4 * 4096, "unreadable": 1}
    full = await inode_info(m, t.pub, ctx=ROOT)
    assert full["summary"] == {"files": 3, "dirs": 2, "length": 110 + (1 << 20), "space": 4 * 4096 + (1 << 20),
                               "unreadable": 0}
    whole = await inode_info(m, ROOT_INODE, ctx=ALICE)
    assert whole["summary"]["unreadable"] == 2  # /priv and /pub/closed
    assert (await inode_info(m, ROOT_INODE, ctx=ROOT))["summary"]["unreadable"] == 0


async def test_info_of_a_readable_but_not_searchable_directory(m: Meta) -> None:
    d = await _dir(m, ROOT_INODE, b"listonly", 0o744)
    await _file(m, d, b"f", 0o644, 10)
    doc = await inode_info(m, d, ctx=ALICE)
    assert doc["summary"] == {"files": 0, "dirs": 1, "length": 0, "space": 4096, "unreadable": 1}


# ------------------------------------------------------------------ summary


async def test_summary_refuses_what_the_caller_may_not_list(m: Meta) -> None:
    t = await _tree(m)
    for ino in (t.priv, t.priv_sub, t.closed, t.priv_a):
        with pytest.raises(PermissionError):
            await summary_tree(m, ino, "x", ctx=ALICE)
    doc = await summary_tree(m, t.priv, "priv", ctx=ROOT)
    assert {c["name"] for c in doc["children"]} == {"private-a", "private-b", "private-sub"}
    assert (doc["files"], doc["dirs"], doc["unreadable"]) == (2, 2, 0)


async def test_summary_reports_an_unreadable_subtree_and_counts_the_rest(m: Meta) -> None:
    t = await _tree(m)
    doc = await summary_tree(m, t.pub, "pub", ctx=ALICE)
    assert (doc["files"], doc["dirs"], doc["length"], doc["unreadable"]) == (2, 2, 110, 1)
    closed = next(c for c in doc["children"] if c["name"] == "closed")
    assert closed["denied"] is True and closed["unreadable"] == 1 and "children" not in closed
    assert (closed["files"], closed["dirs"], closed["length"]) == (0, 1, 0)
    assert _leaks(doc, "hidden-name") == []
    assert {c["name"] for c in doc["children"]} == {"open", "closed", "pubsecret"}
    root_doc = await summary_tree(m, t.pub, "pub", ctx=ROOT)
    assert (root_doc["files"], root_doc["length"], root_doc["unreadable"]) == (3, 110 + (1 << 20), 0)
    assert _leaks(root_doc, "hidden-name") == ["hidden-name"]
    top = await summary_tree(m, ROOT_INODE, "/", ctx=ALICE, depth=3, entries=0)
    assert top["unreadable"] == 2
    assert _leaks(top, "private-a", "private-b", "private-sub", "hidden-name") == []
    assert {c["name"]: c.get("denied", False) for c in top["children"]} == {
        "priv": True, "secret": False, "pub": False, "mine": False}
    assert next(c for c in top["children"] if c["name"] == "mine")["files"] == 1  # alice's own
    folded = await summary_tree(m, ROOT_INODE, "/", ctx=ALICE, depth=1, entries=1)
    assert folded["children"][-1]["name"] == "..." and sum(c["unreadable"] for c in folded["children"]) == 2


async def test_summary_of_a_file_needs_only_a_path(m: Meta) -> None:
    t = await _tree(m)
    assert (await summary_tree(m, t.secret, "secret", ctx=ALICE))["length"] == 9000  # ls -l tells as much
    with pytest.raises(PermissionError):
        await summary_tree(m, t.priv_b, "private-b", ctx=ALICE)


# ------------------------------------------------------------------ warmup


class _Fetcher:
    block_size = 4 << 20

    def __init__(self) -> None:
        self.warmed: list[int] = []

    async def warm(self, slice_id: int, size: int, index: int) -> None:
        self.warmed.append(slice_id)


async def _slices(m: Meta, *inos: int) -> set[int]:
    return {r.id for ino in inos for r in await m.read_chunk(ino, 0)}


async def test_warmup_loads_only_what_the_caller_may_read(m: Meta) -> None:
    t = await _tree(m)
    fetcher = _Fetcher()
    data: Any = SimpleNamespace(fetcher=fetcher)
    for named in ([t.secret], [t.priv], [t.priv_a], [t.closed_f], [t.pub_f, t.secret]):
        with pytest.raises(PermissionError):
            await warmup(m, data, named, ctx=ALICE)
    assert fetcher.warmed == []  # a refused request loads nothing, not even its readable part
    doc = await warmup(m, data, [t.pub], ctx=ALICE)
    assert (doc["files"], doc["denied"], doc["errors"]) == (1, 2, 0)  # "closed" and "pubsecret" skipped
    assert set(fetcher.warmed) == await _slices(m, t.pub_f)
    fetcher.warmed.clear()
    doc = await warmup(m, data, [t.mine, t.pub_f, 424242], ctx=ALICE)
    assert (doc["files"], doc["denied"], doc["errors"]) == (2, 0, 1)
    assert set(fetcher.warmed) == await _slices(m, t.mine_f, t.pub_f)
    fetcher.warmed.clear()
    doc = await warmup(m, data, [ROOT_INODE], ctx=ROOT)
    assert (doc["files"], doc["denied"]) == (7, 0)
    assert set(fetcher.warmed) == await _slices(m, t.priv_a, t.priv_b, t.secret, t.pub_f, t.closed_f, t.pub_secret,
                                                t.mine_f)


# ------------------------------------------------------------------ rmr


async def test_rmr_needs_a_path_to_the_parent_it_names(m: Meta) -> None:
    t = await _tree(m)
    inside = await _dir(m, t.priv_sub, b"victim", 0o777)  # everything writable, but behind /priv (0700)
    with pytest.raises(PermissionError):
        await remove_tree(m, t.priv_sub, b"victim", ctx=ALICE)
    assert (await m.getattr(inside)).nlink == 2
    assert (await remove_tree(m, t.priv_sub, b"victim", ctx=ROOT))["dirs"] == 1

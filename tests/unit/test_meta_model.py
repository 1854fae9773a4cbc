"""Model-based test of the metadata engine: random namespace operations on the memory engine, checked
against a small in-memory model of a POSIX tree after every step (names, types, nlink, parents)."""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from jfs.adapters.kv.memory import open_memory
from jfs.app.meta import Meta
from jfs.app.meta.engine import format_meta
from jfs.app.meta.rename import RENAME_EXCHANGE, RENAME_NOREPLACE
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.settings import Settings

NAMES = st.sampled_from([b"a", b"b", b"c", b"\xff", b"d d"])


@dataclass
class Node:
    ino: int
    is_dir: bool
    children: dict[bytes, Node] = field(default_factory=dict)


class MetaModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.meta = self.loop.run_until_complete(self._setup())
        self.root = Node(ROOT_INODE, True)

    async def _setup(self) -> Meta:
        kv = await open_memory("memory://")
        await format_meta(kv, Settings(name="model", trash_days=0))
        m = await Meta.load(kv)
        await m.start_session(background=False)
        return m

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.meta.close())
        self.loop.close()

    def dirs(self) -> list[Node]:
        out, stack = [], [self.root]
        while stack:
            n = stack.pop()
            out.append(n)
            stack.extend(c for c in n.children.values() if c.is_dir)
        return out

    def pick_dir(self, i: int) -> Node:
        ds = sorted(self.dirs(), key=lambda n: n.ino)
        return ds[i % len(ds)]

    def expect(self, coro, code: int | None):  # type: ignore[no-untyped-def]
        try:
            result = self.run(coro)
        except OSError as exc:
            assert code is not None, f"unexpected {exc}"
            assert exc.errno == code, f"expected errno {code}, got {exc}"
            return None
        assert code is None, f"expected errno {code}, got success"
        return result

    @rule(d=st.integers(0, 50), name=NAMES)
    def mkdir(self, d: int, name: bytes) -> None:
        parent = self.pick_dir(d)
        res = self.expect(self.meta.mkdir(parent.ino, name, 0o755), errno.EEXIST if name in parent.children else None)
        if res:
            parent.children[name] = Node(res[0], True)

    @rule(d=st.integers(0, 50), name=NAMES)
    def create(self, d: int, name: bytes) -> None:
        parent = self.pick_dir(d)
        res = self.expect(self.meta.mknod(parent.ino, name, FileType.REGULAR, 0o644),
                          errno.EEXIST if name in parent.children else None)
        if res:
            parent.children[name] = Node(res[0], False)

    @rule(d=st.integers(0, 50), name=NAMES)
    def unlink(self, d: int, name: bytes) -> None:
        parent = self.pick_dir(d)
        child = parent.children.get(name)
        code = errno.ENOENT if child is None else (errno.EISDIR if child.is_dir else None)
        self.expect(self.meta.unlink(parent.ino, name), code)
        if code is None:
            del parent.children[name]

    @rule(d=st.integers(0, 50), name=NAMES)
    def rmdir(self, d: int, name: bytes) -> None:
        parent = self.pick_dir(d)
        child = parent.children.get(name)
        if child is None:
            code: int | None = errno.ENOENT
        elif not child.is_dir:
            code = errno.ENOTDIR
        elif child.children:
            code = errno.ENOTEMPTY
        else:
            code = None
        self.expect(self.meta.rmdir(parent.ino, name), code)
        if code is None:
            del parent.children[name]

    @rule(s=st.integers(0, 50), d=st.integers(0, 50), sname=NAMES, dname=NAMES)
    def link(self, s: int, d: int, sname: bytes, dname: bytes) -> None:
        sp, dp = self.pick_dir(s), self.pick_dir(d)
        src = sp.children.get(sname)
        if src is None or src.is_dir:
            return
        code = errno.EEXIST if dname in dp.children else None
        self.expect(self.meta.link(src.ino, dp.ino, dname), code)
        if code is None:
            dp.children[dname] = src

    def is_ancestor(self, a: Node, b: Node) -> bool:
        """Whether directory a is b or contains b."""
        if a is b:
            return True
        return any(c.is_dir and self.is_ancestor(c, b) for c in a.children.values())

    @rule(s=st.integers(0, 50), d=st.integers(0, 50), sname=NAMES, dname=NAMES,
          flags=st.sampled_from([0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE]))
    def rename(self, s: int, d: int, sname: bytes, dname: bytes, flags: int) -> None:
        sp, dp = self.pick_dir(s), self.pick_dir(d)
        src = sp.children.get(sname)
        dst = dp.children.get(dname)
        code: int | None = None
        if src is None:
            code = errno.ENOENT
        elif dst is src:
            code = None
        elif flags == RENAME_NOREPLACE and dst is not None:
            code = errno.EEXIST
        elif flags == RENAME_EXCHANGE:
            if dst is None:
                code = errno.ENOENT
            elif (src.is_dir and self.is_ancestor(src, dp)) or (dst.is_dir and self.is_ancestor(dst, sp)):
                code = errno.EINVAL
        else:  # Linux's order: into its own subtree first, then the target's type, then its contents
            if src.is_dir and self.is_ancestor(src, dp):
                code = errno.EINVAL
            elif dst is not None and src.is_dir and not dst.is_dir:
                code = errno.ENOTDIR
            elif dst is not None and not src.is_dir and dst.is_dir:
                code = errno.EISDIR
            elif dst is not None and dst.is_dir and dst.children:
                code = errno.ENOTEMPTY
        self.expect(self.meta.rename(sp.ino, sname, dp.ino, dname, flags), code)
        if code is not None or dst is src:
            return
        if flags == RENAME_EXCHANGE:
            assert dst is not None
            sp.children[sname], dp.children[dname] = dst, src
        else:
            del sp.children[sname]
            dp.children[dname] = src

    @invariant()
    def tree_matches(self) -> None:
        links: dict[int, int] = {}
        for d in self.dirs():
            names = [e.name for e in self.run(self._list(d.ino))]
            assert names == sorted(d.children), (d.ino, names, sorted(d.children))
            subdirs = sum(1 for c in d.children.values() if c.is_dir)
            attr = self.run(self.meta.getattr(d.ino))
            assert attr.nlink == 2 + subdirs, (d.ino, attr.nlink, subdirs)
            for name, c in d.children.items():
                ino, _ = self.run(self.meta.lookup(d.ino, name))
                assert ino == c.ino
                if c.is_dir:
                    assert self.run(self.meta.getattr(c.ino)).parent == d.ino
                else:
                    links[c.ino] = links.get(c.ino, 0) + 1
        for ino, n in links.items():
            assert self.run(self.meta.getattr(ino)).nlink == n

    async def _list(self, ino: int):  # type: ignore[no-untyped-def]
        return [e async for e in self.meta.readdir(ino)]


TestMetaModel = MetaModel.TestCase
TestMetaModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)

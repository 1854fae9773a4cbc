"""`jfs mdtest`: a metadata benchmark straight on the engine of a live volume (no FUSE, no data).

Like ``juicefs mdtest`` it builds, under a new directory PATH of the volume, the tree
``PATH/test-dir.0-0/mdtest_tree.0/mdtest_tree.<i>/…`` — `dirs` subdirectories per level, `depth` levels
below ``mdtest_tree.0`` — and puts `files` empty files in every directory of it. It then times, with
`threads` concurrent asyncio workers sharing one queue of operations, the phases:

  mkdir (the tree, level by level), create (mknod of regular files), stat (lookup: name → attributes),
  readdir (every directory, with attributes), rename (each file, in its directory), unlink, rmdir (the
  tree, deepest level first)

and reports operations per second and the mean latency of each. It is a regular client of the volume:
it registers a session (with a heartbeat, and background jobs unless `background` is off) and ends it.
Everything it created is removed — also what its unlink phase moved to the trash, and trash hour
directories that appeared only because of it — so the volume is left as it was (same entries, same used
inodes and space).
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from jfs.app.errors import MdtestError
from jfs.app.meta import Meta
from jfs.app.meta.context import ROOT_CTX, Ctx
from jfs.app.meta.trash import hour_name
from jfs.app.progress import ProgressBar, ProgressBoard, QuietBoard
from jfs.domain.attrs import ROOT_INODE, FileType
from jfs.domain.errors import FSError

T = TypeVar("T")
DIR_MODE = 0o755
FILE_MODE = 0o644


@dataclass(frozen=True)
class MdtestConfig:
    dirs: int = 3
    depth: int = 2
    files: int = 100
    """Files per directory of the tree."""
    threads: int = 16
    path: str = ""
    """Where in the volume (absolute); default ``/mdtest-<unix time>``."""
    background: bool = True


@dataclass
class Phase:
    name: str
    ops: int
    seconds: float
    latency_ms: float
    entries: int = 0
    """readdir: entries listed."""

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0


@dataclass
class MdtestReport:
    volume: str
    engine: str
    path: str
    config: MdtestConfig
    sid: int = 0
    tree_dirs: int = 0
    tree_files: int = 0
    phases: list[Phase] = field(default_factory=list)
    cleanup: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["phases"] = [{**asdict(p), "ops_per_s": p.ops_per_s} for p in self.phases]
        return doc


async def run_pool(
    items: Sequence[T], workers: int, op: Callable[[T], Awaitable[object]], advance: Callable[[int], None] | None = None
) -> tuple[float, float]:
    """Run ``op(item)`` for every item with `workers` concurrent tasks taking the next item as they
    finish one; returns (wall seconds, summed seconds of the operations). An error stops every worker."""
    it = iter(items)
    busy = 0.0
    clock = time.perf_counter

    async def worker() -> None:
        nonlocal busy
        for item in it:
            t = clock()
            await op(item)
            busy += clock() - t
            if advance is not None:
                advance(1)

    start = clock()
    tasks = [asyncio.ensure_future(worker()) for _ in range(max(1, min(workers, len(items))))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return clock() - start, busy


# ---------------------------------------------------------------------------------------------- tree


@dataclass
class _Tree:
    """The directories of the test tree, parents before children: name, parent index (-1: the
    test-dir.0-0 directory) and level."""

    names: list[bytes] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    levels: list[list[int]] = field(default_factory=list)
    inos: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, width: int, depth: int) -> _Tree:
        t = cls()
        t.names.append(b"mdtest_tree.0")
        t.parents.append(-1)
        t.levels.append([0])
        for _ in range(depth):
            level = []
            for parent in t.levels[-1]:
                for i in range(width):
                    t.names.append(b"mdtest_tree.%d" % i)
                    t.parents.append(parent)
                    level.append(len(t.names) - 1)
            t.levels.append(level)
        t.inos = [0] * len(t.names)
        return t


def _file(i: int) -> bytes:
    return b"file.mdtest.%d" % i


def _renamed(i: int) -> bytes:
    return b"file.mdtest.%d.renamed" % i


async def _resolve_parent(meta: Meta, path: str, ctx: Ctx) -> tuple[int, bytes]:
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise MdtestError("the test path cannot be the root of the volume")
    ino = ROOT_INODE
    for i, part in enumerate(parts[:-1]):
        try:
            ino, attr = await meta.lookup(ino, part.encode(), ctx)
        except FSError as exc:
            raise MdtestError(f"{'/' + '/'.join(parts[: i + 1])}: {os.strerror(exc.errno or errno.EIO)}") from None
        if attr.typ is not FileType.DIRECTORY:
            raise MdtestError(f"{'/' + '/'.join(parts[: i + 1])} is not a directory")
    return ino, parts[-1].encode()


# ---------------------------------------------------------------------------------------------- run


class _Run:
    def __init__(self, meta: Meta, cfg: MdtestConfig, ctx: Ctx, progress: ProgressBoard) -> None:
        self.meta = meta
        self.cfg = cfg
        self.ctx = ctx
        self.progress = progress
        self.tree = _Tree.build(cfg.dirs, cfg.depth)
        self.top = 0  # PATH
        self.testdir = 0  # PATH/test-dir.0-0
        self.phases: list[Phase] = []
        self.created: set[int] = set()
        """Every directory made by this run (its files' trash entries are named after them)."""

    def _parent(self, k: int) -> int:
        p = self.tree.parents[k]
        return self.testdir if p < 0 else self.tree.inos[p]

    async def phase(self, name: str, items: Sequence[T], op: Callable[[T], Awaitable[object]],
                    groups: Sequence[Sequence[T]] | None = None) -> Phase:
        """Time `op` over `items` (or over each of `groups` in turn: tree levels) as one phase (one bar)."""
        bar: ProgressBar = self.progress.bar(name, len(items), unit="ops")
        wall = busy = 0.0
        try:
            for group in groups if groups is not None else [items]:
                w, b = await run_pool(group, self.cfg.threads, op, bar.advance)
                wall += w
                busy += b
        finally:
            bar.close()
        p = Phase(name, len(items), wall, busy * 1000 / len(items) if items else 0.0)
        self.phases.append(p)
        return p

    async def run(self) -> None:
        m, ctx, tree, files = self.meta, self.ctx, self.tree, self.cfg.files
        ndirs = len(tree.names)

        async def mkdir(k: int) -> None:
            tree.inos[k], _ = await m.mkdir(self._parent(k), tree.names[k], DIR_MODE, ctx)
            self.created.add(tree.inos[k])

        all_dirs = list(range(ndirs))
        await self.phase("mkdir", all_dirs, mkdir, groups=tree.levels)

        # Files: round-robin over the directories, so that concurrent workers spread over the tree.
        entries = [(k, i) for i in range(files) for k in range(ndirs)]

        async def create(e: tuple[int, int]) -> None:
            await m.mknod(tree.inos[e[0]], _file(e[1]), FileType.REGULAR, FILE_MODE, ctx)

        async def stat(e: tuple[int, int]) -> None:
            await m.lookup(tree.inos[e[0]], _file(e[1]), ctx)

        listed = 0

        async def readdir(k: int) -> None:
            nonlocal listed
            async for _ in m.readdir(tree.inos[k], ctx, plus=True):
                listed += 1

        async def rename(e: tuple[int, int]) -> None:
            d = tree.inos[e[0]]
            await m.rename(d, _file(e[1]), d, _renamed(e[1]), 0, ctx)

        async def unlink(e: tuple[int, int]) -> None:
            await m.unlink(tree.inos[e[0]], _renamed(e[1]), ctx)

        async def rmdir(k: int) -> None:
            await m.rmdir(self._parent(k), tree.names[k], ctx)

        await self.phase("create", entries, create)
        await self.phase("stat", entries, stat)
        p = await self.phase("readdir", all_dirs, readdir)
        p.entries = listed
        await self.phase("rename", entries, rename)
        await self.phase("unlink", entries, unlink)
        await self.phase("rmdir", all_dirs, rmdir, groups=list(reversed(tree.levels)))

    async def purge_trash(self, hours_before: set[bytes], since: bytes) -> dict[str, int]:
        """Delete what this run moved to the trash (in hour directories from `since` on), and the hour
        directories it made appear."""
        from jfs.app.meta.trash import hour_dirs, parse_entry_name
        from jfs.app.meta.trash_purge import remove_hour_dir

        ours = self.created
        purged = hours = 0
        for name, hour_ino in await hour_dirs(self.meta.kv):
            if name < since:
                continue
            victims: list[bytes] = []
            dirs: list[bytes] = []
            async for e in self.meta.readdir(hour_ino):
                parsed = parse_entry_name(e.name)
                if parsed is not None and (parsed[0] in ours or parsed[1] in ours):
                    (dirs if e.typ is FileType.DIRECTORY else victims).append(e.name)

            async def drop(entry: bytes, hour_ino: int = hour_ino) -> None:
                try:
                    await self.meta.unlink(hour_ino, entry, ROOT_CTX)
                except FSError as exc:
                    if exc.errno != errno.ENOENT:  # purged by a trash job meanwhile
                        raise

            async def drop_dir(entry: bytes, hour_ino: int = hour_ino) -> None:
                try:  # (each went to the trash empty: its files and subdirectories lie beside it)
                    await self.meta.rmdir(hour_ino, entry, ROOT_CTX)
                except FSError as exc:
                    if exc.errno != errno.ENOENT:
                        raise

            await run_pool(victims, self.cfg.threads, drop)
            await run_pool(dirs, self.cfg.threads, drop_dir)
            purged += len(victims) + len(dirs)
            if name not in hours_before and await remove_hour_dir(self.meta, name, hour_ino):
                hours += 1
        return {"trash_entries": purged, "trash_hours": hours}


async def _trash_hours(meta: Meta) -> set[bytes]:
    from jfs.app.meta.trash import hour_dirs

    return {name for name, _ in await hour_dirs(meta.kv)}


def check_config(cfg: MdtestConfig) -> None:
    """MdtestError for settings the benchmark cannot run with (checked before the volume is opened)."""
    if cfg.dirs < 1 or cfg.depth < 0 or cfg.files < 0 or cfg.threads < 1:
        raise MdtestError("--dirs and --threads must be at least 1, --depth and --files at least 0")
    if cfg.path and not cfg.path.startswith("/"):
        raise MdtestError("the test path must be absolute inside the volume (start with '/')")


async def run_mdtest(meta: Meta, cfg: MdtestConfig, progress: ProgressBoard | None = None,
                     *, ctx: Ctx | None = None) -> MdtestReport:
    """Run the benchmark on the volume of `meta` (loaded, without a session: the run starts its own and
    ends it); see the module docstring. Progress: one bar per phase on `progress`."""
    check_config(cfg)
    path = cfg.path or f"/mdtest-{int(time.time())}"
    if ctx is None:
        ctx = Ctx(uid=os.getuid(), gid=os.getgid(), groups=frozenset(os.getgroups()), pid=os.getpid(),
                  umask=0o022)
    report = MdtestReport(volume=meta.settings.name, engine=meta.kv.url, path=path, config=cfg)
    await meta.start_session(f"mdtest:{path}", background=cfg.background)
    report.sid = meta.sid
    try:
        run = _Run(meta, cfg, ctx, progress or QuietBoard())
        report.tree_dirs = len(run.tree.names)
        report.tree_files = report.tree_dirs * cfg.files
        parent, name = await _resolve_parent(meta, path, ctx)
        hours_before = await _trash_hours(meta)
        since = hour_name(time.time_ns())
        try:
            run.top, _ = await meta.mkdir(parent, name, DIR_MODE, ctx)
        except FSError as exc:
            raise MdtestError(f"cannot create {path}: {os.strerror(exc.errno or errno.EIO)}") from None
        run.created.add(run.top)
        try:
            run.testdir, _ = await meta.mkdir(run.top, b"test-dir.0-0", DIR_MODE, ctx)
            run.created.add(run.testdir)
            await run.run()
        finally:  # also after a failure or an interrupt: leave nothing behind
            await _remove_quietly(meta, run.top, b"test-dir.0-0")
            await _remove_quietly(meta, parent, name)
            report.cleanup = await run.purge_trash(hours_before, since)
        report.phases = run.phases
        return report
    finally:
        await meta.close()


async def _remove_quietly(meta: Meta, parent: int, name: bytes) -> None:
    """Remove the directory `name` of `parent` with whatever is left in it (nothing when all went well)."""
    from jfs.app import tree_jobs

    try:
        await meta.rmdir(parent, name, ROOT_CTX)
    except FSError as exc:
        if exc.errno == errno.ENOENT:
            return
        if exc.errno != errno.ENOTEMPTY:
            raise
        await tree_jobs.remove_tree(meta, parent, name)


__all__ = ["MdtestConfig", "MdtestError", "MdtestReport", "Phase", "check_config", "run_mdtest", "run_pool"]

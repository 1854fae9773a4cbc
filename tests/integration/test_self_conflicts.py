"""One client's transactions do not conflict with each other (issue 11, item 13).

On an optimistic engine (Redis: reads are validated at commit, ADR 0002) two transactions of ONE client
that touch the same records race exactly like two clients would, and the loser retries with back-off.
`Meta.txn` queues a client's own transactions on the inodes they touch instead; these tests run many
concurrent changes of one file's chunk through one `Meta` — slice commits, compaction swaps, truncates,
punched holes, copies — and require that not a single try conflicted (`RESTARTS` counts every retry).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest

from jfs.adapters.kv.registry import open_kv
from jfs.app.meta.chunks import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE
from jfs.app.meta.engine import Meta, format_meta
from jfs.domain import keys
from jfs.domain.compaction import plan
from jfs.domain.records import decode_i64
from jfs.domain.settings import Settings
from jfs.domain.slices import resolve
from jfs.ports.kv import RESTARTS
from jfs.testing.plugin import redis_server, redis_server_url  # noqa: F401  (fixtures)

KIB = 1024


async def _open_meta(request: pytest.FixtureRequest, engine: str) -> Meta:
    if engine == "redis":
        kv = await open_kv(f"{request.getfixturevalue('redis_server_url')}/7")
        await kv.reset()
    else:
        kv = await open_kv(f"memory://self-conflicts-{uuid.uuid4().hex}")
    await format_meta(kv, Settings(name="self", trash_days=0))
    m = await Meta.load(kv)
    await m.start_session(background=False)
    return m


@pytest.fixture
async def redis_meta(request: pytest.FixtureRequest) -> AsyncIterator[Meta]:
    """A client on the real redis-server: the optimistic engine of issue 11 (the memory engine also
    makes read-only bodies conflict, which is not what is tested here)."""
    m = await _open_meta(request, "redis")
    try:
        yield m
    finally:
        await m.close()
        await m.kv.close()


@pytest.fixture(params=["redis", "memory"])
async def meta(request: pytest.FixtureRequest) -> AsyncIterator[Meta]:
    m = await _open_meta(request, request.param)
    try:
        yield m
    finally:
        await m.close()
        await m.kv.close()


async def _refs(m: Meta, sid: int, size: int) -> int | None:
    async def body(tx):  # type: ignore[no-untyped-def]
        return await tx.get(keys.slice_ref(sid, size))

    raw = await m.kv.read(body)
    return None if raw is None else decode_i64(raw)


async def test_one_clients_changes_of_one_chunk_never_conflict(redis_meta: Meta) -> None:
    m = redis_meta
    ino, _ = await m.create(1, b"f", 0o644)
    other, _ = await m.create(1, b"g", 0o644)
    rng = random.Random(7)
    stop = asyncio.Event()
    compactions = 0

    async def write(n: int) -> None:
        for _ in range(n):
            size = rng.randint(1, 64) * KIB
            pos = rng.randrange(0, 1024 * KIB)
            await m.write_slice(ino, 0, pos, await m.next_slice_id(), size, 0, size)
            await asyncio.sleep(0)

    async def compact() -> None:
        nonlocal compactions
        while not stop.is_set():
            p = plan(await m.read_chunk(ino, 0))
            if p is None:
                await asyncio.sleep(0.001)
                continue
            new_id = await m.next_slice_id() if p.writes_slice else 0
            if await m.compact_swap(ino, 0, p, new_id) is not None:
                compactions += 1

    async def reshape() -> None:
        for i in range(20):
            if i % 3 == 0:
                await m.truncate(ino, rng.randrange(256 * KIB, 1024 * KIB))
            elif i % 3 == 1:
                await m.fallocate(ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, rng.randrange(0, 512 * KIB), 8 * KIB)
            else:
                await m.copy_file_range(ino, 0, other, rng.randrange(0, 512 * KIB), 64 * KIB)
            await asyncio.sleep(0.002)

    async def writers() -> None:
        await asyncio.gather(*(write(60) for _ in range(4)), reshape())
        stop.set()

    before = RESTARTS.total
    await asyncio.wait_for(asyncio.gather(writers(), compact(), compact()), 120)
    restarts = RESTARTS.total - before
    assert compactions > 5  # the swaps really raced the commits
    assert restarts == 0, f"{restarts} conflict retries within one client: {RESTARTS.by_name}"

    # The chunk is still coherent: every slice it names is referenced (a compaction released what it replaced).
    records = await m.read_chunk(ino, 0)
    for piece in resolve(records):
        if piece.id:
            refs = await _refs(m, piece.id, piece.size)
            assert refs is None or refs >= 0, (piece, refs)


async def test_releasing_many_slices_reads_their_records_in_one_round(meta: Meta) -> None:
    """A truncate dropping many slices (or a swap consuming many records) costs one read round for all
    their reference records; each occurrence of a slice still drops one reference."""
    m = meta
    ino, _ = await m.create(1, b"many", 0o644)
    other, _ = await m.create(1, b"copy", 0o644)
    for i in range(40):
        await m.write_slice(ino, 0, i * 4 * KIB, await m.next_slice_id(), 4 * KIB, 0, 4 * KIB)
    await m.copy_file_range(ino, 0, other, 0, 40 * 4 * KIB)  # every slice now has two references
    rounds = 0
    real_txn = m.kv.txn

    async def counting_txn(body, **kw):  # type: ignore[no-untyped-def]
        async def counted(tx):  # type: ignore[no-untyped-def]
            class Counting:
                def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
                    attr = getattr(tx, name)
                    if name in ("get", "get_many", "scan", "incr_by"):
                        async def call(*a, **k):  # type: ignore[no-untyped-def]
                            nonlocal rounds
                            rounds += 1
                            return await attr(*a, **k)

                        return call
                    return attr

            return await body(Counting())

        return await real_txn(counted, **kw)

    m.kv.txn = counting_txn  # type: ignore[method-assign]
    try:
        await m.truncate(ino, 0)
    finally:
        del m.kv.txn
    assert rounds <= 4, rounds  # attr, scan of the chunks, ONE get_many of the 40 reference records
    records = await m.read_chunk(other, 0)
    assert {await _refs(m, r.id, r.size) for r in records} == {None}  # one reference left each

"""The data path against a reference file: random writes, overwrites, truncates, fallocate and reads at
block and chunk boundaries, compared byte for byte with a real local file — also after a restart of the
client (cold cache) and after compaction. Runs on SQLite + file storage and on Redis + SeaweedFS S3.

Plus the object-store fault test: with injected put/get failures, data is never lost or corrupted —
writes succeed after retries or report EIO to the writer, reads retry or report EIO, never wrong bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import random
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jfs.adapters.kv.registry import open_kv
from jfs.adapters.objects.faulty import FaultyStore
from jfs.adapters.objects.file import FileStore
from jfs.adapters.objects.registry import open_store
from jfs.app.data.files import Handle
from jfs.app.meta.chunks import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE
from jfs.domain.chunks import CHUNK_SIZE
from jfs.domain.compaction import plan
from jfs.ports.kv import KV
from jfs.ports.objects import ObjectStore
from jfs.testing.data_harness import DataVolume
from jfs.testing.object_fixtures import seaweed_s3  # noqa: F401  (fixture)
from jfs.testing.plugin import redis_server, redis_server_url  # noqa: F401  (fixtures)
from jfs.testing.seaweed import SeaweedS3

BS = 64 << 10
ANCHORS = [0, 1, BS - 1, BS, BS + 1, 2 * BS, 3 * BS - 7, 5 * BS]
FAR_ANCHORS = [
    CHUNK_SIZE - BS,
    CHUNK_SIZE - 3000,
    CHUNK_SIZE - 1,
    CHUNK_SIZE,
    CHUNK_SIZE + 1,
    CHUNK_SIZE + 3000,
]
_names = itertools.count()


# ------------------------------------------------------------------------------------------ backends


@dataclass
class Backend:
    """Where a test volume lives: a fresh KV per volume and a store opener (same bucket on every call)."""

    name: str
    new_kv: Callable[[], Awaitable[KV]]
    open_store: Callable[[], Awaitable[ObjectStore]]


@contextlib.contextmanager
def _sqlite_file_backend() -> Iterator[Backend]:
    root = Path(tempfile.mkdtemp(prefix="jfs-data-it-"))
    bucket = root / "bucket"
    bucket.mkdir()

    async def new_kv() -> KV:
        return await open_kv(f"sqlite3://{root}/meta-{next(_names)}.db")

    async def store() -> ObjectStore:
        # No fsync: durability is not under test, and compacting sparse chunks writes many zero blocks.
        return FileStore(f"{bucket}/", fsync=False)

    try:
        yield Backend("sqlite+file", new_kv, store)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _redis_s3_backend(redis_url: str, server: SeaweedS3) -> Iterator[Backend]:
    import redis

    bucket = f"data-it-{os.urandom(4).hex()}"
    server.client().create_bucket(Bucket=bucket)
    base = redis_url.rstrip("/").rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url.rstrip("/")

    async def new_kv() -> KV:
        url = f"{base}/{9 + next(_names) % 6}"
        redis.Redis.from_url(url).flushdb()
        return await open_kv(url)

    async def store() -> ObjectStore:
        return await open_store(
            "s3", f"{server.endpoint}/{bucket}", access_key=server.access_key, secret_key=server.secret_key
        )

    yield Backend("redis+s3", new_kv, store)


@pytest.fixture(params=["sqlite+file", "redis+s3"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite+file":
        with _sqlite_file_backend() as b:
            yield b
    else:
        url = str(request.getfixturevalue("redis_server_url"))
        server: SeaweedS3 = request.getfixturevalue("seaweed_s3")
        with _redis_s3_backend(url, server) as b:
            yield b


# ------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Write:
    off: int
    size: int
    seed: int


@dataclass(frozen=True)
class Truncate:
    length: int


@dataclass(frozen=True)
class Fallocate:
    mode: int
    off: int
    size: int


@dataclass(frozen=True)
class Read:
    off: int
    size: int


@dataclass(frozen=True)
class Flush:
    pass


@dataclass(frozen=True)
class Compact:
    pass


@dataclass(frozen=True)
class Restart:
    pass


Op = Write | Truncate | Fallocate | Read | Flush | Compact | Restart


def _offsets(far: bool) -> st.SearchStrategy[int]:
    anchors = ANCHORS + FAR_ANCHORS if far else ANCHORS
    return st.builds(lambda a, d: max(0, a + d), st.sampled_from(anchors), st.integers(-300, 300))


_sizes = st.one_of(st.integers(1, 300), st.integers(1, 3 * BS), st.sampled_from([BS, BS - 1, BS + 1]))
_offs = st.one_of(_offsets(False), _offsets(False), _offsets(True))
_modes = st.sampled_from([FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE, 0])
_KINDS: dict[str, tuple[int, st.SearchStrategy[Op]]] = {
    "write": (8, st.builds(Write, _offs, _sizes, st.integers(0, 2**32))),
    "read": (5, st.builds(Read, _offs, _sizes)),
    "truncate": (2, st.builds(Truncate, _offs)),
    "fallocate": (2, st.builds(Fallocate, _modes, _offs, _sizes)),
    "flush": (2, st.just(Flush())),
    "compact": (1, st.just(Compact())),
    "restart": (1, st.just(Restart())),
}
OPS: st.SearchStrategy[Op] = st.sampled_from([k for k, (w, _) in _KINDS.items() for _ in range(w)]).flatmap(
    lambda kind: _KINDS[kind][1]
)


def _data(w: Write) -> bytes:
    return random.Random(w.seed).randbytes(w.size)


class Reference:
    """The expected file: a real sparse temp file driven with pwrite/ftruncate."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.touched: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def _zero(self, off: int, end: int) -> None:
        end = min(end, self.size)
        if end > off:
            os.pwrite(self.fd, bytes(end - off), off)

    def apply(self, op: Op) -> None:
        if isinstance(op, Write):
            os.pwrite(self.fd, _data(op), op.off)
            self.touched.append((op.off, op.off + op.size))
        elif isinstance(op, Truncate):
            os.ftruncate(self.fd, op.length)
            self.touched.append((op.length, op.length))
        elif isinstance(op, Fallocate):
            end = op.off + op.size
            if op.mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
                self._zero(op.off, end)
            if not op.mode & FALLOC_FL_KEEP_SIZE and end > self.size:
                os.ftruncate(self.fd, end)
            self.touched.append((op.off, end))

    def read(self, off: int, size: int) -> bytes:
        return os.pread(self.fd, size, off)

    def windows(self) -> list[tuple[int, int]]:
        """Ranges worth comparing: around everything touched, and the end of the file (merged)."""
        size = self.size
        spans = sorted((max(0, a - BS), min(size, b + BS)) for a, b in [*self.touched, (size, size), (0, 0)])
        merged: list[tuple[int, int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            elif b > a:
                merged.append((a, b))
        return merged

    def close(self) -> None:
        os.close(self.fd)


class Driver:
    """Applies ops to a volume and to the reference, checking every read."""

    def __init__(self, vol: DataVolume, ino: int, ref: Reference, tmp: Path) -> None:
        self.vol = vol
        self.ino = ino
        self.ref = ref
        self.tmp = tmp
        self.h: Handle | None = None
        self.restarts = 0

    async def handle(self) -> Handle:
        if self.h is None:
            self.h = await self.vol.dp.open(self.ino, os.O_RDWR)
        return self.h

    async def run(self, op: Op) -> None:
        dp = self.vol.dp
        if isinstance(op, Write):
            await dp.write(await self.handle(), op.off, _data(op))
        elif isinstance(op, Truncate):
            await dp.truncate(self.ino, op.length)
        elif isinstance(op, Fallocate):
            await dp.fallocate(self.ino, op.mode, op.off, op.size)
        elif isinstance(op, Read):
            got = await dp.read(await self.handle(), op.off, op.size)
            assert got == self.ref.read(op.off, op.size), f"read {op} differs"
        elif isinstance(op, Flush):
            await dp.flush(await self.handle())
        elif isinstance(op, Compact):
            await dp.compact(self.ino)
        elif isinstance(op, Restart):
            await self.restart()
        self.ref.apply(op)

    async def restart(self) -> None:
        if self.h is not None:
            await self.vol.dp.release(self.h)
            self.h = None
        self.restarts += 1
        await self.vol.restart(cache_dir=str(self.tmp / f"cache-{self.restarts}"))

    async def verify(self, what: str) -> None:
        h = await self.handle()
        size = self.ref.size
        assert self.vol.dp.file_length(self.ino) == size, what
        await self.vol.dp.flush(h)
        assert (await self.vol.meta.getattr(self.ino)).length == size, what
        for a, b in self.ref.windows():
            got = await self.vol.dp.read(h, a, b - a)
            want = self.ref.read(a, b - a)
            if got != want:
                first = next(
                    i for i in range(min(len(got), len(want)) + 1) if got[i : i + 1] != want[i : i + 1]
                )
                raise AssertionError(
                    f"{what}: [{a}, {b}) differs first at {a + first} (got {len(got)} bytes)"
                )
        assert await self.vol.dp.read(h, size, 10) == b"", what


async def _scenario(backend: Backend, ops: list[Op], compression: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="jfs-data-model-"))
    vol = await DataVolume.create(
        await backend.new_kv(),
        backend.open_store,
        name=f"model-{os.getpid()}-{next(_names)}",
        compression=compression,
        cache_dir=str(tmp / "cache-0"),
        retry_delay=0.01,
        cache_size=4 * BS * 4,  # tiny: eviction happens all the time
        mem_cache_size=6 * BS,
    )
    ref = Reference(tmp / "reference")
    driver = Driver(vol, await vol.new_file(b"model"), ref, tmp)
    try:
        for op in ops:
            await driver.run(op)
        await driver.verify("after the ops")
        await driver.restart()
        await driver.verify("after a restart with a cold cache")
        await vol.dp.compact(driver.ino)
        await vol.dp.drain()
        for indx in range(ref.size // CHUNK_SIZE + 1):
            # Compacted as far as the planner goes: at most one slice, or a big leading slice the planner
            # keeps (`plan`'s skip rule) followed by one written after the merge that made it.
            records = await vol.meta.read_chunk(driver.ino, indx)
            assert plan(records) is None, records
        await driver.verify("after compaction")
        await driver.restart()
        await driver.verify("after compaction and a restart")
    finally:
        ref.close()
        with contextlib.suppress(Exception):
            if driver.h is not None:
                await vol.dp.release(driver.h)
        await vol.close()
        shutil.rmtree(tmp, ignore_errors=True)


EXAMPLES = {"sqlite+file": 35, "redis+s3": 12}
LONG_SEQUENCE = {"sqlite+file": 250, "redis+s3": 100}


def test_random_operations_match_a_reference_file(backend: Backend) -> None:
    @settings(
        max_examples=EXAMPLES[backend.name],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(ops=st.lists(OPS, min_size=3, max_size=30), compression=st.sampled_from(["none", "lz4", "zstd"]))
    def check(ops: list[Op], compression: str) -> None:
        asyncio.run(_scenario(backend, ops, compression))

    check()


def _random_ops(rng: random.Random, n: int) -> list[Op]:
    """A long seeded sequence of the same kinds of ops as the property test draws."""

    def off() -> int:
        anchors = ANCHORS + FAR_ANCHORS if rng.random() < 0.3 else ANCHORS
        return max(0, rng.choice(anchors) + rng.randint(-300, 300))

    def size() -> int:
        return rng.choice([rng.randint(1, 300), rng.randint(1, 3 * BS), BS])

    kinds = [k for k, (w, _) in _KINDS.items() for _ in range(w)]
    ops: list[Op] = []
    for _ in range(n):
        kind = rng.choice(kinds)
        if kind == "write":
            ops.append(Write(off(), size(), rng.getrandbits(32)))
        elif kind == "read":
            ops.append(Read(off(), size()))
        elif kind == "truncate":
            ops.append(Truncate(off()))
        elif kind == "fallocate":
            ops.append(
                Fallocate(
                    rng.choice([FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE, 0]),
                    off(),
                    size(),
                )
            )
        else:
            simple: dict[str, Op] = {"flush": Flush(), "compact": Compact(), "restart": Restart()}
            ops.append(simple[kind])
    return ops


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_long_random_sequence_matches_a_reference_file(backend: Backend, seed: int) -> None:
    rng = random.Random(seed)
    n = LONG_SEQUENCE[backend.name]
    await _scenario(backend, _random_ops(rng, n), ["none", "lz4", "zstd"][seed % 3])


async def test_concurrent_writers_and_readers_under_memory_pressure(backend: Backend, tmp_path: Path) -> None:
    """Tasks write their own regions of one file (one region straddles the chunk boundary) in random
    pieces through separate handles, with a write buffer far smaller than the data; readers check
    finished regions meanwhile. Everything must land exactly, also after a restart."""
    vol = await DataVolume.create(
        await backend.new_kv(),
        backend.open_store,
        name=f"concurrent-{os.getpid()}-{next(_names)}",
        compression="lz4",
        cache_dir=str(tmp_path / "cache"),
        buffer_size=6 * BS,
        max_uploads=8,
        retry_delay=0.01,
    )
    region = 3 * BS + 123
    PIECE = 15_000
    # Packed just below the chunk boundary (the last one straddles it): compactions stay small.
    starts = [CHUNK_SIZE - BS - 50 - i * (region + 777) for i in range(6)][::-1]
    contents = {start: random.Random(start).randbytes(region) for start in starts}
    done: list[int] = []
    try:
        ino = await vol.new_file(b"shared")

        async def writer(start: int) -> None:
            rng = random.Random(start + 1)
            h = await vol.dp.open(ino, os.O_WRONLY)
            data = contents[start]
            pieces = list(range(0, region, PIECE))
            rng.shuffle(pieces)
            for at in pieces:
                garbage = rng.randbytes(min(PIECE, region - at))
                await vol.dp.write(h, start + at, garbage)  # overwritten below
            for at in pieces:
                await vol.dp.write(h, start + at, data[at : at + PIECE])
                if rng.random() < 0.1:
                    await vol.dp.flush(h)
            await vol.dp.release(h)
            done.append(start)

        async def reader() -> None:
            rng = random.Random(99)
            h = await vol.dp.open(ino)
            while len(done) < len(starts):
                await asyncio.sleep(0.005)
                if done:
                    start = rng.choice(done)
                    a = rng.randrange(region)
                    got = await vol.dp.read(h, start + a, min(2 * BS, region - a))
                    assert got == contents[start][a : a + 2 * BS]
            await vol.dp.release(h)

        await asyncio.gather(*(writer(s) for s in starts), reader(), reader())
        assert vol.dp.budget.used == 0
        for restart in (False, True):
            if restart:
                await vol.restart()
            h = await vol.dp.open(ino)
            for start in starts:
                assert await vol.dp.read(h, start, region) == contents[start]
            assert (await vol.meta.getattr(ino)).length == starts[-1] + region
            await vol.dp.release(h)
    finally:
        await vol.close()


# -------------------------------------------------------------------------------------- fault injection


@pytest.fixture
def sqlite_file() -> Iterator[Backend]:
    with _sqlite_file_backend() as b:
        yield b


async def _faulty_volume(
    backend: Backend, faults: list[FaultyStore], rate: float, retries: int, tmp: Path
) -> DataVolume:
    async def open_faulty() -> ObjectStore:
        f = FaultyStore(await backend.open_store(), rate, seed=len(faults) + 1, put_lands=0.3)
        faults.append(f)
        return f

    return await DataVolume.create(
        await backend.new_kv(),
        open_faulty,
        name=f"faults-{os.getpid()}-{next(_names)}",
        compression="lz4",
        cache_dir=str(tmp / "cache"),
        io_retries=retries,
        retry_delay=0.001,
        retry_max_delay=0.01,
        mem_cache_size=4 * BS,
        # Written blocks are read back from the disk cache; it is the compactions each read triggers that
        # make reads reach the faulty store (new slices), so they must not be paced here.
        recompact_delay=0.0,
    )


async def test_injected_failures_are_retried_transparently(sqlite_file: Backend, tmp_path: Path) -> None:
    faults: list[FaultyStore] = []
    vol = await _faulty_volume(sqlite_file, faults, 0.3, 30, tmp_path)
    try:
        ino = await vol.new_file(b"retried")
        h = await vol.dp.open(ino, os.O_RDWR)
        rng = random.Random(1)
        ref = bytearray()
        for _ in range(40):
            off = rng.randrange(0, 6 * BS)
            data = rng.randbytes(rng.randrange(1, 2 * BS))
            await vol.dp.write(h, off, data)
            ref.extend(bytes(max(0, off + len(data) - len(ref))))
            ref[off : off + len(data)] = data
            if rng.random() < 0.3:
                await vol.dp.flush(h)
            vol.dp.mem.clear()
            a = rng.randrange(0, len(ref))
            assert await vol.dp.read(h, a, 3 * BS) == ref[a : a + 3 * BS]
        await vol.dp.release(h)
        assert faults[0].injected["put"] > 5 and faults[0].injected["get"] > 5
        await vol.restart()
        h = await vol.dp.open(ino)
        assert await vol.dp.read(h, 0, len(ref) + 10) == ref
        await vol.dp.release(h)
    finally:
        await vol.close()


async def test_failures_beyond_retries_are_eio_never_wrong_bytes(
    sqlite_file: Backend, tmp_path: Path
) -> None:
    faults: list[FaultyStore] = []
    vol = await _faulty_volume(sqlite_file, faults, 0.5, 2, tmp_path)
    try:
        ino = await vol.new_file(b"flaky")
        h = await vol.dp.open(ino, os.O_RDWR)
        rng = random.Random(2)
        ref = bytearray()
        failed_writes = failed_reads = good_reads = 0
        for _ in range(60):
            off = rng.randrange(0, 4 * BS)
            data = rng.randbytes(rng.randrange(1, BS + 100))
            await vol.dp.write(h, off, data)
            try:
                await vol.dp.flush(h)
            except OSError as exc:
                assert exc.errno == errno.EIO
                failed_writes += 1
            else:
                ref.extend(bytes(max(0, off + len(data) - len(ref))))
                ref[off : off + len(data)] = data
            vol.dp.mem.clear()
            a = rng.randrange(0, max(1, len(ref)))
            try:
                got = await vol.dp.read(h, a, 2 * BS)
            except OSError as exc:
                assert exc.errno == errno.EIO
                failed_reads += 1
            else:
                assert got == ref[a : a + 2 * BS]
                good_reads += 1
        assert failed_writes and failed_reads and good_reads
        await vol.dp.release(h)
        faults[-1].rate = 0.0
        await vol.dp.drain()
        h = await vol.dp.open(ino)
        assert await vol.dp.read(h, 0, len(ref) + 10) == ref
        await vol.dp.release(h)
        await vol.restart()
        faults[-1].rate = 0.0
        h = await vol.dp.open(ino)
        assert await vol.dp.read(h, 0, len(ref) + 10) == ref
        await vol.dp.release(h)
    finally:
        await vol.close()

"""Many clients of one volume: two mounts (SQLite + local directory on one host, Redis + SeaweedFS S3)
running concurrent workloads, then seeing the same tree and bytes, with exact usage counters; and
distributed locks (flock and fcntl) between mounts, including blocked waiters."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.mounts import format_test_volume, format_volume, jfs, mounted, reachable_dir
from jfs.testing.object_fixtures import seaweed_s3  # noqa: F401  (fixture)
from jfs.testing.workloads import parse_log, snapshot


@pytest.fixture(scope="module", params=["sqlite-file", "redis-s3"])
def two_mounts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """One volume mounted twice: (META-URL, mount A, mount B)."""
    url = format_test_volume(request, tmp_path_factory.mktemp(request.param), redis_db=11, bucket_prefix="many")
    with reachable_dir("jfs-many-") as outside:
        with mounted(url, outside / "a") as a, mounted(url, outside / "b") as b:
            yield url, a, b


# ----------------------------------------------------------------------------------------------- workers

def _spawn(code: str, *args: object) -> subprocess.Popen[str]:
    """A child running the Python `code` with `args` (its report is its last line of stdout)."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _spawn_workload(workload: str, *args: object) -> subprocess.Popen[str]:
    """A child running one worker of `jfs.testing.workloads` (its report is its last line of stdout)."""
    return subprocess.Popen([sys.executable, "-m", "jfs.testing.workloads", workload, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen[str], timeout: float = 120) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"worker hung: {proc.args!r}\n{err[-2000:]}") from None
    assert proc.returncode == 0, f"worker failed ({proc.returncode}): {err[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------- verification

def usage_of(tree: dict[str, tuple]) -> tuple[int, int]:
    """(space, inodes) the volume should charge for `tree`: align4k(size) per inode (0 counts as 4 KiB)."""
    seen: dict[int, int] = {}
    for _typ, _mode, _nlink, size, ino, _what, _x in tree.values():
        seen[ino] = 4096 if size == 0 else -(-size // 4096) * 4096
    return sum(seen.values()), len(seen)


def check_nlinks(tree: dict[str, tuple]) -> None:
    names: dict[int, int] = {}
    subdirs: dict[str, int] = {}
    for path, (typ, _m, _n, _s, ino, _w, _x) in tree.items():
        if typ == stat.S_IFDIR:
            parent = os.path.dirname(path)
            subdirs[parent] = subdirs.get(parent, 0) + 1
        else:
            names[ino] = names.get(ino, 0) + 1
    for path, (typ, _m, nlink, _s, ino, _w, _x) in tree.items():
        want = 2 + subdirs.get(path, 0) if typ == stat.S_IFDIR else names[ino]
        assert nlink == want, f"{path}: nlink {nlink}, the tree says {want}"


def check_usage(url: str, root: Path) -> None:
    """`jfs status` counters equal what a walk of the whole volume finds."""
    tree = snapshot(root)
    space, inodes = usage_of(tree)
    stat_ = json.loads(jfs("status", url, "--json").stdout)["Statistic"]
    assert (stat_["UsedSpace"], stat_["UsedInodes"]) == (space, inodes), (stat_, space, inodes)


def fsck_if_available(url: str) -> None:
    """`jfs fsck META-URL` must be clean — once the command exists (it is being written)."""
    res = jfs("fsck", url, check=False)
    if res.returncode == 2 and "No such command" in res.stderr:
        return
    assert res.returncode == 0, f"jfs fsck failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


def settled(a: Path, b: Path) -> tuple[dict, dict]:
    """Snapshots of both mounts once the kernel caches (1 s) cannot hide anything any more."""
    time.sleep(1.2)
    return snapshot(a), snapshot(b)


# ------------------------------------------------------------------------------------------- tests

def test_concurrent_workloads_leave_one_consistent_volume(two_mounts: tuple[str, Path, Path]) -> None:
    url, a, b = two_mounts
    name = "work"
    for m in (a,):
        (m / name).mkdir()
        for d in ("d0", "d1", "d2"):
            (m / name / d).mkdir()
        (m / name / "log-flock").write_bytes(b"")
        (m / name / "log-fcntl").write_bytes(b"")
    duration = 6.0
    n = 30
    procs: list[subprocess.Popen[str]] = []
    churn: list[subprocess.Popen[str]] = []
    appenders: dict[str, list[subprocess.Popen[str]]] = {"flock": [], "fcntl": []}
    readers: list[subprocess.Popen[str]] = []
    try:
        for i, m in enumerate((a, b)):
            for k in range(2):
                churn.append(_spawn_workload("churn", m / name, 10 * i + k, duration))
            for kind in ("flock", "fcntl"):
                for style in ("keep", "reopen"):
                    appenders[kind].append(_spawn_workload("append", m / name / f"log-{kind}", f"{m.name}{style}", n, kind,
                                                  style))
                readers.append(_spawn_workload("read-log", m / name / f"log-{kind}", kind, duration))
        procs = churn + appenders["flock"] + appenders["fcntl"] + readers
        results = [_result(p) for p in churn]
        for kind in ("flock", "fcntl"):
            for p in appenders[kind]:
                _result(p)
        reads = [_result(p) for p in readers]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert sum(sum(r["ops"].values()) for r in results) > 100, results
    unexpected = [u for r in results for u in r["unexpected"]]
    bad_reads = [u for r in results for u in r["bad"]]
    assert not unexpected, unexpected[:10]
    assert not [p for r in reads for p in r["problems"]], reads

    for kind in ("flock", "fcntl"):
        for m in (a, b):
            counted, problems = parse_log((m / name / f"log-{kind}").read_bytes())
            assert not problems, problems[:5]
            records = list(counted.elements())
            want = sorted((f"{mm.name}{style}", i) for mm in (a, b) for style in ("keep", "reopen") for i in range(n))
            assert sorted(records) == want, f"{kind} log seen from {m.name}: {len(records)} records, want {len(want)}"
            for tag in {t for t, _ in want}:  # each appender's records are in its order
                seqs = [s for t, s in records if t == tag]
                assert seqs == sorted(seqs), tag

    sa, sb = settled(a, b)
    assert sa == sb, {k: (sa.get(k), sb.get(k)) for k in set(sa) ^ set(sb) | {k for k in sa if sa[k] != sb.get(k)}}
    check_nlinks(sa)
    check_usage(url, a)
    fsck_if_available(url)
    # Last, so that everything above is checked anyway: reads during the races never returned wrong bytes.
    assert not bad_reads, bad_reads[:10]


def test_rename_storm_between_two_mounts(two_mounts: tuple[str, Path, Path]) -> None:
    """Both mounts move the same files between two directories; every file ends up exactly once."""
    url, a, b = two_mounts
    base = "storm"
    (a / base / "x").mkdir(parents=True)
    (a / base / "y").mkdir()
    for i in range(40):
        (a / base / "x" / f"f{i}").write_bytes(f"file {i}".encode())
    code = r"""
import os, random, sys, errno
root, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
moved = 0
for _ in range(200):
    i = rnd.randrange(40)
    src, dst = ("x", "y") if rnd.random() < 0.5 else ("y", "x")
    try:
        os.rename(os.path.join(root, src, f"f{i}"), os.path.join(root, dst, f"f{i}"))
        moved += 1
    except FileNotFoundError:
        pass
print(moved)
"""
    procs = [subprocess.Popen([sys.executable, "-c", code, str(m / base), str(s)], stdout=subprocess.PIPE,
                              text=True) for s, m in enumerate((a, b, a, b))]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        assert int(out) > 0
    sa, sb = settled(a, b)
    assert sa == sb
    names = sorted(os.path.basename(k) for k in sa if k.startswith(f"{base}/") and k.count("/") == 2)
    assert names == sorted(f"f{i}" for i in range(40))
    for k in sa:
        if k.startswith(f"{base}/") and k.count("/") == 2:
            assert (a / k).read_bytes() == f"file {k.rsplit('f', 1)[1]}".encode()
    assert os.stat(a / base / "x").st_nlink == 2 and os.stat(b / base / "y").st_nlink == 2
    check_usage(url, a)


# ------------------------------------------------------------------------------------------- locks

HOLDER = r"""
import fcntl, os, sys
path, kind, start, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDWR)
if kind == "flock":
    fcntl.flock(fd, fcntl.LOCK_EX)
else:
    fcntl.lockf(fd, fcntl.LOCK_EX, length, start)
print("locked", os.getpid(), flush=True)
sys.stdin.readline()
if kind == "flock":
    fcntl.flock(fd, fcntl.LOCK_UN)
else:
    fcntl.lockf(fd, fcntl.LOCK_UN, length, start)
print("released", flush=True)
sys.stdin.readline()
"""

WAITER = r"""
import fcntl, os, sys, time
path, kind = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
print("waiting", flush=True)
if kind == "flock":
    fcntl.flock(fd, fcntl.LOCK_EX)          # blocks: no LOCK_NB
else:
    fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)   # F_SETLKW
print("acquired", time.monotonic(), flush=True)
sys.stdin.readline()
"""


class Proc:
    """A helper process driven line by line over stdin/stdout; always killed at the end."""

    def __init__(self, code: str, *args: object) -> None:
        self.p = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def line(self, timeout: float = 15.0) -> str:
        assert self.p.stdout is not None
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.p.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise TimeoutError("no output in time")
        return self.p.stdout.readline().strip()

    def ready(self, timeout: float) -> bool:
        import selectors

        assert self.p.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.p.stdout, selectors.EVENT_READ)
            return bool(sel.select(timeout))

    def send(self, text: str = "") -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.communicate()


def _try_lock(path: Path, kind: str, start: int = 0, length: int = 10) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        if kind == "flock":
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_fcntl_ranges_between_mounts(two_mounts: tuple[str, Path, Path]) -> None:
    _, a, b = two_mounts
    (a / "fcntl-ranges").write_bytes(b"0" * 100)
    holder = Proc(HOLDER, a / "fcntl-ranges", "fcntl", 10, 20)  # bytes [10, 30)
    try:
        assert holder.line().startswith("locked")
        assert not _try_lock(b / "fcntl-ranges", "fcntl", 0, 11)   # overlaps byte 10
        assert not _try_lock(b / "fcntl-ranges", "fcntl", 29, 5)   # overlaps byte 29
        assert _try_lock(b / "fcntl-ranges", "fcntl", 30, 10)      # beside it
        assert _try_lock(b / "fcntl-ranges", "fcntl", 0, 10)
        with open(b / "fcntl-ranges", "r+b") as f:                 # F_GETLK from the other mount
            import struct

            query = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
            got = struct.unpack("hhqqi", fcntl.fcntl(f, fcntl.F_GETLK, query))
            assert got[0] == fcntl.F_WRLCK and (got[2], got[3]) == (10, 20), got
            with pytest.raises(BlockingIOError):                   # a read lock conflicts too
                fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 15)
        holder.send()
        assert holder.line() == "released"
        assert _try_lock(b / "fcntl-ranges", "fcntl", 0, 100)
    finally:
        holder.kill()


@contextlib.contextmanager
def _held_and_awaited(held: Path, awaited: Path, kind: str) -> Iterator[tuple[Proc, Proc]]:
    """A process holding bytes 0-9 of `held` (created, 10 bytes) and one blocked waiting for the same lock
    through `awaited` (the same file seen from another mount); both killed on exit."""
    held.write_bytes(b"0" * 10)
    holder = Proc(HOLDER, held, kind, 0, 10)
    waiter: Proc | None = None
    try:
        assert holder.line().startswith("locked")
        waiter = Proc(WAITER, awaited, kind)
        assert waiter.line() == "waiting"
        yield holder, waiter
    finally:
        holder.kill()
        if waiter is not None:
            waiter.kill()


def _wait_unlocked(paths: list[Path], kind: str, failure: str, timeout: float = 10) -> None:
    """Wait until a `kind` lock of each of `paths` can be taken (and is released again), in that order."""
    deadline = time.monotonic() + timeout
    for path in paths:
        while not _try_lock(path, kind):
            assert time.monotonic() < deadline, failure
            time.sleep(0.05)


@pytest.mark.parametrize("kind", ["flock", "fcntl"])
def test_blocked_waiter_on_other_mount_wakes_on_release(two_mounts: tuple[str, Path, Path], kind: str) -> None:
    _, a, b = two_mounts
    path = f"waiter-{kind}"
    with _held_and_awaited(a / path, b / path, kind) as (holder, waiter):
        assert not waiter.ready(1.5), "the waiter got the lock while another mount held it"
        holder.send()
        released = time.monotonic()
        assert holder.line() == "released"
        word, when = waiter.line(timeout=10).split()
        assert word == "acquired" and float(when) - released < 5.0
        assert not _try_lock(a / path, kind)  # the waiter holds it now, seen from the first mount
        waiter.send()
        waiter.p.wait(10)
        _wait_unlocked([a / path], kind, "the waiter kept the lock after it exited")


@pytest.mark.parametrize("kind", ["flock", "fcntl"])
def test_killed_waiter_leaves_no_lock_behind(two_mounts: tuple[str, Path, Path], kind: str) -> None:
    _, a, b = two_mounts
    path = f"killed-waiter-{kind}"
    with _held_and_awaited(a / path, b / path, kind) as (holder, waiter):
        time.sleep(0.5)
        waiter.kill()  # interrupted while blocked in the lock call
        holder.send()
        assert holder.line() == "released"
        _wait_unlocked([b / path, a / path], kind, "a killed waiter left the lock taken")


def test_lock_then_read_sees_other_mounts_writes(two_mounts: tuple[str, Path, Path]) -> None:
    """Taking a lock revalidates what this mount caches: the last holder's writes are visible at once."""
    _, a, b = two_mounts
    p = "lock-coherence"
    (a / p).write_bytes(b"v0")
    for kind in ("flock", "fcntl"):
        for i in range(1, 6):
            with open(b / p, "rb") as f:  # cache attributes and pages on B
                f.read()
            with open(a / p, "r+b") as f:
                (fcntl.flock if kind == "flock" else fcntl.lockf)(f, fcntl.LOCK_EX)
                f.seek(0, os.SEEK_END)
                f.write(f"-{kind}{i}".encode())
                f.flush()
                (fcntl.flock if kind == "flock" else fcntl.lockf)(f, fcntl.LOCK_UN)
                with open(b / p, "rb") as g:
                    (fcntl.flock if kind == "flock" else fcntl.lockf)(g, fcntl.LOCK_SH)
                    seen = g.read()
                    size = os.fstat(g.fileno()).st_size
                assert seen.endswith(f"-{kind}{i}".encode()), (kind, i, seen)
                assert size == len(seen)


def test_reading_a_file_another_mount_deleted_fails_instead_of_returning_zeros(
        two_mounts: tuple[str, Path, Path]) -> None:
    """A file open on B whose last name is removed on A is deleted at once (only opens on the deleting
    client keep data, as in JuiceFS): reads on B may then fail, but must never return made-up zeros."""
    _, a, b = two_mounts
    data = os.urandom(300_000)
    (a / "doomed").write_bytes(data)
    fd = os.open(b / "doomed", os.O_RDONLY)
    try:
        (a / "doomed-new").write_bytes(b"replacement")
        os.rename(a / "doomed-new", a / "doomed")  # the old inode loses its last name
        time.sleep(0.3)
        try:
            got = os.pread(fd, len(data), 0)
        except OSError as exc:
            assert exc.errno in (errno.ENOENT, errno.ESTALE, errno.EIO), exc
        else:
            assert got == data[: len(got)], f"{len(got)} bytes read, {got.count(0)} of them zeros, not the file's"
    finally:
        os.close(fd)
    time.sleep(1.1)  # B's kernel may map the name to the old inode until its entry cache (1 s) expires
    assert (b / "doomed").read_bytes() == b"replacement"


# ------------------------------------------------------------- shared databases and lock-protected updates

SQLITE_WRITER = r"""
import json, sqlite3, sys
path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
errors = []
db = sqlite3.connect(path, timeout=60)
for i in range(n):
    try:
        with db:  # one transaction: a read-modify-write of the counter row and a new row
            db.execute("BEGIN IMMEDIATE")
            (v,) = db.execute("SELECT v FROM counter").fetchone()
            db.execute("UPDATE counter SET v = ?", (v + 1,))
            db.execute("INSERT INTO rows(who, i, pad) VALUES (?, ?, randomblob(1500))", (who, i))
    except sqlite3.Error as exc:
        errors.append(f"{i}: {exc}")
db.close()
print(json.dumps({"errors": errors[:5], "failed": len(errors)}))
"""


def test_sqlite_rollback_journal_from_two_mounts(two_mounts: tuple[str, Path, Path]) -> None:
    """Two processes, one per mount, write one SQLite database (rollback journal, POSIX locks) with the
    default kernel caches: every transaction commits, none is lost, and the file stays intact. A mount
    keeps a cached name of ``db-journal`` that the other one deleted; opening it must look the name up
    again (ESTALE from jfs) instead of failing with "unable to open database file"."""
    import sqlite3

    _, a, b = two_mounts
    d = "sqlite-shared"
    (a / d).mkdir()
    db = sqlite3.connect(a / d / "db")
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("CREATE TABLE rows(id INTEGER PRIMARY KEY, who TEXT, i INT, pad BLOB)")
    db.execute("CREATE TABLE counter(v INT)")
    db.execute("INSERT INTO counter VALUES (0)")
    db.commit()
    db.close()
    n = 100
    procs = [_spawn(SQLITE_WRITER, m / d / "db", who, n) for m, who in ((a, "a"), (b, "b"))]
    results = [_result(p) for p in procs]
    assert all(r["failed"] == 0 for r in results), results
    for m in (a, b):
        db = sqlite3.connect(m / d / "db")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert db.execute("SELECT count(*), count(DISTINCT who || i) FROM rows").fetchone() == (2 * n, 2 * n)
            assert db.execute("SELECT v FROM counter").fetchone() == (2 * n,)
        finally:
            db.close()
    assert not (a / d / "db-journal").exists() and not (b / d / "db-journal").exists()


COUNTER = r"""
import fcntl, json, os, sys, time
d, me, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
errors = []
done = 0
lock = os.open(os.path.join(d, "lock"), os.O_RDWR)
deadline = time.monotonic() + 90
start = time.monotonic()
while done < n and time.monotonic() < deadline and len(errors) < 20:
    try:  # not a blocking wait: a waiter is woken by polling, turns would outlast the entry cache
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # the other mount is in its critical section: peek at its intent file
        os.path.exists(os.path.join(d, "intent"))
        time.sleep(0.001)
        continue
    try:
        # Turns alternate between the mounts, so each turn follows the other mount's updates.
        # In place: the pages this kernel caches were rewritten by the other mount.
        fd = os.open(os.path.join(d, "in-place"), os.O_RDWR)
        v = int(os.pread(fd, 64, 0))
        if v % 2 == me:
            # Atomic replace: the name this kernel caches points to the inode the other mount's rename
            # deleted (opened with O_CREAT, "create if missing": the kernel does not retry that open).
            rd = os.open(os.path.join(d, "replaced"), os.O_RDONLY | os.O_CREAT, 0o644)
            r = int(os.read(rd, 64))
            os.close(rd)
            if r != v:
                errors.append(f"replaced holds {r}, in-place {v}")
            # An intent record made and removed inside the critical section, as a rollback journal: the
            # kernel caches the name the other mount made, pointing to the inode it deleted.
            intent = os.open(os.path.join(d, "intent"), os.O_RDWR | os.O_CREAT, 0o644)
            os.write(intent, b"%d" % (v + 1))
            os.close(intent)
            os.pwrite(fd, b"%012d" % (v + 1), 0)
            os.unlink(os.path.join(d, "intent"))
            tmp = os.path.join(d, f"replaced.tmp{me}")
            with open(tmp, "wb") as f:
                f.write(b"%d" % (v + 1))
            os.rename(tmp, os.path.join(d, "replaced"))
            done += 1
        os.close(fd)
    except OSError as exc:
        errors.append(f"{done}: {exc}")
    finally:
        fcntl.lockf(lock, fcntl.LOCK_UN)
    time.sleep(0.001)
os.close(lock)
print(json.dumps({"errors": errors[:5], "failed": len(errors), "done": done,
                  "seconds": round(time.monotonic() - start, 2)}))
"""


def test_lock_protected_counters_from_two_mounts(two_mounts: tuple[str, Path, Path]) -> None:
    """Read-modify-write under an fcntl lock from two mounts taking turns, of a file rewritten in place
    (with an intent file created and removed around it) and of one replaced by rename: no error and no
    lost update with the default kernel caches."""
    _locked_counters(two_mounts, settle=0.0)


def _locked_counters(mounts: tuple[str, Path, Path], *, settle: float) -> None:
    """The body of the locked-counter test; the final unlocked reads wait `settle` seconds first."""
    _, a, b = mounts
    d = "locked-counters"
    (a / d).mkdir()
    (a / d / "lock").write_bytes(b"")
    (a / d / "in-place").write_bytes(b"%012d" % 0)
    (a / d / "replaced").write_bytes(b"0")
    n = 60
    procs = [_spawn(COUNTER, m / d, me, n) for me, m in enumerate((a, b))]
    results = [_result(p) for p in procs]
    assert all(r["failed"] == 0 and r["done"] == n for r in results), results
    time.sleep(settle)
    for m in (a, b):
        assert int((m / d / "in-place").read_bytes()) == 2 * n
        assert int((m / d / "replaced").read_bytes()) == 2 * n


@pytest.fixture(scope="module")
def two_trash_mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """A SQLite + local directory volume with the trash on (what `jfs format` gives), mounted twice."""
    base = tmp_path_factory.mktemp("trash-two")
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"), "test-vol", "--trash-days", "1")
    with reachable_dir("jfs-many-trash-") as outside:
        with mounted(url, outside / "a") as a, mounted(url, outside / "b") as b:
            yield url, a, b


def test_sqlite_and_locked_counters_from_two_mounts_with_the_trash_on(
    two_trash_mounts: tuple[str, Path, Path],
) -> None:
    """The same two workloads with the default trash: every deleted rollback journal and intent file goes
    to the trash, and nothing about names, locks or data may change because of it."""
    test_sqlite_rollback_journal_from_two_mounts(two_trash_mounts)
    # Under the lock every update lands (checked inside). The final reads take no lock: with the trash on,
    # a mount's cached name of the file the other mount replaced still leads to the old inode, now kept in
    # the trash (ESTALE covers only deleted inodes), until the 1 s entry cache expires — so wait it out.
    _locked_counters(two_trash_mounts, settle=1.2)

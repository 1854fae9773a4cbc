"""Multi-client file-system workloads and their judges, run on mounted volumes by
``tests/integration/test_many_clients.py`` and ``bench/soak.py`` (one copy of each; they differ only in
their parameters).

- `churn`: creates (a sealed temp file renamed over a shared name), renames, unlinks, mkdir/rmdir, hard and
  symbolic links, xattrs, readdir, stat, chmod, in directories every client shares. Contents are *sealed*
  (`sealed`: a SHA-256 line, then the body) so any read can be checked (`is_sealed`). Races between clients
  make `RACE_ERRNOS` (and the `RACE_ALSO` pairs) legitimate answers; a `Tally` keeps them apart from the
  unexpected ones.
- `log_record` / `parse_log`: self-checking records appended under `lock` (flock or fcntl) to shared logs;
  `append_records` and `read_locked_log` are the two sides of that test.
- `snapshot`: everything a client sees below a mount root (virtual files excluded), to compare mounts.

Each worker returns a JSON-able document; ``python -m jfs.testing.workloads KIND ARGS...`` runs one in a
child process and prints it as the last line of stdout (see `main`).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import random
import stat
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

VIRTUAL_NAMES = frozenset({".stats", ".config", ".accesslog", ".trash", ".control"})
"""Names in a mount's root that are not the volume's files."""

RACE_ERRNOS = frozenset({errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR, errno.ENODATA,
                         errno.ESTALE, errno.ELOOP})
"""Legitimate answers when clients race on shared names. ESTALE: the kernel gives up splicing a directory
another client moved while a local rename holds the rename lock; ELOOP: a symlink created as its own target."""
RACE_ALSO = frozenset({("link", errno.EPERM), ("xattr", errno.EPERM), ("rename", errno.EINVAL)})
"""(operation, errno) pairs that are legitimate too: a hard link to a directory, a user.* xattr of a symlink,
a directory renamed into itself."""

JUICEFS_DELETED_READ = frozenset({errno.EBADF})
"""What a JuiceFS mount's read(2) may answer when another client deleted the file while it was open here:
JuiceFS keeps an unlinked open file only for the mount that unlinked it (its POSIX-compatibility page:
"open files remain accessible after unlink from same mount point"), and its ``vfs.Read`` turns the
reader's ENOENT (no such inode) into EBADF. See ``tests/integration/test_etcd_deleted_open_files.py``."""

CHURN_OPS = ("create", "create", "create", "rename", "unlink", "mkdir", "rmdir", "link", "symlink", "read",
             "xattr", "readdir", "stat", "chmod")
SEALED_SIZES = (0, 1, 100, 4096, 5000, 70_000, 300_000)


class Tally:
    """Operations done and errors met by one worker: expected race answers counted by errno name,
    unexpected errors and bad reads listed."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.expected: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.bad: list[str] = []

    def error(self, op: str, exc: OSError, race: bool, where: str = "") -> None:
        """Count `exc` from `op`: expected if `race` allows it (`RACE_ERRNOS`, `RACE_ALSO`), else unexpected
        (listed with `where`: the path and the step that failed, when the error itself does not name them)."""
        code = exc.errno or 0
        if race and (code in RACE_ERRNOS or (op, code) in RACE_ALSO):
            self.expected[errno.errorcode.get(code, str(code))] += 1
        else:
            self.unexpected.append(f"{op}{f' ({where})' if where else ''}: {exc}")

    def read_error(self, exc: OSError, fd: int, deleted_read: frozenset[int]) -> bool:
        """Count `exc` from a read of the open descriptor `fd` as the client's answer for a file deleted
        by another client (counted as expected under its own name) when its errno is in `deleted_read` and
        the file is indeed gone: fstat of `fd` answers ENOENT or ESTALE. False (nothing counted) otherwise:
        the caller treats `exc` as any other error."""
        if exc.errno not in deleted_read:
            return False
        try:
            os.fstat(fd)
        except OSError as gone:
            if gone.errno in (errno.ENOENT, errno.ESTALE):
                self.expected[f"{errno.errorcode.get(exc.errno or 0, exc.errno)} (read of a deleted file)"] += 1
                return True
        return False

    def doc(self, **extra: Any) -> dict[str, Any]:
        """The report: ``ops``, ``expected``, ``unexpected`` (first 50), ``n_unexpected``, ``bad`` (first 50),
        ``n_bad`` and `extra`."""
        return {"ops": dict(self.ops), "expected": dict(self.expected), "unexpected": self.unexpected[:50],
                "n_unexpected": len(self.unexpected), "bad": self.bad[:50], "n_bad": len(self.bad), **extra}


def sealed(rnd: random.Random, sizes: Sequence[int] = SEALED_SIZES) -> bytes:
    """A random body of one of `sizes`, after the hex SHA-256 of it and a newline."""
    body = rnd.randbytes(rnd.choice(sizes))
    return hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def is_sealed(data: bytes) -> bool:
    """Whether `data` is whole `sealed` content (its body matches its digest line)."""
    head, _, body = data.partition(b"\n")
    return hashlib.sha256(body).hexdigest().encode() == head


def churn(shared: str, seed: int, end: float, *, names: Sequence[str], dirs: Sequence[str],
          ops: Sequence[str] = CHURN_OPS, sizes: Sequence[int] = SEALED_SIZES, fsync_share: float = 0.2,
          tally: Tally | None = None, deleted_read: frozenset[int] = frozenset()) -> Tally:
    """Random operations of `ops` on the names `dirs` × `names` below `shared` until `time.monotonic()`
    reaches `end` (the `dirs` must exist; "" is `shared` itself). Returns the tally (`tally` if given).
    `deleted_read`: errnos this client answers a read of a file another client deleted while it was open
    here (`JUICEFS_DELETED_READ` on a JuiceFS mount), expected only when the file is gone (`Tally.read_error`)."""
    rnd, t = random.Random(seed), tally or Tally()
    tmp = 0

    def pick() -> str:
        return os.path.join(shared, rnd.choice(dirs), rnd.choice(names))

    while time.monotonic() < end:
        op = rnd.choice(ops)
        t.ops[op] += 1
        where = ""
        try:
            if op == "create":  # atomic replace: write a private temp name, then rename it over the target
                tmp += 1
                path = os.path.join(shared, f".tmp-{seed}-{tmp}")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    os.write(fd, sealed(rnd, sizes))
                    if rnd.random() < fsync_share:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.rename(path, pick())
                except OSError:
                    os.unlink(path)
                    raise
            elif op == "rename":
                os.rename(pick(), pick())
            elif op == "unlink":
                os.unlink(pick())
            elif op == "mkdir":
                os.mkdir(pick())
            elif op == "rmdir":
                os.rmdir(pick())
            elif op == "link":
                os.link(pick(), pick())
            elif op == "symlink":
                os.symlink(rnd.choice(names), pick())
            elif op == "read":
                p = pick()
                if not os.path.islink(p):
                    where = f"open {p}"
                    with open(p, "rb") as f:
                        where = f"read {p}"
                        try:
                            data = f.read()
                        except OSError as exc:
                            if t.read_error(exc, f.fileno(), deleted_read):
                                continue
                            raise
                        where = f"close {p}"
                    if not is_sealed(data):
                        t.bad.append(f"{p}: {len(data)} bytes fail their checksum ({data.count(0)} zeros)")
            elif op == "xattr":
                p = pick()
                if rnd.random() < 0.5:
                    os.setxattr(p, "user.k", rnd.randbytes(rnd.randint(0, 300)), follow_symlinks=False)
                else:
                    os.getxattr(p, "user.k", follow_symlinks=False)
            elif op == "readdir":
                os.listdir(os.path.join(shared, rnd.choice(dirs)))
            elif op == "chmod":
                os.chmod(pick(), rnd.choice([0o644, 0o600, 0o755]))
            else:
                os.lstat(pick())
        except OSError as exc:
            t.error(op, exc, race=True, where=where)
    return t


# ------------------------------------------------------------------------------------------ locked logs


def log_record(tag: str, i: int, spread: int = 80) -> bytes:
    """Record `i` of writer `tag`: ``<tag:i:len:payload:crc32>`` and a newline (payload 1..`spread` repeats)."""
    payload = (f"{tag}-{i}-" * (1 + (i * 7919) % spread)).encode()
    return b"<%s:%d:%d:%s:%08x>\n" % (tag.encode(), i, len(payload), payload, zlib.crc32(payload))


def lock(kind: str, fd: int, how: int) -> None:
    """`fcntl.flock` (`kind` "flock") or `fcntl.lockf` (any other `kind`) of `fd`."""
    if kind == "flock":
        fcntl.flock(fd, how)
    else:
        fcntl.lockf(fd, how)


def parse_log(data: bytes) -> tuple[Counter[tuple[str, int]], list[str]]:
    """The (tag, seq) records of a log with how often each appears, and its problems (a torn end, torn or
    corrupt records)."""
    records: Counter[tuple[str, int]] = Counter()
    problems = []
    if data and not data.endswith(b"\n"):
        problems.append(f"ends in a torn record {data[-60:]!r}")
    for line in data.split(b"\n")[:-1]:
        try:
            if not (line.startswith(b"<") and line.endswith(b">")):
                raise ValueError(line)
            tag, seq, length, rest = line[1:-1].split(b":", 3)
            payload, _, crc = rest.rpartition(b":")
            if len(payload) != int(length) or zlib.crc32(payload) != int(crc, 16):
                raise ValueError(line)
            records[(tag.decode(), int(seq))] += 1
        except ValueError:
            problems.append(f"torn or corrupt record {line[:80]!r}")
    return records, problems


def append_records(path: str, tag: str, n: int, kind: str, style: str, spread: int = 60) -> dict[str, Any]:
    """Append records 0..`n`-1 of `tag` to `path` under exclusive `kind` locks. `style` "keep": one
    descriptor, lock / write / unlock, never fsync (the unlock must publish); else open, lock, append, fsync
    now and then, close (which releases the lock)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND) if style == "keep" else -1
    for i in range(n):
        rec = log_record(tag, i, spread)
        if style == "keep":
            lock(kind, fd, fcntl.LOCK_EX)
            assert os.write(fd, rec) == len(rec)
            lock(kind, fd, fcntl.LOCK_UN)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            lock(kind, fd, fcntl.LOCK_EX)
            assert os.write(fd, rec) == len(rec)
            if i % 5 == 0:
                os.fsync(fd)
            os.close(fd)
    if style == "keep":
        os.close(fd)
    return {"tag": tag, "n": n}


def check_locked_read(data: bytes, seen: int) -> tuple[int, list[str]]:
    """Judge a log read under a shared lock after `seen` records were seen: (records now, problems: a torn
    record at the end, fewer records than before)."""
    problems = []
    if data and not data.endswith(b"\n"):
        problems.append(f"a torn record at the end ({data[-40:]!r}) under a shared lock")
    count = data.count(b"\n")
    if count < seen:
        problems.append(f"{count} records after {seen} were seen")
    return max(seen, count), problems


def read_locked_log(path: str, kind: str, end: float) -> dict[str, Any]:
    """Read `path` whole under shared `kind` locks until `end`, judging each read (`check_locked_read`)."""
    reads, last, problems = 0, 0, []
    while time.monotonic() < end:
        with open(path, "rb") as f:
            lock(kind, f.fileno(), fcntl.LOCK_SH)
            data = f.read()  # released by close
        reads += 1
        last, found = check_locked_read(data, last)
        _, bad = parse_log(data)
        problems += [f"read {reads}: {p}" for p in found + bad[:1]]
        time.sleep(0.02)
    return {"reads": reads, "records": last, "problems": problems[:5]}


# ------------------------------------------------------------------------------------------ the tree


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a client sees below `root` (virtual files excluded): relative path -> (type, mode, nlink,
    size, inode, content digest or link target, xattrs)."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == Path(root):
            dirnames[:] = [d for d in dirnames if d not in VIRTUAL_NAMES]
            filenames = [f for f in filenames if f not in VIRTUAL_NAMES]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while piece := f.read(1 << 20):
                        h.update(piece)
                what = h.hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            else:
                what = ""
            xattrs = tuple(sorted((k, os.getxattr(p, k, follow_symlinks=False))
                                  for k in os.listxattr(p, follow_symlinks=False)))
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), st.st_mode & 0o7777, st.st_nlink, st.st_size,
                                             st.st_ino, what, xattrs)
    return out


# ------------------------------------------------------------------------------------------ child processes


def main(argv: Sequence[str]) -> int:
    """Run one worker and print its document (JSON) on stdout:

    - ``churn SHARED SEED SECONDS`` (16 names in "", d0, d1, d2; creates, reads twice as often, no chmod),
    - ``append PATH TAG N KIND STYLE`` (`append_records`),
    - ``read-log PATH KIND SECONDS`` (`read_locked_log`).
    """
    kind, *args = argv
    if kind == "churn":
        shared, seed, seconds = args[0], int(args[1]), float(args[2])
        ops = ("create", "create", "rename", "unlink", "mkdir", "rmdir", "link", "symlink", "read", "read",
               "xattr", "readdir", "stat")
        t = churn(shared, seed, time.monotonic() + seconds, names=[f"n{i}" for i in range(16)],
                  dirs=["", "d0", "d1", "d2"], ops=ops, fsync_share=0.3)
        doc = t.doc()
    elif kind == "append":
        doc = append_records(args[0], args[1], int(args[2]), args[3], args[4])
    elif kind == "read-log":
        doc = read_locked_log(args[0], args[1], time.monotonic() + float(args[2]))
    else:
        print(f"unknown workload {kind!r}", file=sys.stderr)
        return 2
    print(json.dumps(doc), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def worker_results(procs: Sequence[subprocess.Popen[str]], timeout: float | None = None
                   ) -> tuple[list[dict[str, Any]], list[str]]:
    """Wait for the worker processes (each prints one JSON document as its last line) and return (their
    documents, one line per worker that failed). A worker still running afterwards — the wait timed out or
    was interrupted — is killed."""
    results: list[dict[str, Any]] = []
    crashed: list[str] = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            if p.returncode != 0:
                who = " ".join(map(str, p.args[3:6])) if isinstance(p.args, list | tuple) else str(p.args)
                crashed.append(f"worker {who} exited {p.returncode}: {err[-1500:]}")
            else:
                results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results, crashed

"""fsx-like load on ONE mount, counting the mount's transaction conflicts and vanished-block retries.

Usage:  .venv/bin/python bench/fsx_load.py [--meta redis|sqlite] [--workers 4] [--ops 2000] [--maxlen 4194304]
        [--seed 1] [--block-size 64] [--keep]

It starts a private redis-server (``--meta redis``, the default) or uses a SQLite file, formats a volume on
a local directory (``--trash-days 0``), mounts it with a real `jfs mount` and runs ``--workers`` threads,
each doing ``--ops`` random operations on a file of its own, like fsx: writes, reads, truncates (down and
up), punched holes, zeroed ranges, copy_file_range inside the file, fsyncs and close/reopen. Every read is
checked against an in-memory model of the file; so is the whole file at the end. No other client exists.

It prints the throughput (operations per second over all workers) and, from the mount's log and
``.stats``: ``txn_retried`` warnings (a transaction that needed ≥ 4 tries) with their total tries,
``read_block_vanished`` events (a read that found a block deleted under it and re-resolved), and the
``.stats`` gauges this jfs has among: conflict restarts of metadata transactions
(``jfs_transaction_restart``: every retry, also single ones), compactions done/abandoned, deferred block
deletions (ADR 0010) and the mount's CPU seconds. Exits 1 on a read that differs from the model.
Figures of issue 11 (items 13, 14): docs/adr/0011-one-client-does-not-race-itself.md.

The operation sequence of a worker depends only on ``--seed``; timings (and so conflicts) do not.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jfs.testing.mounts import format_volume, mounted  # noqa: E402
from jfs.testing.servers import start_redis_server  # noqa: E402

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]

OPS = (
    ("write", 34), ("read", 30), ("truncate", 8), ("punch", 5), ("zero", 5), ("copy", 6), ("fsync", 6),
    ("reopen", 6),
)


def fallocate(fd: int, mode: int, off: int, length: int) -> None:
    if _libc.fallocate(fd, mode, off, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Worker(threading.Thread):
    def __init__(self, path: Path, ops: int, maxlen: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.ops = ops
        self.maxlen = maxlen
        self.rng = random.Random(seed)
        self.model = bytearray()
        self.done = 0
        self.error: str | None = None
        self.counts: dict[str, int] = {}

    def _range(self, limit: int) -> tuple[int, int]:
        rng = self.rng
        off = rng.randrange(0, max(1, limit))
        n = rng.choice((rng.randint(1, 4096), rng.randint(1, 65536), rng.randint(1, 262144)))
        return off, min(n, max(1, self.maxlen - off))

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # reported by main
            self.error = f"{self.path.name} after {self.done} ops: {type(exc).__name__}: {exc}"

    def _check(self, fd: int, off: int, n: int) -> None:
        got = os.pread(fd, n, off)
        want = bytes(self.model[off : off + n])
        if got != want:
            first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
            raise AssertionError(
                f"read [{off}, +{n}) differs from the model at byte {off + first} (got {len(got)} bytes, "
                f"want {len(want)})"
            )

    def _run(self) -> None:
        rng = self.rng
        names = [name for name, _ in OPS]
        weights = [w for _, w in OPS]
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for _ in range(self.ops):
                op = rng.choices(names, weights)[0]
                self.counts[op] = self.counts.get(op, 0) + 1
                size = len(self.model)
                if op == "write":
                    off, n = self._range(min(self.maxlen - 1, size + 65536))
                    data = rng.randbytes(n)
                    os.pwrite(fd, data, off)
                    if off > size:
                        self.model.extend(bytes(off - size))
                    self.model[off : off + n] = data
                elif op == "read":
                    if size:
                        off, n = self._range(size)
                        self._check(fd, off, n)
                elif op == "truncate":
                    new = rng.randrange(0, self.maxlen)
                    os.ftruncate(fd, new)
                    if new < size:
                        del self.model[new:]
                    else:
                        self.model.extend(bytes(new - size))
                elif op in ("punch", "zero"):
                    if size:
                        off, n = self._range(size)
                        mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE if op == "punch" else FALLOC_FL_ZERO_RANGE
                        fallocate(fd, mode, off, n)
                        end = min(off + n, size) if op == "punch" else off + n
                        if end > size:
                            self.model.extend(bytes(end - size))
                        self.model[off:end] = bytes(end - off)
                elif op == "copy":
                    if size > 2:
                        src = rng.randrange(0, size)
                        n = min(rng.randint(1, 262144), size - src)
                        dst = rng.randrange(0, min(self.maxlen - n, size + 65536))
                        if src < dst + n and dst < src + n:
                            continue  # overlapping ranges in one file: EINVAL by definition
                        done = os.copy_file_range(fd, fd, n, src, dst)
                        chunk = bytes(self.model[src : src + done])
                        if dst > size:
                            self.model.extend(bytes(dst - size))
                        self.model[dst : dst + done] = chunk
                elif op == "fsync":
                    os.fsync(fd)
                elif op == "reopen":
                    os.close(fd)
                    fd = os.open(self.path, os.O_RDWR)
                self.done += 1
            os.fsync(fd)
            self._check(fd, 0, len(self.model) + 1)
            if os.fstat(fd).st_size != len(self.model):
                raise AssertionError(f"size {os.fstat(fd).st_size}, model {len(self.model)}")
        finally:
            os.close(fd)


def count_log(text: str) -> dict[str, int]:
    retried = [m for m in re.finditer(r"event=txn_retried.*?tries=(\d+)", text)]
    return {
        "txn_retried": len(retried),
        "txn_retried_tries": sum(int(m.group(1)) for m in retried),
        "read_block_vanished": len(re.findall(r"event=read_block_vanished", text)),
    }


def read_stats(mnt: Path) -> dict[str, float]:
    try:
        text = (mnt / ".stats").read_text()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if any(w in name for w in ("restart", "vanished", "deferred", "compaction", "cpu_usage")):
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meta", choices=("redis", "sqlite"), default="redis")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--maxlen", type=int, default=4 << 20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--block-size", type=int, default=64, help="KiB (small blocks: more blocks per slice)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (log, bucket)")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="jfs-fsx-"))
    base.chmod(0o755)
    server = None
    try:
        if args.meta == "redis":
            server = start_redis_server()
            url = f"{server.url}/1"
        else:
            url = f"sqlite3://{base}/meta.db"
        format_volume(url, str(base / "bucket"), "fsx", "--storage", "file", "--block-size", str(args.block_size))
        mnt = base / "mnt"
        with mounted(url, mnt):
            workers = [
                Worker(mnt / f"fsx{i}", args.ops, args.maxlen, args.seed * 1000 + i) for i in range(args.workers)
            ]
            start = time.monotonic()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.monotonic() - start
            stats = read_stats(mnt)
        log_text = (base / "mnt.log").read_text(errors="replace")
        counts = count_log(log_text)
        ops = sum(w.done for w in workers)
        errors = [w.error for w in workers if w.error]
        print(f"meta={args.meta} workers={args.workers} ops/worker={args.ops} maxlen={args.maxlen} seed={args.seed}")
        print(f"ops={ops} seconds={elapsed:.2f} ops_per_s={ops / elapsed:.0f}")
        for k, v in counts.items():
            print(f"{k}={v}")
        for k, v in sorted(stats.items()):
            print(f"{k}={v:g}")
        for e in errors:
            print(f"ERROR {e}")
        if args.keep:
            print(f"kept {base}")
        return 1 if errors else 0
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

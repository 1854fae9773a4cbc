"""Bounded soak: several mounts of one volume, many processes doing mixed metadata and data work for N
seconds, then a consistency check. A script (minutes, not hours), not a CI test.

Usage:  .venv/bin/python bench/soak.py [--seconds 180] [--mounts 3] [--procs 4]
        [--meta sqlite|redis] [--storage file|s3] [--block-size 1024] [--compress none|lz4|zstd] [--keep]

It formats a throwaway volume (SQLite + local directory by default; ``--meta redis`` starts a private
redis-server, ``--storage s3`` a private SeaweedFS), mounts it ``--mounts`` times and starts ``--procs``
workers per mount, cycling through four kinds:

* churn:  creates (write a temp file, rename it over a shared name), renames, unlinks, mkdir/rmdir, hard
          and symbolic links, xattrs, readdir, stat — all in directories shared by every mount. File
          contents carry their own checksum; races make ENOENT, EEXIST, ENOTEMPTY, … legitimate answers.
* data:   private files changed in place — new files, random overwrites, O_APPEND appends, truncates,
          fsyncs, renames, unlinks — checked against an in-memory model on every read.
* append: records appended under flock / fcntl locks to two logs shared by every mount.
* reader: reads of the logs under shared locks (no torn record, never fewer records than before), and
          reads of shared files (checksums).

Every worker reports its operations and errors (expected race answers apart from unexpected ones). At the
end, once the mounts are idle: every mount must see the same tree and bytes (names, types, modes, nlink,
sizes, content digests, xattrs); nlink must match the tree; the logs must hold every record exactly once,
whole; private files must equal their models; ``jfs status`` UsedSpace/UsedInodes must equal a walk of the
tree; with a ``file`` bucket every object a file references must exist (unreferenced objects are counted:
gc's business). Then ``jfs fsck`` if this jfs has it. Prints the figures; exits 1 if anything is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from jfs.testing.workloads import (
    JUICEFS_DELETED_READ,
    SEALED_SIZES,
    Tally,
    check_locked_read,
    churn,
    is_sealed,
    lock,
    log_record,
    parse_log,
    snapshot,
    worker_results,
)

KINDS = ("churn", "data", "append", "reader")
NAMES = [f"n{i}" for i in range(24)]
DIRS = ["", "d0", "d1", "d2", "d3"]


# =========================================================================================== workers

def worker_churn(root: str, seed: int, end: float, deleted_read: frozenset[int] = frozenset()) -> dict[str, Any]:
    """Churn (`jfs.testing.workloads.churn`) in the directories every mount shares, with 1.1 MB files too."""
    return churn(os.path.join(root, "shared"), seed, end, names=NAMES, dirs=DIRS, sizes=(*SEALED_SIZES, 1_100_000),
                 fsync_share=0.2, deleted_read=deleted_read).doc()


MAX_PRIVATE = 12
MAX_LEN = 8 << 20


def worker_data(root: str, seed: int, end: float) -> dict[str, Any]:
    rnd, t = random.Random(seed), Tally()
    home = os.path.join(root, "private", f"w{seed}")
    os.makedirs(home, exist_ok=True)
    model: dict[str, bytearray] = {}
    serial = 0

    def check(path: str, off: int, got: bytes) -> None:
        want = bytes(model[path][off:off + len(got)])
        if got != want or (off + len(got) < len(model[path]) and not got):
            t.bad.append(f"{path} at {off}: {len(got)} bytes read differ from what was written")

    while time.monotonic() < end:
        if not model or (len(model) < MAX_PRIVATE and rnd.random() < 0.1):
            op = "new"
        else:
            op = rnd.choice(["overwrite", "overwrite", "append", "truncate", "read", "read", "fullread", "fsync",
                             "rename", "unlink"])
        t.ops[op] += 1
        path = rnd.choice(sorted(model)) if model and op != "new" else ""
        where = ""
        try:
            if op == "new":
                serial += 1
                path = os.path.join(home, f"f{serial}")
                data = rnd.randbytes(rnd.choice([0, 1, 4095, 4096, 70_000, 1 << 20, 3 << 20]))
                with open(path, "wb") as f:
                    f.write(data)
                model[path] = bytearray(data)
            elif op == "overwrite":
                cur = model[path]
                off = rnd.randint(0, min(len(cur) + 4096, MAX_LEN))
                data = rnd.randbytes(rnd.choice([1, 7, 4096, 30_000, 300_000]))
                fd = os.open(path, os.O_WRONLY)
                try:
                    assert os.pwrite(fd, data, off) == len(data)
                finally:
                    os.close(fd)
                if off > len(cur):
                    cur.extend(bytes(off - len(cur)))
                cur[off:off + len(data)] = data
            elif op == "append":
                data = rnd.randbytes(rnd.choice([1, 100, 5000, 200_000]))
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                try:
                    assert os.write(fd, data) == len(data)
                finally:
                    os.close(fd)
                model[path].extend(data)
            elif op == "truncate":
                cur = model[path]
                n = rnd.randint(0, min(MAX_LEN, len(cur) * 3 // 2 + 10))
                os.truncate(path, n)
                if n < len(cur):
                    del cur[n:]
                else:
                    cur.extend(bytes(n - len(cur)))
            elif op == "read":
                cur = model[path]
                off = rnd.randint(0, len(cur))
                where = f"open {path}"
                fd = os.open(path, os.O_RDONLY)
                try:
                    where = f"pread {path} at {off}"
                    got = os.pread(fd, rnd.choice([1, 4096, 100_000, 1 << 20]), off)
                    where = f"close {path}"
                finally:
                    os.close(fd)
                check(path, off, got)
            elif op == "fullread":
                where = f"open {path}"
                with open(path, "rb") as f:
                    where = f"read {path}"
                    data = f.read()
                    where = f"close {path}"
                if data != bytes(model[path]):
                    t.bad.append(f"{path}: whole file ({len(data)} bytes) differs from the model ({len(model[path])})")
            elif op == "fsync":
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            elif op == "rename":
                serial += 1
                new = os.path.join(home, f"f{serial}")
                os.rename(path, new)
                model[new] = model.pop(path)
            else:
                os.unlink(path)
                del model[path]
        except OSError as exc:
            t.error(op, exc, race=False, where=where)
            if op == "new" and path:
                model.pop(path, None)
                with contextlib.suppress(OSError):
                    os.unlink(path)
    digests = {os.path.relpath(p, root): hashlib.sha256(bytes(d)).hexdigest() for p, d in model.items()}
    return t.doc(files=digests)


def worker_append(root: str, seed: int, end: float, tag: str, close_to_open: bool = False) -> dict[str, Any]:
    """Appends records to the shared logs under exclusive locks. With `close_to_open` every record is
    written through its own descriptor, after an fstat under the lock, and fsynced before the lock goes:
    what a client that only promises close-to-open consistency needs (JuiceFS: buffered writes are not
    flushed on unlock, and an O_APPEND write goes to the end the kernel last heard of, which the fstat
    refreshes when the mount's attribute cache is 0)."""
    rnd, t = random.Random(seed), Tally()
    written: dict[str, int] = {"flock": 0, "fcntl": 0}
    keep = {kind: os.open(os.path.join(root, f"log-{kind}"), os.O_WRONLY | os.O_APPEND) for kind in written}
    try:
        while time.monotonic() < end:
            kind = rnd.choice(["flock", "fcntl"])
            rec = log_record(tag, written[kind])
            t.ops[kind] += 1
            try:
                if not close_to_open and rnd.random() < 0.5:  # one long-lived descriptor: lock, append, unlock
                    fd = keep[kind]
                    lock(kind, fd, fcntl.LOCK_EX)
                    try:
                        assert os.write(fd, rec) == len(rec)
                    finally:
                        lock(kind, fd, fcntl.LOCK_UN)
                else:  # open, lock, append, sometimes fsync, close
                    fd = os.open(os.path.join(root, f"log-{kind}"), os.O_WRONLY | os.O_APPEND)
                    try:
                        lock(kind, fd, fcntl.LOCK_EX)
                        if close_to_open:
                            os.fstat(fd)
                        assert os.write(fd, rec) == len(rec)
                        if close_to_open or rnd.random() < 0.2:
                            os.fsync(fd)
                    finally:
                        os.close(fd)
                written[kind] += 1
            except OSError as exc:
                t.error(kind, exc, race=False)
            time.sleep(rnd.random() * 0.01)
    finally:
        for fd in keep.values():
            os.close(fd)
    return t.doc(tag=tag, written=written)


def worker_reader(root: str, seed: int, end: float, deleted_read: frozenset[int] = frozenset()) -> dict[str, Any]:
    """Reads of the shared logs under shared locks and of the shared files (`deleted_read`: as `churn`'s)."""
    rnd, t = random.Random(seed), Tally()
    seen = {"flock": 0, "fcntl": 0}
    shared = os.path.join(root, "shared")
    while time.monotonic() < end:
        op = rnd.choice(["flock", "fcntl", "file", "file", "file", "walk"])
        t.ops[op] += 1
        where = ""
        try:
            if op in seen:
                with open(os.path.join(root, f"log-{op}"), "rb") as f:
                    lock(op, f.fileno(), fcntl.LOCK_SH)
                    data = f.read()
                seen[op], problems = check_locked_read(data, seen[op])
                t.bad += [f"log-{op}: {p}" for p in problems]
            elif op == "file":
                p = os.path.join(shared, rnd.choice(DIRS), rnd.choice(NAMES))
                if os.path.isfile(p) and not os.path.islink(p):
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
            else:
                for _dirpath, _dirs, _files in os.walk(shared):
                    pass
        except OSError as exc:
            t.error(op, exc, race=op in ("file", "walk"), where=where)
        time.sleep(0.005)
    return t.doc()


def run_worker(kind: str, root: str, seed: int, seconds: float, tag: str, close_to_open: bool = False,
               deleted_read: frozenset[int] = frozenset()) -> None:
    end = time.monotonic() + seconds
    if kind == "churn":
        doc = worker_churn(root, seed, end, deleted_read)
    elif kind == "data":
        doc = worker_data(root, seed, end)
    elif kind == "append":
        doc = worker_append(root, seed, end, tag, close_to_open)
    else:
        doc = worker_reader(root, seed, end, deleted_read)
    print(json.dumps({"kind": kind, "seed": seed, **doc}), flush=True)


# ====================================================================================== verification

def _ask(root: Path, ino: int) -> dict[str, Any]:
    with open(root / ".control", "r+b", buffering=0) as f:
        f.write(json.dumps({"op": "info", "inode": ino, "recursive": False}).encode())
        f.seek(0)
        out = b""
        while piece := f.read(1 << 20):
            out += piece
    doc: dict[str, Any] = json.loads(out)
    return doc


def jfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jfs.cli.main", *args], capture_output=True, text=True, timeout=600)


def verify(url: str, mounts: list[Path], results: list[dict[str, Any]], bucket: Path | None,
           volume: str) -> tuple[list[str], dict[str, Any]]:
    problems: list[str] = []
    figures: dict[str, Any] = {}
    time.sleep(1.5)  # kernel attribute / entry caches (1 s) expire
    snaps = [snapshot(m) for m in mounts]
    tree = snaps[0]
    figures["entries"] = len(tree)
    for m, s in zip(mounts[1:], snaps[1:], strict=True):
        if s != tree:
            diff = sorted(k for k in set(tree) | set(s) if tree.get(k) != s.get(k))
            problems.append(f"{m} sees another tree than {mounts[0]}: {len(diff)} paths differ, e.g. "
                            f"{[(k, tree.get(k), s.get(k)) for k in diff[:3]]}")
    # nlink against the tree
    names: Counter[int] = Counter()
    subdirs: Counter[str] = Counter()
    for path, (typ, _m, _n, _s, ino, _w, _x) in tree.items():
        if typ == stat.S_IFDIR:
            subdirs[os.path.dirname(path)] += 1
        else:
            names[ino] += 1
    for path, (typ, _m, nlink, _s, ino, _w, _x) in tree.items():
        want = 2 + subdirs[path] if typ == stat.S_IFDIR else names[ino]
        if nlink != want:
            problems.append(f"{path}: nlink {nlink}, the tree says {want}")
    # usage counters
    space: dict[int, int] = {}
    for _typ, _m, _n, size, ino, _w, _x in tree.values():
        space[ino] = 4096 if size == 0 else -(-size // 4096) * 4096
    doc = json.loads(jfs("status", url, "--json").stdout)["Statistic"]
    figures["used_space"], figures["used_inodes"] = doc["UsedSpace"], doc["UsedInodes"]
    if (doc["UsedSpace"], doc["UsedInodes"]) != (sum(space.values()), len(space)):
        problems.append(f"jfs status says UsedSpace {doc['UsedSpace']} UsedInodes {doc['UsedInodes']}, the tree "
                        f"{sum(space.values())} / {len(space)}")
    # logs
    for kind in ("flock", "fcntl"):
        want = Counter({(r["tag"], i): 1 for r in results if r["kind"] == "append" for i in range(r["written"][kind])})
        figures[f"log_{kind}_records"] = sum(want.values())
        for m in mounts:
            records, bad = parse_log((m / f"log-{kind}").read_bytes())
            problems += [f"{m}/log-{kind}: {b}" for b in bad[:5]]
            if records != want:
                problems.append(f"{m}/log-{kind}: {sum((want - records).values())} records lost, "
                                f"{sum((records - want).values())} extra, of {sum(want.values())}")
    # private files against the models
    checked = 0
    for r in results:
        for rel, digest in r.get("files", {}).items():
            for m, snap in zip(mounts, snaps, strict=True):
                got = snap.get(rel)
                if got is None or got[5] != digest:
                    problems.append(f"{m}/{rel}: content differs from its writer's model")
            checked += 1
    figures["private_files_checked"] = checked
    # objects referenced by files exist (file bucket)
    if bucket is not None:
        referenced: set[str] = set()
        inodes = {v[4] for v in tree.values() if v[0] == stat.S_IFREG}
        for ino in inodes:
            info = _ask(mounts[0], ino)
            for c in info.get("chunks", []):
                for s in c["slices"]:
                    referenced.update(s["objects"])
        present = {str(p.relative_to(bucket)) for p in (bucket / volume / "chunks").rglob("*")
                   if p.is_file() and not p.name.startswith(".jfs-tmp.")} if (bucket / volume).exists() else set()
        missing = referenced - present
        figures["objects_referenced"] = len(referenced)
        figures["objects_unreferenced"] = len(present - referenced)
        if missing:
            problems.append(f"{len(missing)} referenced objects are missing, e.g. {sorted(missing)[:3]}")
    # jfs fsck, once it exists
    res = jfs("fsck", url)
    if res.returncode == 2 and "No such command" in res.stderr:
        figures["fsck"] = "not available (own walk above)"
    else:
        figures["fsck"] = "clean" if res.returncode == 0 else f"FAILED (exit {res.returncode})"
        if res.returncode != 0:
            problems.append(f"jfs fsck: {(res.stdout + res.stderr)[-2000:]}")
    return problems, figures


# ============================================================================================== main

def fuse_ops(mnt: Path) -> int:
    try:
        text = (mnt / ".stats").read_text()
    except OSError:
        return -1
    return int(sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith("jfs_fuse_ops_total")))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--mounts", type=int, default=3)
    ap.add_argument("--procs", type=int, default=4, help="workers per mount (kinds cycle churn, data, append, reader)")
    ap.add_argument("--meta", choices=["sqlite", "redis"], default="sqlite")
    ap.add_argument("--storage", choices=["file", "s3"], default="file")
    ap.add_argument("--block-size", type=int, default=1024, help="KiB (smaller blocks: more objects)")
    ap.add_argument("--compress", default="none")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (logs, bucket)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--tag", default="", help=argparse.SUPPRESS)
    ap.add_argument("--close-to-open", action="store_true", help=argparse.SUPPRESS)
    # A JuiceFS mount: a read of a shared file another client deleted while it was open may answer EBADF.
    ap.add_argument("--juicefs-deleted-reads", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        run_worker(args.worker, args.root, args.seed, args.seconds, args.tag, args.close_to_open,
                   JUICEFS_DELETED_READ if args.juicefs_deleted_reads else frozenset())
        return 0

    from jfs.testing.mounts import format_volume, mounted

    base = Path(tempfile.mkdtemp(prefix="jfs-soak-"))
    base.chmod(0o755)
    print(f"soak: {args.mounts} mounts x {args.procs} workers, {args.seconds:g} s, meta {args.meta}, storage "
          f"{args.storage}, block {args.block_size} KiB, compress {args.compress}; dir {base}", flush=True)
    ok = False
    with contextlib.ExitStack() as stack:
        if args.meta == "redis":
            from jfs.testing.servers import start_redis_server

            srv = start_redis_server("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
            stack.callback(srv.stop)
            url = f"{srv.url}/1"
        else:
            url = f"sqlite3://{base}/meta.db"
        extra = ["--block-size", str(args.block_size), "--compress", args.compress]
        bucket: Path | None = None
        if args.storage == "s3":
            from jfs.testing.seaweed import seaweed_s3

            s3 = stack.enter_context(seaweed_s3("soak"))
            format_volume(url, s3.url, "soak-vol", "--storage", "s3", "--access-key", s3.access_key,
                          "--secret-key", s3.secret_key, *extra)
        else:
            bucket = base / "bucket"
            format_volume(url, str(bucket), "soak-vol", *extra)
        mounts = [stack.enter_context(mounted(url, base / f"m{i}")) for i in range(args.mounts)]
        root = mounts[0]
        for d in DIRS[1:]:
            (root / "shared" / d).mkdir(parents=True)
        (root / "private").mkdir()
        for kind in ("flock", "fcntl"):
            (root / f"log-{kind}").write_bytes(b"")

        procs = []
        start = time.monotonic()
        for i, m in enumerate(mounts):
            for k in range(args.procs):
                kind = KINDS[k % len(KINDS)]
                seed = 100 * i + k
                procs.append(subprocess.Popen(
                    [sys.executable, __file__, "--worker", kind, "--root", str(m), "--seed", str(seed),
                     "--seconds", str(args.seconds), "--tag", f"m{i}w{k}"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        try:
            while any(p.poll() is None for p in procs):
                time.sleep(min(15.0, max(0.5, args.seconds / 12)))
                if any(p.poll() is None for p in procs):
                    ops = [fuse_ops(m) for m in mounts]
                    print(f"  {time.monotonic() - start:6.0f} s  FUSE requests served per mount: {ops}", flush=True)
                if time.monotonic() - start > args.seconds + 300:
                    raise RuntimeError("workers did not finish in time")
            results, crashed = worker_results(procs)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        elapsed = time.monotonic() - start
        fuse_total = sum(fuse_ops(m) for m in mounts)
        alive = [os.path.ismount(m) for m in mounts]

        ops: Counter[str] = Counter()
        expected: Counter[str] = Counter()
        unexpected: list[str] = []
        bad: list[str] = []
        per_kind: Counter[str] = Counter()
        for r in results:
            ops.update({f"{r['kind']}.{k}": v for k, v in r["ops"].items()})
            per_kind[r["kind"]] += sum(r["ops"].values())
            expected.update(r["expected"])
            unexpected += r["unexpected"]
            bad += r["bad"]
        problems, figures = verify(url, mounts, results, bucket, "soak-vol")
        problems = crashed + [f"unexpected error: {u}" for u in unexpected[:20]] + [f"bad read: {b}" for b in bad[:20]] \
            + ([] if all(alive) else [f"mounts alive: {alive}"]) + problems

        total = sum(ops.values())
        print(f"\nsoak finished in {elapsed:.0f} s")
        print(f"  operations done: {total} ({total / elapsed:.0f}/s) — " +
              ", ".join(f"{k} {v}" for k, v in sorted(per_kind.items())))
        print(f"  FUSE requests served: {fuse_total} ({fuse_total / elapsed:.0f}/s)")
        print(f"  errors: {sum(expected.values())} expected race answers ({dict(expected)}), "
              f"{sum(r['n_unexpected'] for r in results)} unexpected, {sum(r['n_bad'] for r in results)} bad reads")
        print("  consistency: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
        if problems:
            print(f"  PROBLEMS ({len(problems)}):")
            for p in problems[:40]:
                print(f"    - {p}")
        else:
            print("  result: consistent — every mount sees the same tree and bytes, counters exact, nothing lost")
        ok = not problems
    if args.keep:
        print(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

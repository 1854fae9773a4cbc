"""The Python SDK next to a jfs FUSE mount and a JuiceFS 1.4.2 mount: same machine, same engine and bucket
kind (SQLite + local directory), one run, alternating rounds.

Usage:  .venv/bin/python bench/sdk_bench.py [--rounds 3] [--big-mib 512] [--small 2000] [--dir-entries 10000]
        [--workdir DIR] [--juicefs PATH] [--only ROW ...] [--systems sdk,jfs mount,juicefs mount]

``--only`` runs the rows whose name contains ROW (e.g. ``--only '4 KiB create' --only 'big read 4t'``);
``--systems`` a subset of the three. CPU rows: seconds of CPU of this process plus the mount's daemon
(for the SDK: the whole client), per GiB or per 1,000 files; their ratio is the mount's over the SDK's.

Needs root and /dev/fuse for the two mounts (the SDK needs neither). Every volume is formatted with
``--trash-days 0``; each system gets its own SQLite file and bucket directory. Rows:

* big file write / read, MiB/s: `--big-mib` MiB in 1 MiB writes (1 thread: one file; 4 threads: one file
  each), then read back through a new open (the kernel's page cache dropped for the mounts);
* small files: `--small` files of 4 KiB created + written + closed (a buffered `open(..., "wb")` on every
  system), then read whole (the mounts: `open` + `read` + close; the SDK: `read_bytes`), then stat'ed (per
  second, one thread);
* listdir of `--dir-entries` entries (names only; entries/s).

Prints a markdown table: the median of the rounds for each system, and the SDK's ratio to each mount.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jfs
from jfs.testing.mounts import is_mounted

MiB = 1 << 20
BLOCK = b"\xa5" * MiB
SMALL = b"s" * 4096


class PosixTarget:
    """A mounted file system driven with plain os calls."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write_file(self, path: str, mib: int) -> None:
        with open(self.root / path.lstrip("/"), "wb") as f:
            for _ in range(mib):
                f.write(BLOCK)

    def read_file(self, path: str) -> int:
        n = 0
        with open(self.root / path.lstrip("/"), "rb") as f:
            while chunk := f.read(MiB):
                n += len(chunk)
        return n

    def put_small(self, path: str) -> None:
        with open(self.root / path.lstrip("/"), "wb") as f:
            f.write(SMALL)

    def get_small(self, path: str) -> bytes:
        with open(self.root / path.lstrip("/"), "rb") as f:
            return f.read()

    def stat(self, path: str) -> Any:
        return os.stat(self.root / path.lstrip("/"))

    def mkdir(self, path: str) -> None:
        os.makedirs(self.root / path.lstrip("/"), exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(self.root / path.lstrip("/"))

    def drop_caches(self) -> None:
        subprocess.run(["sync"], check=False)
        with contextlib.suppress(OSError), open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


class SdkTarget:
    """The same operations through a `jfs.Client`."""

    def __init__(self, client: jfs.Client) -> None:
        self.c = client

    def write_file(self, path: str, mib: int) -> None:
        with self.c.open(path, "wb") as f:
            for _ in range(mib):
                f.write(BLOCK)

    def read_file(self, path: str) -> int:
        n = 0
        with self.c.open(path, "rb") as f:
            while chunk := f.read(MiB):
                n += len(chunk)
        return n

    def put_small(self, path: str) -> None:
        # The same code as the mounts' (a buffered `open`): the SDK sends the bytes with the close.
        with self.c.open(path, "wb") as f:
            f.write(SMALL)

    def get_small(self, path: str) -> bytes:
        # The SDK's whole-file read: open + read + close in one call.
        return self.c.read_bytes(path)

    def stat(self, path: str) -> Any:
        return self.c.stat(path)

    def mkdir(self, path: str) -> None:
        self.c.makedirs(path, exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return self.c.listdir(path)

    def drop_caches(self) -> None:
        # The bucket and cache files are in the kernel's page cache for the SDK too: write them back and drop
        # them as for the mounts, so reads are as cold and the next writes do not compete with the write-back.
        PosixTarget.drop_caches(self)  # type: ignore[arg-type]


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def parallel(n: int, fn: Callable[[int], Any]) -> None:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            fn(i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def wanted(args: argparse.Namespace, row: str) -> bool:
    """Whether `--only` (substrings of row names; none given = every row) asks for `row`."""
    return not args.only or any(o in row for o in args.only)


def proc_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of processes `pids` so far (gone ones count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def mount_pids(mnt: Path) -> list[int]:
    """The processes whose command line names mount point `mnt` (a daemonized mount and its helpers)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if str(mnt).encode() in (d / "cmdline").read_bytes().split(b"\0"):
                    out.append(int(d.name))
    return out


def one_round(t: Any, tag: str, args: argparse.Namespace, pids: list[int]) -> dict[str, float]:
    """One round of every wanted row on target `t`; CPU seconds are this process's plus those of `pids`
    (the mount's daemon)."""
    out: dict[str, float] = {}
    base = f"/bench-{tag}"
    t.mkdir(base)

    def cpu() -> float:
        return proc_cpu([os.getpid(), *pids])

    for threads in (1, 4):
        w, r = f"big write {threads}t", f"big read {threads}t"
        if not (wanted(args, w) or wanted(args, r)):
            continue
        mib = args.big_mib // threads
        names = [f"{base}/big{threads}-{k}" for k in range(threads)]
        c0 = cpu()
        secs = timed(lambda n=threads, m=mib, files=names: parallel(n, lambda i: t.write_file(files[i], m)))
        if wanted(args, w):
            out[f"{w} (MiB/s)"] = args.big_mib / secs
            out[f"{w} (CPU s/GiB)"] = (cpu() - c0) / args.big_mib * 1024
        if wanted(args, r):
            t.drop_caches()
            c0 = cpu()
            secs = timed(lambda n=threads, files=names: parallel(n, lambda i: t.read_file(files[i])))
            out[f"{r} (MiB/s)"] = args.big_mib / secs
            out[f"{r} (CPU s/GiB)"] = (cpu() - c0) / args.big_mib * 1024
    if any(wanted(args, row) for row in ("4 KiB create+write", "4 KiB read", "stat")):
        t.mkdir(f"{base}/small")
        c0 = cpu()
        secs = timed(lambda: [t.put_small(f"{base}/small/f{i}") for i in range(args.small)])
        if wanted(args, "4 KiB create+write"):
            out["4 KiB create+write (files/s)"] = args.small / secs
            out["4 KiB create+write (CPU s/1000 files)"] = (cpu() - c0) / args.small * 1000
        if wanted(args, "4 KiB read"):
            t.drop_caches()
            c0 = cpu()
            secs = timed(lambda: [t.get_small(f"{base}/small/f{i}") for i in range(args.small)])
            out["4 KiB read (files/s)"] = args.small / secs
            out["4 KiB read (CPU s/1000 files)"] = (cpu() - c0) / args.small * 1000
        if wanted(args, "stat"):
            secs = timed(lambda: [t.stat(f"{base}/small/f{i}") for i in range(args.small)])
            out["stat (ops/s)"] = args.small / secs
    return out


def fill_dir(t: Any, path: str, n: int) -> None:
    t.mkdir(path)
    for i in range(n):
        t.put_small(f"{path}/e{i:06d}")


@contextlib.contextmanager
def mount(cmd: list[str], mnt: Path, umount: list[str]) -> Iterator[Path]:
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    deadline = time.monotonic() + 30
    while not is_mounted(str(mnt)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{mnt} did not mount")
        time.sleep(0.1)
    try:
        yield mnt
    finally:
        subprocess.run(umount, capture_output=True, timeout=120)
        if is_mounted(str(mnt)):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--big-mib", type=int, default=512)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--dir-entries", type=int, default=10000)
    ap.add_argument("--workdir")
    ap.add_argument("--juicefs", default=str(Path(sys.executable).parent / "juicefs"))
    ap.add_argument("--only", action="append", default=[], metavar="ROW",
                    help="run only the rows whose name contains ROW (repeatable): 'big read 4t', '4 KiB', "
                         "'listdir', ...")
    ap.add_argument("--systems", default="sdk,jfs mount,juicefs mount",
                    help="comma-separated subset of: sdk, jfs mount, juicefs mount")
    args = ap.parse_args()
    systems = [x.strip() for x in args.systems.split(",") if x.strip()]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="jfs-sdk-bench-"))
    jfs_bin = str(Path(sys.executable).parent / "jfs")
    jfs_url = f"sqlite3://{work}/jfs.db"
    jfs_url_sdk = jfs_url
    jfs_fmt = [jfs_bin, "format", jfs_url, "bench-jfs", "--bucket", str(work / "jfs-bucket"), "--trash-days", "0"]
    juice_url = f"sqlite3://{work}/juicefs.db"
    juice_fmt = [args.juicefs, "format", juice_url, "bench-juicefs", "--bucket", str(work / "juicefs-bucket"),
                 "--trash-days", "0"]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
    listing = f"listdir {args.dir_entries}"
    try:
        with contextlib.ExitStack() as stack:
            targets: dict[str, Any] = {}
            pids: dict[str, list[int]] = {}
            if "jfs mount" in systems:
                subprocess.run(jfs_fmt, check=True, capture_output=True)
                jm = stack.enter_context(mount(
                    [jfs_bin, "mount", jfs_url, str(work / "jfs-mnt"), "-d", "--cache-dir", str(work / "jfs-cache")],
                    work / "jfs-mnt", [jfs_bin, "umount", str(work / "jfs-mnt")]))
                targets["jfs mount"], pids["jfs mount"] = PosixTarget(jm), mount_pids(jm)
            elif "sdk" in systems:
                subprocess.run(jfs_fmt, check=True, capture_output=True)
            if "juicefs mount" in systems:
                subprocess.run(juice_fmt, check=True, capture_output=True)
                um = stack.enter_context(mount(
                    [args.juicefs, "mount", juice_url, str(work / "juicefs-mnt"), "-d", "--cache-dir",
                     str(work / "juicefs-cache")], work / "juicefs-mnt",
                    [args.juicefs, "umount", str(work / "juicefs-mnt")]))
                targets["juicefs mount"], pids["juicefs mount"] = PosixTarget(um), mount_pids(um)
            if "sdk" in systems:
                client = stack.enter_context(jfs.Client(jfs_url_sdk, cache_dir=str(work / "sdk-cache")))
                targets = {"sdk": SdkTarget(client), **targets}
                pids["sdk"] = []
            if wanted(args, listing):
                for name, t in targets.items():
                    fill_dir(t, f"/listing-{name.replace(' ', '-')}", args.dir_entries)
            for r in range(args.rounds):
                order = list(targets) if r % 2 == 0 else list(reversed(targets))
                for name in order:
                    t = targets[name]
                    row = one_round(t, f"{name.replace(' ', '-')}-{r}", args, pids[name])
                    if wanted(args, listing):
                        t.drop_caches()
                        secs = timed(lambda t=t, name=name: t.listdir(f"/listing-{name.replace(' ', '-')}"))
                        row[f"{listing} (entries/s)"] = args.dir_entries / secs
                    results[name].append(row)
                    print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v:,.2f}" for k, v in row.items()),
                          file=sys.stderr, flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    rows = list(next(iter(results.values()))[0])
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rows} for name, rs in results.items()}
    print(f"\nSQLite + local directory, {args.rounds} rounds (median), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    names = list(results)
    ratios = [(a, b) for a, b in (("sdk", "jfs mount"), ("sdk", "juicefs mount")) if a in med and b in med]
    print("| item | " + " | ".join(names) + "".join(f" | {a} / {b}" for a, b in ratios) + " |")
    print("|---|" + "---:|" * (len(names) + len(ratios)))
    for k in rows:
        cells = [f"{med[n][k]:,.2f}" if "CPU" in k else f"{med[n][k]:,.0f}" for n in names]
        # CPU rows: lower is better, the ratio is the mount's CPU over the SDK's (>1: the SDK uses less)
        cells += [f"{(med[b][k] / med[a][k]) if 'CPU' in k else (med[a][k] / med[b][k]):.2f}x" for a, b in ratios]
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

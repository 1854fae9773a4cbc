"""Encryption at rest, measured: a jfs mount of an encrypted volume next to the same volume unencrypted
and next to a JuiceFS 1.4.2 mount of an encrypted volume — same machine, SQLite + local bucket directory,
same run, alternating rounds.

Usage:  .venv/bin/python bench/crypto_bench.py [--rounds 3] [--big-mib 256] [--small 1000] [--compress lz4]
        [--only big-write|big-read|small-write|small-read ...] [--systems jfs-encrypted,jfs-plain,juicefs]
        [--workdir DIR] [--juicefs PATH]

Needs root and /dev/fuse. Every volume is formatted with ``--trash-days 0`` and ``--compress`` (lz4 by
default), the encrypted ones with the same passphrase-protected RSA-2048 key (aes256gcm-rsa). Mounts use a
zero-size disk cache, so every read after the page cache is dropped goes to the (local) bucket and through
the decryption. Rows:

* big file write / read, MiB/s: `--big-mib` MiB of incompressible data in 1 MiB writes, one thread, then
  read back through a new open after ``echo 3 > drop_caches``;
* small files: `--small` files of 4 KiB created + written + closed, then read back (per second).

`--only` runs just the named rows (a read row writes its files first, unmeasured); `--systems` picks
the mounts. Each round mounts every system in turn, in a rotated order (round r starts with system r), so
that no system always runs first or last in a round on a loaded machine.

Prints a markdown table: median (and range) of the rounds for each system, jfs-encrypted's ratio to jfs
plain and to JuiceFS encrypted, and the CPU seconds the mount's processes (utime + stime of every process
whose command line names the mount point, threads included) spent per GiB of big-file write/read —
steadier than MiB/s when the machine is shared.
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
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jfs.testing.mounts import is_mounted

MiB = 1 << 20
PASS = "bench-passphrase"


def _sh(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(args, check=True, capture_output=True, env=env, timeout=300)


def _drop_caches() -> None:
    os.sync()
    with contextlib.suppress(OSError), open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


@contextlib.contextmanager
def _mount(cmd: list[str], umount: list[str], mnt: Path, env: dict[str, str]) -> Iterator[Path]:
    mnt.mkdir(parents=True, exist_ok=True)
    _sh(*cmd, env=env)
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(str(mnt)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mnt} did not mount")
            time.sleep(0.05)
        yield mnt
    finally:
        subprocess.run(umount, capture_output=True, env=env)
        if is_mounted(str(mnt)):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


ROWS = {"big-write": "big write MiB/s", "big-read": "big read MiB/s", "small-write": "small write files/s",
        "small-read": "small read files/s"}
CPU_ROWS = {"big-write": "big write mount CPU s/GiB", "big-read": "big read mount CPU s/GiB"}
SYSTEMS = {"jfs-encrypted": "jfs encrypted", "jfs-plain": "jfs plain", "juicefs": "JuiceFS encrypted"}
TICK = os.sysconf("SC_CLK_TCK")


def _mount_cpu(mnt: Path) -> float:
    """CPU seconds so far of every process whose command line names `mnt` (the mount and, for JuiceFS,
    its supervisor)."""
    total = 0
    needle = str(mnt).encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            # JuiceFS rewrites its argv as one space-joined string.
            if needle not in (d / "cmdline").read_bytes().replace(b"\0", b" ").split():
                continue
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (all threads)
    return total / TICK


def _big(mnt: Path, data: bytes, mib: int, rows: set[str]) -> dict[str, float]:
    path = mnt / "big"
    out: dict[str, float] = {}
    c, t = _mount_cpu(mnt), time.perf_counter()
    with open(path, "wb") as f:
        for i in range(mib):
            f.write(data[(i % 8) * MiB : (i % 8 + 1) * MiB])
    # close() returned: every block is stored and the slices committed (jfs and JuiceFS flush on close).
    if "big-write" in rows:
        out["big-write"] = mib / (time.perf_counter() - t)
        out["cpu:big-write"] = (_mount_cpu(mnt) - c) * 1024 / mib
    if "big-read" in rows:
        _drop_caches()
        c, t = _mount_cpu(mnt), time.perf_counter()
        with open(path, "rb") as f:
            while f.read(MiB):
                pass
        out["big-read"] = mib / (time.perf_counter() - t)
        out["cpu:big-read"] = (_mount_cpu(mnt) - c) * 1024 / mib
    path.unlink()
    return out


def _small(mnt: Path, n: int, rows: set[str]) -> dict[str, float]:
    d = mnt / f"small-{time.monotonic_ns()}"
    d.mkdir()
    payload = os.urandom(4096)
    out: dict[str, float] = {}
    t = time.perf_counter()
    for i in range(n):
        with open(d / f"f{i}", "wb") as f:
            f.write(payload)
    if "small-write" in rows:
        out["small-write"] = n / (time.perf_counter() - t)
    if "small-read" in rows:
        _drop_caches()
        t = time.perf_counter()
        for i in range(n):
            with open(d / f"f{i}", "rb") as f:
                f.read()
        out["small-read"] = n / (time.perf_counter() - t)
    return out


def _cell(values: list[float]) -> str:
    med = statistics.median(values)
    fmt = "{:,.2f}" if med < 20 else "{:,.0f}"
    if len(values) < 2:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--compress", default="lz4", choices=["none", "lz4", "zstd"])
    ap.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS), help="rows to measure")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated: " + ", ".join(SYSTEMS))
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--juicefs", default=shutil.which("juicefs", path=os.path.dirname(sys.executable)))
    args = ap.parse_args()
    wanted = [SYSTEMS[s.strip()] for s in args.systems.split(",") if s.strip()]
    only = set(args.only)
    work = Path(tempfile.mkdtemp(prefix="crypto-bench-", dir=args.workdir))
    env = dict(os.environ, JFS_RSA_PASSPHRASE=PASS)
    key = work / "key.pem"
    key.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASS.encode())))
    jfs = [sys.executable, "-m", "jfs.cli.main"]
    systems: dict[str, tuple[list[str], list[str], Path]] = {}
    for name, extra in (("jfs encrypted", ["--encrypt-rsa-key", str(key)]), ("jfs plain", [])):
        if name not in wanted:
            continue
        tag = name.replace(" ", "-")
        meta = f"sqlite3://{work}/{tag}.db"
        _sh(*jfs, "format", meta, tag, "--bucket", str(work / f"{tag}-bucket"), "--trash-days", "0",
            "--compress", args.compress, *extra, env=env)
        mnt = work / f"{tag}-mnt"
        systems[name] = ([*jfs, "mount", meta, str(mnt), "-d", "--cache-size", "0", "--cache-dir",
                          str(work / f"{tag}-cache")], ["umount", str(mnt)], mnt)
    if args.juicefs and "JuiceFS encrypted" in wanted:
        meta = f"sqlite3://{work}/juicefs.db"
        _sh(args.juicefs, "format", meta, "juicefs-enc", "--storage", "file", "--bucket", str(work / "juicefs-bucket"),
            "--trash-days", "0", "--compress", args.compress, "--encrypt-rsa-key", str(key), env=env)
        mnt = work / "juicefs-mnt"
        systems["JuiceFS encrypted"] = ([args.juicefs, "mount", meta, str(mnt), "-d", "--no-usage-report",
                                         "--cache-size", "0", "--cache-dir", str(work / "juicefs-cache"),
                                         "--log", str(work / "juicefs.log")], [args.juicefs, "umount", str(mnt)], mnt)
    data = os.urandom(8 * MiB)
    rows: dict[str, dict[str, list[float]]] = {name: {} for name in systems}
    names = list(systems)
    try:
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                cmd, umount, mnt = systems[name]
                got: dict[str, float] = {}
                with _mount(cmd, umount, mnt, env) as m:
                    if only & {"big-write", "big-read"}:
                        got |= _big(m, data, args.big_mib, only)
                    if only & {"small-write", "small-read"}:
                        got |= _small(m, args.small, only)
                for row, v in got.items():
                    rows[name].setdefault(row, []).append(v)
                print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in got.items()), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.rounds} rounds, median (range); --big-mib {args.big_mib} --small {args.small} "
          f"--compress {args.compress}\n")
    print("| row | " + " | ".join(names) + " | enc/plain | enc/JuiceFS enc |")
    print("|---|" + "---:|" * (len(names) + 2))
    for row in [r for r in ROWS if r in only] + [f"cpu:{r}" for r in CPU_ROWS if r in only]:
        label = CPU_ROWS[row[4:]] if row.startswith("cpu:") else ROWS[row]
        med = {n: statistics.median(rows[n][row]) for n in names}

        def ratio(other: str, med: dict[str, float] = med) -> str:
            return f"{med['jfs encrypted'] / med[other]:.2f}×" if "jfs encrypted" in med and other in med else "-"

        print(f"| {label} | " + " | ".join(_cell(rows[n][row]) for n in names)
              + f" | {ratio('jfs plain')} | {ratio('JuiceFS encrypted')} |")


if __name__ == "__main__":
    main()

"""Encryption at rest, measured: a jfs mount of an encrypted volume next to the same volume unencrypted
and next to a JuiceFS 1.4.2 mount of an encrypted volume — same machine, SQLite + local bucket directory,
same run, alternating rounds.

Usage:  .venv/bin/python bench/crypto_bench.py [--rounds 3] [--big-mib 256] [--small 1000] [--compress lz4]
        [--workdir DIR] [--juicefs PATH]

Needs root and /dev/fuse. Every volume is formatted with ``--trash-days 0`` and ``--compress`` (lz4 by
default), the encrypted ones with the same passphrase-protected RSA-2048 key (aes256gcm-rsa). Mounts use a
zero-size disk cache, so every read after the page cache is dropped goes to the (local) bucket and through
the decryption. Rows:

* big file write / read, MiB/s: `--big-mib` MiB of incompressible data in 1 MiB writes, one thread, then
  read back through a new open after ``echo 3 > drop_caches``;
* small files: `--small` files of 4 KiB created + written + closed, then read back (per second).

Prints a markdown table: median of the rounds for each system, and jfs-encrypted's ratio to jfs plain and
to JuiceFS encrypted.
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


def _big(mnt: Path, data: bytes, mib: int) -> tuple[float, float]:
    path = mnt / "big"
    t = time.perf_counter()
    with open(path, "wb") as f:
        for i in range(mib):
            f.write(data[(i % 8) * MiB : (i % 8 + 1) * MiB])
    write = mib / (time.perf_counter() - t)
    _drop_caches()
    t = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(MiB):
            pass
    read = mib / (time.perf_counter() - t)
    path.unlink()
    return write, read


def _small(mnt: Path, n: int) -> tuple[float, float]:
    d = mnt / f"small-{time.monotonic_ns()}"
    d.mkdir()
    payload = os.urandom(4096)
    t = time.perf_counter()
    for i in range(n):
        with open(d / f"f{i}", "wb") as f:
            f.write(payload)
    write = n / (time.perf_counter() - t)
    _drop_caches()
    t = time.perf_counter()
    for i in range(n):
        with open(d / f"f{i}", "rb") as f:
            f.read()
    read = n / (time.perf_counter() - t)
    return write, read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--compress", default="lz4", choices=["none", "lz4", "zstd"])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--juicefs", default=shutil.which("juicefs", path=os.path.dirname(sys.executable)))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crypto-bench-", dir=args.workdir))
    env = dict(os.environ, JFS_RSA_PASSPHRASE=PASS)
    key = work / "key.pem"
    key.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASS.encode())))
    jfs = [sys.executable, "-m", "jfs.cli.main"]
    systems: dict[str, tuple[list[str], list[str], Path]] = {}
    for name, extra in (("jfs encrypted", ["--encrypt-rsa-key", str(key)]), ("jfs plain", [])):
        tag = name.replace(" ", "-")
        meta = f"sqlite3://{work}/{tag}.db"
        _sh(*jfs, "format", meta, tag, "--bucket", str(work / f"{tag}-bucket"), "--trash-days", "0",
            "--compress", args.compress, *extra, env=env)
        mnt = work / f"{tag}-mnt"
        systems[name] = ([*jfs, "mount", meta, str(mnt), "-d", "--cache-size", "0", "--cache-dir",
                          str(work / f"{tag}-cache")], ["umount", str(mnt)], mnt)
    if args.juicefs:
        meta = f"sqlite3://{work}/juicefs.db"
        _sh(args.juicefs, "format", meta, "juicefs-enc", "--storage", "file", "--bucket", str(work / "juicefs-bucket"),
            "--trash-days", "0", "--compress", args.compress, "--encrypt-rsa-key", str(key), env=env)
        mnt = work / "juicefs-mnt"
        systems["JuiceFS encrypted"] = ([args.juicefs, "mount", meta, str(mnt), "-d", "--no-usage-report",
                                         "--cache-size", "0", "--cache-dir", str(work / "juicefs-cache"),
                                         "--log", str(work / "juicefs.log")], [args.juicefs, "umount", str(mnt)], mnt)
    data = os.urandom(8 * MiB)
    rows: dict[str, dict[str, list[float]]] = {name: {} for name in systems}
    try:
        for r in range(args.rounds):
            for name, (cmd, umount, mnt) in systems.items():
                with _mount(cmd, umount, mnt, env) as m:
                    bw, br = _big(m, data, args.big_mib)
                    sw, sr = _small(m, args.small)
                for row, v in (("big write MiB/s", bw), ("big read MiB/s", br), ("small write files/s", sw),
                               ("small read files/s", sr)):
                    rows[name].setdefault(row, []).append(v)
                print(f"round {r + 1} {name}: big {bw:.0f}/{br:.0f} MiB/s, small {sw:.0f}/{sr:.0f} files/s",
                      file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    names = list(systems)
    print(f"\n{args.rounds} rounds, median; --big-mib {args.big_mib} --small {args.small} --compress {args.compress}\n")
    print("| row | " + " | ".join(names) + " | enc/plain | enc/JuiceFS enc |")
    print("|---|" + "---:|" * (len(names) + 2))
    for row in rows[names[0]]:
        med = {n: statistics.median(rows[n][row]) for n in names}
        enc = med["jfs encrypted"]
        vs_j = f"{enc / med['JuiceFS encrypted']:.2f}×" if "JuiceFS encrypted" in med else "-"
        print(f"| {row} | " + " | ".join(f"{med[n]:,.0f}" for n in names) + f" | {enc / med['jfs plain']:.2f}× | {vs_j} |")


if __name__ == "__main__":
    main()

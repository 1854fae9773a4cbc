"""A/B of two jfs trees' gateways: both served at once (each from its own tree, with that tree's venv if
it has one, each on its own SQLite + file volume), batches of the same work alternating between them, and
the gateway's CPU seconds (utime and stime from /proc) per GiB moved for every batch. On a shared machine
throughput says little; CPU per GiB, alternated, is the figure (ADR 0040). Without ``--settle`` a batch
may write into page frames the batch before it freed (warm: cheap on this VM) or into cold ones (~13 s of
system CPU per GiB, ADR 0045): which side is favoured then depends on the order.

Usage:  .venv/bin/python bench/gateway_ab.py --mode put8|put1|get1|get8|multipart [--pairs 4]
        [--objects 24] [--mib 256] [--settle S] NAME=TREE [NAME=TREE ...]
e.g.    git worktree add --detach /tmp/base main  (and a venv there), then
        .venv/bin/python bench/gateway_ab.py --mode put8 base=/tmp/base new=.
"""
from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config

AK, SK = "abtestkey", "abtestsecret123"  # noqa: S105 (a throw-away local volume)
MiB = 1 << 20
BIG = os.urandom(4 * MiB)
TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> tuple[float, float]:
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) / TICK, int(f[12]) / TICK


def faults(pid: int) -> int:
    """Minor page faults of the process so far."""
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[7])


def switches(pid: int) -> int:
    """Context switches (voluntary + involuntary) of the process's live threads so far."""
    n = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                n += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return n


def free_port() -> int:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(name: str, tree: str, work: Path) -> tuple[subprocess.Popen, str]:
    py = f"{tree}/.venv/bin/python" if os.path.exists(f"{tree}/.venv/bin/python") else sys.executable
    url = f"sqlite3://{work}/{name}.db"
    env = {**os.environ, "MINIO_ROOT_USER": AK, "MINIO_ROOT_PASSWORD": SK, "PYTHONPATH": tree}
    subprocess.run([py, "-m", "jfs.cli.main", "format", url, "benchvol", "--bucket", str(work / f"{name}-bucket"),
                    "--trash-days", "0"], check=True, capture_output=True, env=env, cwd=tree)
    port = free_port()
    log = open(work / f"{name}.log", "wb")
    proc = subprocess.Popen([py, "-m", "jfs.cli.main", "gateway", url, f"127.0.0.1:{port}", "--cache-dir",
                             str(work / f"{name}-cache")], env=env, stdout=log, stderr=log, cwd=tree)
    ep = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(ep + "/minio/health/live", timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    else:
        raise SystemExit(f"{name} did not start")
    return proc, ep


def client(ep: str) -> object:
    return boto3.client("s3", endpoint_url=ep, aws_access_key_id=AK, aws_secret_access_key=SK, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                      max_pool_connections=16))


def run_jobs(n: int, jobs: list) -> float:
    t = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        for f in [pool.submit(j) for j in jobs]:
            f.result()
    return time.perf_counter() - t


def multipart(s3: object, mib: int) -> None:
    from boto3.s3.transfer import TransferConfig
    size = mib * MiB
    chunk = os.urandom(8 * MiB)

    class Source(io.RawIOBase):
        def __init__(self) -> None:
            self.pos = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b: object) -> int:
            n = min(len(b), size - self.pos)
            off = self.pos % len(chunk)
            n = min(n, len(chunk) - off)
            b[:n] = chunk[off:off + n]
            self.pos += n
            return n

    cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=8)
    s3.upload_fileobj(io.BufferedReader(Source(), 1 << 20), "benchvol", "multipart/big", Config=cfg)


def batch(mode: str, s3: object, args: argparse.Namespace) -> float:
    """Runs one batch; returns GiB moved."""
    if mode in ("put8", "put1"):
        n = 8 if mode == "put8" else 1
        keys = [f"{mode}/{i % args.objects}" for i in range(args.objects)]
        run_jobs(n, [functools.partial(s3.put_object, Bucket="benchvol", Key=k, Body=BIG) for k in keys])
        return len(keys) * 4 / 1024
    if mode == "get1" or mode == "get8":
        n = 8 if mode == "get8" else 1
        keys = [f"get/{i}" for i in range(args.objects)]
        run_jobs(n, [lambda k=k: s3.get_object(Bucket="benchvol", Key=k)["Body"].read() for k in keys])
        return len(keys) * 4 / 1024
    if mode == "multipart":
        multipart(s3, args.mib)
        return args.mib / 1024
    raise SystemExit(mode)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="put8")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--objects", type=int, default=24)
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--settle", type=float, default=0.0,
                   help="seconds to wait before each batch: memory the previous batch freed goes cold (ADR 0052)")
    p.add_argument("sides", nargs="+")
    args = p.parse_args()
    sides = [s.split("=", 1) for s in args.sides]
    work = Path(tempfile.mkdtemp(prefix="gwab-", dir="/tmp"))
    procs = {}
    try:
        for name, tree in sides:
            procs[name] = start(name, tree, work)
        clients = {name: client(ep) for name, (_, ep) in procs.items()}
        if args.mode.startswith("get"):
            for name in procs:
                run_jobs(8, [functools.partial(clients[name].put_object, Bucket="benchvol", Key=f"get/{i}", Body=BIG)
                             for i in range(args.objects)])
        for name in procs:  # warm-up batch each
            batch(args.mode, clients[name], args)
        res: dict[str, list[tuple[float, ...]]] = {n: [] for n in procs}
        names = list(procs)
        for i in range(args.pairs):
            order = names if i % 2 == 0 else names[::-1]
            for name in order:
                pid = procs[name][0].pid
                time.sleep(args.settle)
                u0, s0 = cpu(pid)
                c0, m0 = switches(pid), faults(pid)
                t0 = time.perf_counter()
                gib = batch(args.mode, clients[name], args)
                t = time.perf_counter() - t0
                u1, s1 = cpu(pid)
                c1, m1 = switches(pid), faults(pid)
                r = ((u1 - u0 + s1 - s0) / gib, (u1 - u0) / gib, (s1 - s0) / gib, gib * 1024 / t, (c1 - c0) / gib / 1024,
                     (m1 - m0) / gib / 1024)
                res[name].append(r)
                print(f"pair {i} {name}: cpu {r[0]:.2f} s/GiB (user {r[1]:.2f}, sys {r[2]:.2f}), {r[3]:.1f} MiB/s, "
                      f"{r[4]:.0f} context switches/MiB, {r[5]:.0f} minor faults/MiB, load {os.getloadavg()[0]:.1f}", flush=True)
        for name in names:
            rs = res[name]
            print(f"{name}: cpu s/GiB median {statistics.median(r[0] for r in rs):.2f} "
                  f"[{min(r[0] for r in rs):.2f}-{max(r[0] for r in rs):.2f}] user {statistics.median(r[1] for r in rs):.2f} "
                  f"sys {statistics.median(r[2] for r in rs):.2f}; MiB/s median {statistics.median(r[3] for r in rs):.1f}; "
                  f"context switches/MiB median {statistics.median(r[4] for r in rs):.0f}, minor faults/MiB median "
                  f"{statistics.median(r[5] for r in rs):.0f}")
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()

"""`jfs webdav` next to `juicefs webdav` (JuiceFS 1.4.2): same machine, same engine and bucket kind (SQLite +
local directory, each system its own), one run, alternating rounds, one HTTP/1.1 keep-alive client.

Usage:  .venv/bin/python bench/webdav_bench.py [--rounds 1] [--big-mib 1024] [--small 1000]
        [--dir-entries 10000] [--workdir DIR] [--juicefs PATH] [--only WORDS] [--no-warm-up]

Before the first round each server gets one untimed PUT + GET + DELETE of the big file (`--no-warm-up`
skips it; see `warm_up`). Rows: PUT then GET of one `--big-mib` MiB file (MiB/s, body streamed in 1 MiB chunks); PUT then GET of
`--small` files of 4 KiB (files/s); PROPFIND Depth 1 of a directory of `--dir-entries` empty files
(entries/s; the files are PUT just before by 8 connections, not timed). Before each big PUT the bench
writes and deletes as much in its work directory (`prime_page_cache`). Both servers have Basic auth from
WEBDAV_USER/WEBDAV_PASSWORD and no access log file. Prints a markdown table with the median of the
rounds and jfs's ratio to JuiceFS (> 1.0 = jfs faster), then a second table of the CPU seconds each
server process spent per row (utime + stime of /proc/PID/stat, summed over its threads; robust when the
machine is loaded, unlike wall-clock throughput): per 1,000 requests for the small-file rows, per GiB for
the big file, per 10,000 entries for PROPFIND (< 1.0 = jfs cheaper); a third table has the user CPU
alone (the kernel's share — receiving bodies, writing block files, page faults — swings 3x with the
load of this shared VM, for both servers).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jfs.testing.servers import free_port, stop_process

MiB = 1 << 20
USER, PASSWORD = "bench", "bench-pass"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


class Server:
    def __init__(self, name: str, argv: list[str], port: int, log: Path) -> None:
        self.name = name
        self.port = port
        env = {**os.environ, "WEBDAV_USER": USER, "WEBDAV_PASSWORD": PASSWORD}
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: see {log}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not listen: see {log}")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process so far (all its threads)."""
        user, system = self.cpu_split()
        return user + system

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def stop(self) -> None:
        stop_process(self.proc, grace=30)
        self.log.close()


def request(conn: http.client.HTTPConnection, method: str, path: str, body: object = None,
            headers: dict[str, str] | None = None) -> tuple[int, int]:
    """(status, body bytes) of one request; the body is read and dropped in 1 MiB pieces."""
    conn.request(method, path, body=body, headers={**AUTH, **(headers or {})})  # type: ignore[arg-type]
    r = conn.getresponse()
    n = 0
    while chunk := r.read(MiB):
        n += len(chunk)
    return r.status, n


def big_body(mib: int) -> Iterator[bytes]:
    block = os.urandom(MiB)
    for _ in range(mib):
        yield block


def put_big(s: Server, mib: int) -> float:
    c = s.conn()
    t = time.perf_counter()
    status, _ = request(c, "PUT", "/big.bin", big_body(mib), {"Content-Length": str(mib * MiB)})
    dt = time.perf_counter() - t
    assert status in (201, 204), (s.name, status)
    c.close()
    return mib / dt


def get_big(s: Server, mib: int) -> float:
    c = s.conn()
    t = time.perf_counter()
    status, n = request(c, "GET", "/big.bin")
    dt = time.perf_counter() - t
    assert status == 200 and n == mib * MiB, (s.name, status, n)
    c.close()
    return mib / dt


def small(s: Server, count: int, method: str) -> float:
    c = s.conn()
    if method == "PUT":
        request(c, "MKCOL", "/small")
    data = b"s" * 4096
    t = time.perf_counter()
    for i in range(count):
        status, _ = request(c, method, f"/small/f{i}", data if method == "PUT" else None)
        assert status in (200, 201, 204), (s.name, method, status)
    dt = time.perf_counter() - t
    c.close()
    return count / dt


def fill_dir(s: Server, entries: int) -> None:
    c = s.conn()
    request(c, "MKCOL", "/many")
    c.close()

    def put(part: range) -> None:
        conn = s.conn()
        for i in part:
            request(conn, "PUT", f"/many/e{i:06d}", b"")
        conn.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, [range(k, entries, 8) for k in range(8)]))


def propfind(s: Server, entries: int) -> float:
    c = s.conn()
    t = time.perf_counter()
    status, n = request(c, "PROPFIND", "/many/", None, {"Depth": "1"})
    dt = time.perf_counter() - t
    assert status == 207 and n > entries * 100, (s.name, status, n)
    c.close()
    return entries / dt


def warm_up(s: Server, mib: int) -> None:
    """One untimed PUT, GET and DELETE of a `mib` MiB file. On this VM the first writes into page-cache
    pages the guest never touched cost 2-3x the CPU of later ones (the host backs them on first touch,
    inside the copy), and a fresh server process faults its heap in: without this, whichever server runs
    the first PUT pays for it (jfs 2.9 CPU s/GiB in round 1, 0.9 in round 2)."""
    c = s.conn()
    request(c, "PUT", "/warm-up.bin", big_body(mib), {"Content-Length": str(mib * MiB)})
    request(c, "GET", "/warm-up.bin")
    request(c, "DELETE", "/warm-up.bin")
    c.close()


def prime_page_cache(work: Path, mib: int) -> None:
    """Write and delete `mib` MiB in the work directory (this process, not a server). The VM hands guest
    pages freed a few seconds ago back to the host, and the next writer into the page cache pays for
    getting them back inside its copy (jfs's 1 GiB PUT right after the 10,000-file fill: 2.0 CPU s of
    kernel time against 0.5 without the pause). Done before each big PUT so that neither server pays it."""
    block = bytes(MiB)
    scratch = work / "prime.tmp"
    with open(scratch, "wb") as f:
        for _ in range(mib):
            f.write(block)
    scratch.unlink()


def cleanup(s: Server) -> None:
    c = s.conn()
    for p in ("/big.bin", "/small", "/many"):
        request(c, "DELETE", p)
    c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--dir-entries", type=int, default=10000)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--only", default="", help="comma-separated words: run only the rows naming one "
                    "(e.g. 'x 4 KiB,PROPFIND')")
    ap.add_argument("--no-warm-up", action="store_true", help="skip the untimed PUT + GET of a big file "
                    "through each server before the first round")
    ap.add_argument("--juicefs", default=str(Path(sys.executable).parent / "juicefs"))
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="webdav-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    jfs_cmd = [sys.executable, "-m", "jfs.cli.main"]
    subprocess.run([*jfs_cmd, "format", f"sqlite3://{work}/jfs.db", "bench-jfs", "--storage", "file", "--bucket",
                    str(work / "jfs-bucket"), "--trash-days", "0"], check=True, capture_output=True)
    subprocess.run([args.juicefs, "format", f"sqlite3://{work}/juicefs.db", "bench-juicefs", "--storage", "file",
                    "--bucket", str(work / "juicefs-bucket") + "/", "--trash-days", "0"], check=True, capture_output=True)
    p1, p2 = free_port(), free_port()
    servers = [
        Server("jfs", [*jfs_cmd, "webdav", f"sqlite3://{work}/jfs.db", f"127.0.0.1:{p1}", "--cache-dir",
                       str(work / "jfs-cache"), "--no-access-log"], p1, work / "jfs.log"),
        Server("juicefs", [args.juicefs, "webdav", f"sqlite3://{work}/juicefs.db", f"127.0.0.1:{p2}",
                           "--cache-dir", str(work / "juicefs-cache")], p2, work / "juicefs.log"),
    ]
    rows: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}
    user: dict[str, dict[str, list[float]]] = {}
    # (row, run, CPU row, what the CPU seconds are divided by)
    tests: list[tuple[str, Callable[[Server], float], str, float]] = [
        (f"PUT {args.big_mib} MiB file (MiB/s)", lambda s: put_big(s, args.big_mib),
         "PUT big file (CPU s per GiB)", args.big_mib / 1024),
        (f"GET {args.big_mib} MiB file (MiB/s)", lambda s: get_big(s, args.big_mib),
         "GET big file (CPU s per GiB)", args.big_mib / 1024),
        (f"PUT {args.small} x 4 KiB (files/s)", lambda s: small(s, args.small, "PUT"),
         "PUT 4 KiB (CPU s per 1,000)", args.small / 1000),
        (f"GET {args.small} x 4 KiB (files/s)", lambda s: small(s, args.small, "GET"),
         "GET 4 KiB (CPU s per 1,000)", args.small / 1000),
        (f"PROPFIND depth 1, {args.dir_entries} entries (entries/s)", lambda s: propfind(s, args.dir_entries),
         "PROPFIND (CPU s per 10,000 entries)", args.dir_entries / 10000),
    ]
    if args.only:
        tests = [t for t in tests if any(w.lower() in t[0].lower() for w in args.only.split(","))]
    try:
        if not args.no_warm_up:
            for s in servers:
                warm_up(s, args.big_mib)
        for r in range(args.rounds):
            order = servers if r % 2 == 0 else servers[::-1]
            for s in order:
                for name, fn, cpu_name, per in tests:
                    if name.startswith("PROPFIND"):
                        fill_dir(s, args.dir_entries)  # untimed
                    elif name.startswith("PUT") and "MiB" in name:
                        prime_page_cache(work, args.big_mib)
                    u0, s0 = s.cpu_split()
                    rows.setdefault(name, {}).setdefault(s.name, []).append(fn(s))
                    u1, s1 = s.cpu_split()
                    cpu.setdefault(cpu_name, {}).setdefault(s.name, []).append((u1 - u0 + s1 - s0) / per)
                    user.setdefault(cpu_name, {}).setdefault(s.name, []).append((u1 - u0) / per)
                    print(f"round {r + 1} {s.name:8} {name}: {rows[name][s.name][-1]:.1f}"
                          f" ({cpu[cpu_name][s.name][-1]:.3f} {cpu_name}, user {user[cpu_name][s.name][-1]:.3f})",
                          file=sys.stderr)
                cleanup(s)
    finally:
        for s in servers:
            s.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n| test ({args.rounds} round(s), median) | jfs webdav | juicefs webdav | jfs / juicefs |")
    print("|---|---:|---:|---:|")
    for name, by in rows.items():
        a, b = statistics.median(by["jfs"]), statistics.median(by["juicefs"])
        print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
    for title, table in (("server CPU", cpu), ("server user CPU (no kernel time)", user)):
        print(f"\n| {title} ({args.rounds} round(s), median) | jfs webdav | juicefs webdav | jfs / juicefs |")
        print("|---|---:|---:|---:|")
        for name, by in table.items():
            a, b = statistics.median(by["jfs"]), statistics.median(by["juicefs"])
            print(f"| {name} | {a:.3f} | {b:.3f} | {a / b if b else float('inf'):.2f}x |")


if __name__ == "__main__":
    main()

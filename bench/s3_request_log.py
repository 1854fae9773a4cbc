"""The S3 requests a jfs and a JuiceFS mount send for the same write, seen through a logging TCP proxy in
front of one SeaweedFS (issue 17; ADR 0068).

Usage:  .venv/bin/python bench/s3_request_log.py [--jfs jfs=.venv/bin/jfs] [--jfs juicefs=.venv/bin/juicefs]
            [--mib 256] [--out DIR]

Per build: a fresh SQLite volume (``--trash-days 0``) in a fresh bucket whose endpoint is the proxy, mounted
with a disk cache; one file of `mib` MiB written in 1 MiB writes, fsync'd and closed, then one 128 KiB file.
The proxy (threads in this process) forwards bytes unchanged and notes, per client connection, the head of
each request (its first segment up to the blank line) and the status line of each answer, with times.
Printed per build: the headers of the first block PUT, how many connections were opened, the block PUTs,
their mean and peak number in flight, and their latency (request head seen to answer seen; the proxy's
own copying is part of it, the same for both builds). `--out DIR` keeps the logs.

The proxy serializes nothing but costs CPU of its own: rates here are not the systems' rates; the shapes,
counts and orders are what to read.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comparison.harness import JfsMount, JuiceFSMount, run  # noqa: E402

from jfs.testing.seaweed import seaweed_s3  # noqa: E402

METHODS = (b"GET", b"PUT", b"POST", b"HEAD", b"DELETE")


class LoggingProxy:
    """A TCP proxy from a free local port to `target_port`, logging request heads and answer lines."""

    def __init__(self, target_port: int, log_path: Path) -> None:
        self.target = target_port
        self.log = open(log_path, "w", buffering=1)  # noqa: SIM115 - closed by stop()
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(128)
        self.port = self.srv.getsockname()[1]
        self.conns = 0
        self.methods: dict[str, int] = {}
        self.bytes = {"up": 0, "down": 0}
        threading.Thread(target=self._accept, daemon=True).start()

    def _write(self, text: str) -> None:
        with self.lock:
            self.log.write(text)

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.srv.accept()
                self.conns += 1
                upstream = socket.create_connection(("127.0.0.1", self.target))
                self._write(f"=== open conn {self.conns}\n")
                threading.Thread(target=self._pipe, args=(client, upstream, True, self.conns), daemon=True).start()
                threading.Thread(target=self._pipe, args=(upstream, client, False, self.conns), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, requests: bool, conn: int) -> None:
        try:
            while data := src.recv(1 << 20):
                line = data.split(b"\r\n", 1)[0]
                with self.lock:
                    self.bytes["up" if requests else "down"] += len(data)
                if requests and line.split(b" ", 1)[0] in METHODS and line.endswith(b"HTTP/1.1"):
                    method = line.split(b" ", 1)[0].decode()
                    with self.lock:
                        self.methods[method] = self.methods.get(method, 0) + 1
                    end = data.find(b"\r\n\r\n")
                    head = data[: end if end >= 0 else 400].decode("latin1")
                    self._write(f"--- conn {conn} t={time.time():.4f} segment={len(data)}\n{head}\n")
                elif not requests and data.startswith(b"HTTP/1.1"):
                    self._write(f"<<< conn {conn} t={time.time():.4f} {line.decode('latin1')}\n")
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def snapshot(self) -> dict[str, int]:
        """Requests by method and bytes each way so far (the request heads' method seen in a segment's start;
        a request split across segments is counted once, on its first)."""
        with self.lock:
            return {**self.methods, **{f"bytes {k}": v for k, v in self.bytes.items()}, "log": self.log.tell()}

    def stop(self) -> None:
        self.srv.close()
        self.log.close()


def summarize(log_path: Path, start: int = 0) -> str:
    """Connections, block PUTs in flight (mean over the span of the block PUTs, peak) and their latency; of
    the log from character `start` on."""
    starts: dict[int, float] = {}
    events: list[tuple[float, int]] = []
    latencies: list[float] = []
    first_put = ""
    pending: tuple[int, float] | None = None
    text = log_path.read_text()[start:]
    for block in re.split(r"(?m)^(?=--- |<<< )", text):
        m = re.match(r"--- conn (\d+) t=([\d.]+)", block)
        if m:
            pending = (int(m[1]), float(m[2]))
            if re.search(r"^PUT \S*/chunks/", block, re.M) and pending:
                starts[pending[0]] = pending[1]
                events.append((pending[1], 1))
                first_put = first_put or block
            continue
        m = re.match(r"<<< conn (\d+) t=([\d.]+) HTTP/1.1 (\d+)", block)
        if m and int(m[1]) in starts and m[3] != "100":  # "100 Continue" (Expect: 100-continue) is not the end
            t = float(m[2])
            latencies.append(t - starts.pop(int(m[1])))
            events.append((t, -1))
    if not latencies:
        return "no block PUTs seen"
    events.sort()
    in_flight, area, peak, last = 0, 0.0, 0, events[0][0]
    for t, d in events:
        area += in_flight * (t - last)
        last, in_flight = t, in_flight + d
        peak = max(peak, in_flight)
    span = events[-1][0] - events[0][0]
    opened = text.count("=== open conn")
    head = "\n".join("    " + ln for ln in first_put.splitlines()[1:] if ln.strip() and not ln.startswith("==="))
    return (f"connections opened {opened}; block PUTs {len(latencies)} in {span:.2f} s, in flight mean "
            f"{area / span:.1f} peak {peak}; latency median {statistics.median(latencies) * 1e3:.0f} ms, "
            f"max {max(latencies) * 1e3:.0f} ms\n  first block PUT:\n{head}")


def small_files(mnt: Path, proxy: LoggingProxy, n: int, data: bytes) -> tuple[dict, dict, float, list[float]]:
    """4 writers x `n` files of `data` in one new directory; the proxy's counters before and after (after a
    second's pause for anything the closes left in flight), the seconds, the close() latencies."""
    d = mnt / "smalls"
    d.mkdir()
    closes: list[float] = []

    def writer(t: int) -> None:
        for i in range(n):
            fd = os.open(d / f"f.{t}.{i}", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            os.write(fd, data)
            c0 = time.perf_counter()
            os.close(fd)
            closes.append(time.perf_counter() - c0)

    before = proxy.snapshot()
    t0 = time.time()
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    secs = time.time() - t0
    time.sleep(1)
    return before, proxy.snapshot(), secs, closes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jfs", action="append", default=[], help="LABEL=PATH (a label starting with 'juicefs' "
                    "mounts JuiceFS); default: this tree's jfs and JuiceFS")
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--out", default="")
    ap.add_argument("--small", type=int, default=0, help="then 4 writers x SMALL files of 128 KiB (open, one "
                    "write, close, as `juicefs bench`), requests and bytes per file counted over them alone")
    args = ap.parse_args()
    venv = Path(sys.executable).parent
    builds = [tuple(x.split("=", 1)) for x in args.jfs] or [("jfs", str(venv / "jfs")), ("juicefs", str(venv / "juicefs"))]
    work = Path(tempfile.mkdtemp(prefix="jfs-s3log-"))
    out = Path(args.out) if args.out else work
    out.mkdir(parents=True, exist_ok=True)
    buf = os.urandom(1 << 20)
    try:
        with seaweed_s3(bucket="log-probe") as s3:
            target = int(s3.endpoint.rsplit(":", 1)[1])
            for label, binary in builds:
                log_path = out / f"{label}.log"
                proxy = LoggingProxy(target, log_path)
                root = work / label
                root.mkdir()
                bucket = f"log-{label.lower()}"
                s3.client().create_bucket(Bucket=bucket)
                cls = JuiceFSMount if label.lower().startswith("juicefs") else JfsMount
                m = cls(label, binary, f"sqlite3://{root / 'meta.db'}", [
                    "--storage", "s3", "--bucket", f"http://127.0.0.1:{proxy.port}/{bucket}",
                    "--access-key", s3.access_key, "--secret-key", s3.secret_key], root, [])
                m.format()
                m.mount()
                try:
                    t0 = time.time()
                    with open(m.mnt / "big", "wb") as f:
                        for _ in range(args.mib):
                            f.write(buf)
                        t1 = time.time()
                        os.fsync(f.fileno())
                        t2 = time.time()
                    t3 = time.time()
                    (m.mnt / "small").write_bytes(buf[: 128 << 10])
                    time.sleep(1)
                    if args.small:
                        small = small_files(m.mnt, proxy, args.small, buf[: 128 << 10])
                finally:
                    m.unmount()
                    proxy.stop()
                print(f"{label}: writes {t1 - t0:.2f} s, fsync {t2 - t1:.2f} s, close {t3 - t2:.2f} s; "
                      f"{summarize(log_path)}", flush=True)
                if args.small:
                    before, after, secs, closes = small
                    n = 4 * args.small
                    per = {k: round((after[k] - before.get(k, 0)) / n, 2) for k in after if k != "log"}
                    print(f"{label}: small files {n} in {secs:.2f} s, per file {per}; close median "
                          f"{statistics.median(closes) * 1e3:.1f} ms; "
                          f"{summarize(log_path, before['log']).split(chr(10))[0]}", flush=True)
    finally:
        run(["rm", "-rf", str(work)], timeout=120, check=False)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--summarize"]:  # of logs kept by --out
        for name in sys.argv[2:]:
            print(f"{name}: {summarize(Path(name))}")
    else:
        main()

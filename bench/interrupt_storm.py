"""Read a virtual file of a mount (default ``.stats``) in a loop while an interval timer signals the
reader every 100 us: a signal that reaches a caller blocked in a FUSE request makes the kernel send
FUSE_INTERRUPT, often in the same device read batch as the request itself (ADR 0075). A request the
mount never answers leaves the reader stuck in read(2): after `--timeout` seconds without progress the
reader's kernel stack and system call are printed and the exit status is 1 (the reader is killed, but
leaves only when the mount stops: a request the daemon has read waits for its answer uninterruptibly).

    bench/interrupt_storm.py MNT [--reads 20000] [--file .stats] [--timeout 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def _reader(path: str, reads: int, progress: int) -> None:
    signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
    for i in range(reads):
        fd = os.open(path, os.O_RDONLY)
        while os.read(fd, 512):
            pass
        os.close(fd)
        if i % 100 == 0:
            os.write(progress, b".")
    signal.setitimer(signal.ITIMER_REAL, 0, 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mountpoint")
    ap.add_argument("--reads", type=int, default=20000)
    ap.add_argument("--file", default=".stats")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds without progress that count as a hang")
    args = ap.parse_args()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _reader(os.path.join(args.mountpoint, args.file), args.reads, w)
        os._exit(0)
    os.close(w)
    os.set_blocking(r, False)
    done = 0
    last = time.monotonic()
    while True:
        try:
            chunk = os.read(r, 4096)
        except BlockingIOError:
            chunk = None
        if chunk == b"" and os.waitpid(pid, 0)[1] == 0:
            print(f"{args.reads} reads of {args.file} answered")
            return 0
        if chunk:
            done += len(chunk) * 100
            last = time.monotonic()
        elif time.monotonic() - last > args.timeout:
            print(f"HANG after ~{done} reads: the reader waits for a reply")
            for name in ("stack", "syscall"):
                try:
                    with open(f"/proc/{pid}/{name}") as f:
                        print(f"/proc/{pid}/{name}:\n{f.read()}")
                except OSError as exc:
                    print(f"/proc/{pid}/{name}: {exc}")
            # A request the daemon has read cannot be killed: the reader goes once the mount answers or its
            # connection is aborted (stop the mount, or write 1 to /sys/fs/fuse/connections/N/abort).
            os.kill(pid, signal.SIGKILL)
            print("killed the reader; it exits once the mount's connection ends")
            return 1
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())

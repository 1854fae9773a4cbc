"""How soon after an unlink a jfs and a JuiceFS mount send the DELETEs of the file's blocks, on one SeaweedFS
(issue 17; ADR 0099).

Usage:  .venv/bin/python bench/s3_unlink_deletes.py [--tries 2] [--mib 64]

Per try and build: a fresh SQLite volume (``--trash-days 0``) in a fresh bucket, mounted; two files of `mib`
MiB written (1 MiB writes) and read back, then both unlinked; the mount's ``.stats`` DELETE count is polled
every 5 ms for 2 s from the first unlink. Printed: how long the two unlinks took, when the first DELETE
and the last block's DELETE had been answered, and the poll's own cost (one ``.stats`` read).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comparison.harness import JfsMount, JuiceFSMount, run  # noqa: E402
from s3_small_ab import _jfs_counters  # noqa: E402

from jfs.testing.seaweed import seaweed_s3  # noqa: E402


def deletes(mnt: Path) -> int:
    """The DELETE requests the mount has sent (jfs's or JuiceFS's ``.stats``)."""
    return int(_jfs_counters(mnt).get("DELETE", 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=2)
    ap.add_argument("--mib", type=int, default=64)
    args = ap.parse_args()
    venv = Path(sys.executable).parent
    builds = [("jfs", str(venv / "jfs"), JfsMount), ("juicefs", str(venv / "juicefs"), JuiceFSMount)]
    blocks = 2 * (args.mib // 4)
    work = Path(tempfile.mkdtemp(prefix="jfs-unlinkdel-"))
    buf = os.urandom(1 << 20)
    try:
        with seaweed_s3(bucket="unlink-probe") as s3:
            for n in range(args.tries):
                for label, binary, cls in builds:
                    root = work / f"{label}-{n}"
                    root.mkdir()
                    m = cls(label, binary, f"sqlite3://{root / 'meta.db'}", s3.storage_args(f"ud-{label}-{n}"), root, [])
                    m.format()
                    m.mount()
                    try:
                        for i in range(2):
                            with open(m.mnt / f"big{i}", "wb") as f:
                                for _ in range(args.mib):
                                    f.write(buf)
                        for i in range(2):
                            with open(m.mnt / f"big{i}", "rb") as f:
                                while f.read(1 << 20):
                                    pass
                        d0, t0 = deletes(m.mnt), time.monotonic()
                        for i in range(2):
                            os.unlink(m.mnt / f"big{i}")
                        t_rm = time.monotonic() - t0
                        marks, polls = [], []
                        while time.monotonic() - t0 < 2:
                            a = time.monotonic()
                            c = deletes(m.mnt) - d0
                            polls.append(time.monotonic() - a)
                            marks.append((a - t0, c))
                            time.sleep(0.005)
                    finally:
                        m.unmount()
                    first = next((t for t, c in marks if c > 0), float("nan"))
                    last = next((t for t, c in marks if c >= blocks), float("nan"))
                    print(f"{label} #{n}: unlinks {t_rm * 1e3:.0f} ms; first DELETE by {first * 1e3:.0f} ms, all "
                          f"{blocks} by {last * 1e3:.0f} ms ({marks[-1][1]} at 2 s); .stats read "
                          f"{sorted(polls)[len(polls) // 2] * 1e3:.1f} ms", flush=True)
    finally:
        run(["rm", "-rf", str(work)], timeout=120, check=False)


if __name__ == "__main__":
    main()

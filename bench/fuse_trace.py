"""Count the FUSE requests the kernel sends to one mount, per opcode, with the `fuse_request_send` tracepoint.

    with FuseTrace("/mnt/x") as t:
        ...workload...
    print(t.counts)   # {"LOOKUP": 400, "CREATE": 400, ...}

A tracefs instance of its own (``/sys/kernel/tracing/instances/<name>``) so that the global trace buffer
and other users of tracing are left alone; the event is filtered by the mount's FUSE connection (its
device number), so other mounts on the machine are not counted. Root only; Linux with the fuse
tracepoints (6.16 and later). Also usable as a command: ``fuse_trace.py MOUNTPOINT -- CMD ...``.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")
_LINE = re.compile(r"connection (\d+) req \d+ opcode \d+ \(FUSE_(\w+)\)")


class FuseTrace:
    """Per-opcode counts of the requests sent to the FUSE mount at `mountpoint` while the block runs."""

    def __init__(self, mountpoint: str | os.PathLike[str], name: str = "jfs-fuse-trace") -> None:
        st = os.stat(mountpoint)
        # the tracepoint prints the kernel's dev_t (MKDEV: major << 20 | minor)
        self.connection = (os.major(st.st_dev) << 20) | os.minor(st.st_dev)
        self.inst = TRACEFS / "instances" / name
        self.counts: collections.Counter[str] = collections.Counter()

    def __enter__(self) -> FuseTrace:
        self.inst.mkdir(exist_ok=True)
        (self.inst / "buffer_size_kb").write_text("16384")
        ev = self.inst / "events" / "fuse" / "fuse_request_send"
        (ev / "filter").write_text(f"connection == {self.connection}")
        (self.inst / "trace").write_text("")
        (ev / "enable").write_text("1")
        return self

    def __exit__(self, *exc: object) -> None:
        (self.inst / "events" / "fuse" / "fuse_request_send" / "enable").write_text("0")
        text = (self.inst / "trace").read_text()
        for m in _LINE.finditer(text):
            if int(m.group(1)) == self.connection:
                self.counts[m.group(2)] += 1
        self.inst.rmdir()


def main() -> None:
    if "--" not in sys.argv[2:]:
        sys.exit(__doc__)
    mnt = sys.argv[1]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    with FuseTrace(mnt) as t:
        subprocess.run(cmd, check=False)
    for op, n in t.counts.most_common():
        print(f"{op} {n}")


if __name__ == "__main__":
    main()

"""Offline tools on a synthetic volume, A/B and next to JuiceFS: load, dump, fsck (issue 17, "Scale").

Usage:  .venv/bin/python bench/scale_offline.py [--files 100000] [--per-dir 1000] [--pairs 3]
        [--base /tmp/base-X/.venv/bin/jfs] [--ops load,dump,fsck] [--juicefs PATH] [--dump-workers 0,2]

Writes a synthetic dump in JuiceFS's format (``--files`` empty files in directories of ``--per-dir``,
every 100th file with an xattr: the shape of `bench/scale.py`'s tree), starts a throwaway redis-server and
then, ``--pairs`` times, alternating base (``--base``, another checkout's ``jfs``) and new (this checkout's
``jfs``): ``jfs load`` of the dump into a flushed Redis db, ``jfs dump`` of it, ``jfs gc`` (dry) and ``jfs fsck``
of it — each its own process, the Redis calls per entry by command (INFO commandstats deltas), CPU (user + system, worker processes included) and peak RSS from wait4, and the CPU the
redis-server spent meanwhile (from /proc). JuiceFS (``juicefs load`` / ``dump``) runs once per pair on its
own db of the same server, so its figures come from the same run. ``--dump-workers 0,2`` runs the new
``jfs dump`` once per worker count (systems ``new-w0``, ``new-w2``). Prints one line per command and a median
table at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import timed_child  # noqa: E402

from jfs.testing.servers import redis_server  # noqa: E402

ATTR = ('{{"inode":{ino},"type":"{typ}","mode":{mode},"uid":0,"gid":0,"atime":1795236770,"mtime":1795236770,'
        '"ctime":1795236770,"atimensec":1,"mtimensec":1,"ctimensec":1,"nlink":{nlink},"length":0}}')


def write_dump(path: Path, files: int, per_dir: int, bucket: str, big: int = 0) -> int:
    """Write the synthetic dump; returns its entry count (root, directories, files, trash root). With
    `big`, one more directory ``big`` (after the others) holds `big` empty files ``file-%07d`` (the
    100,000-entry directory of `bench/scale.py`'s listing phase; bench/ls_cold_ab.py --volume-files)."""
    ndirs = -(-files // per_dir)
    used = ndirs + files + 1 + ((1 + big) if big else 0)
    with path.open("w") as f:
        f.write('{\n  "Setting": {\n    "Name": "scale",\n    "UUID": "fd54a40c-1296-4395-8ee2-d0e29984fcbd",\n'
                f'    "Storage": "file",\n    "Bucket": "{bucket}/",\n    "BlockSize": 4096,\n'
                '    "Compression": "none",\n    "TrashDays": 0,\n    "MetaVersion": 1,\n'
                '    "MinClientVersion": "1.1.0-A",\n    "DirStats": false,\n    "EnableACL": false\n  },\n'
                f'  "Counters": {{\n    "usedSpace": 0,\n    "usedInodes": {used},\n    "nextInodes": {used + 2},\n'
                '    "nextChunk": 1,\n    "nextSession": 1,\n    "nextTrash": 0\n  },\n'
                '  "Sustained": [],\n  "DelFiles": [],\n  "FSTree": {\n')
        f.write('    "attr": ' + ATTR.format(ino=1, typ="directory", mode=511, nlink=ndirs + 2 + bool(big)) + ',\n')
        f.write('    "entries": {\n')
        ino = 2
        done = 0
        for d in range(ndirs):
            n = min(per_dir, files - done)
            f.write(('' if d == 0 else ',\n') + f'      "d{d:05d}": {{\n        "attr": '
                    + ATTR.format(ino=ino, typ="directory", mode=493, nlink=2) + ',\n        "entries": {\n')
            ino += 1
            parts = []
            for i in range(n):
                x = ',\n            "xattrs": [{"name":"user.k","value":"v"}]' if (done + i) % 100 == 0 else ""
                parts.append(f'          "f{i:06d}": {{\n            "attr": '
                             + ATTR.format(ino=ino, typ="regular", mode=420, nlink=1) + x + '\n          }')
                ino += 1
            f.write(",\n".join(parts) + "\n        }\n      }")
            done += n
        if big:
            f.write((',\n' if ndirs else '') + '      "big": {\n        "attr": '
                    + ATTR.format(ino=ino, typ="directory", mode=493, nlink=2) + ',\n        "entries": {\n')
            ino += 1
            f.write(",\n".join(f'          "file-{i:07d}": {{\n            "attr": '
                                + ATTR.format(ino=ino + i, typ="regular", mode=420, nlink=1) + '\n          }'
                                for i in range(big)) + "\n        }\n      }")
        f.write('\n    }\n  },\n  "Trash": {\n    "attr": '
                + ATTR.format(ino=9223372032828243968, typ="directory", mode=365, nlink=2)
                + ',\n    "entries": {\n    }\n  }\n}\n')
    return used + 1


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _commandstats(url: str) -> dict[str, int]:
    """Calls per command of the redis-server at `url` so far (INFO commandstats)."""
    out = subprocess.run(["redis-cli", "-u", url, "INFO", "commandstats"], check=True, capture_output=True,
                         text=True).stdout
    calls: dict[str, int] = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line[len("cmdstat_"):].partition(":")
            calls[name] = int(rest.split(",")[0].partition("=")[2])
    return calls


def _calls_between(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Per-command calls from `a` to `b` (INFO and CONFIG themselves left out)."""
    return {k: v - a.get(k, 0) for k, v in b.items() if v - a.get(k, 0) and k not in ("info", "config|resetstat")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--per-dir", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--base", default="", help="jfs binary of the base checkout (none: new only)")
    ap.add_argument("--new", default=str(Path(sys.executable).parent / "jfs"))
    ap.add_argument("--juicefs", default=str(Path(sys.executable).parent / "juicefs"))
    ap.add_argument("--ops", default="load,dump,fsck", help="of load,dump,gc,fsck")
    ap.add_argument("--dump-workers", default="", help="worker counts for the new dump, e.g. 0,2")
    args = ap.parse_args()
    ops = args.ops.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="scale-offline-"))
    src = tmp / "src.json"
    (tmp / "bucket").mkdir()
    entries = write_dump(src, args.files, args.per_dir, str(tmp / "bucket"))
    print(f"synthetic dump: {entries} entries, {src.stat().st_size >> 20} MiB", flush=True)
    results: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    news = [(f"new-w{w}", args.new) for w in args.dump_workers.split(",")] if args.dump_workers else [("new", args.new)]
    systems = ([("base", args.base)] if args.base else []) + news
    with redis_server() as server:
        for pair in range(args.pairs):
            order = systems if pair % 2 == 0 else systems[::-1]
            for name, binary in [*order, ("juicefs", args.juicefs)]:
                url = f"{server.url}/{3 if name == 'juicefs' else 1}"
                subprocess.run(["redis-cli", "-u", url, "FLUSHDB"], check=True, stdout=subprocess.DEVNULL)
                out = tmp / f"{name}.json"
                workers = ["--workers", name.partition("-w")[2]] if "-w" in name else []
                steps = {"load": [binary, "load", url, str(src)], "dump": [binary, "dump", *workers, url, str(out)],
                         "fsck": [binary, "fsck", url], "gc": [binary, "gc", url]}
                for op in ["load", "dump", "gc", "fsck"]:
                    if op != "load" and op not in ops or (name == "juicefs" and op == "fsck"):
                        continue
                    stats = _commandstats(url)
                    before = _cpu_of(server.process.pid)
                    sec, rss, cpu = timed_child(steps[op])
                    rcpu = _cpu_of(server.process.pid) - before
                    calls = _calls_between(stats, _commandstats(url))
                    if op in ops:
                        results.setdefault((name, op), []).append((sec, rss, cpu, rcpu))
                        print(f"pair {pair} {name:7} {op:4}: {sec:7.2f} s  {entries / sec:9,.0f} entries/s  "
                              f"CPU {cpu:6.2f} s = {cpu / entries * 1e6:6.2f} µs/entry  RSS {rss:6.1f} MiB  "
                              f"redis CPU {rcpu:5.2f} s  calls/entry "
                              + " ".join(f"{k}={v / entries:.3f}" for k, v in sorted(calls.items())), flush=True)
                out.unlink(missing_ok=True)
    print("\nmedians: op | system | entries/s | CPU µs/entry | redis CPU µs/entry | peak RSS MiB")
    for (name, op), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        sec = statistics.median(r[0] for r in runs)
        rss = statistics.median(r[1] for r in runs)
        cpu = statistics.median(r[2] for r in runs)
        rcpu = statistics.median(r[3] for r in runs)
        print(f"| {op} | {name} | {entries / sec:,.0f} | {cpu / entries * 1e6:.2f} | {rcpu / entries * 1e6:.2f} |"
              f" {rss:.0f} |  (wall s: {', '.join(f'{r[0]:.2f}' for r in runs)}; CPU s: "
              f"{', '.join(f'{r[2]:.2f}' for r in runs)}; redis CPU s: {', '.join(f'{r[3]:.2f}' for r in runs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

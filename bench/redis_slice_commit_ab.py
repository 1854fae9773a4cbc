"""Redis: the cost of one slice commit as the chunk record grows (issue 17, ADR 0055), jfs trees A/B.

Usage (from outside the repository, so that each tree imports its own jfs):
    cd /tmp && /path/.venv/bin/python /path/bench/redis_slice_commit_ab.py \
        base=/tmp/base/.venv/bin/python new=/path/.venv/bin/python [--pairs 3] [--records 2400]

One redis-server; per target and pair a fresh database. A child process of each target's Python formats a
volume, creates a file and commits `--records` 4 KiB slices into its first chunk (`Meta.write_slice`, one
client, as the mount's writer does: each commit after the first guesses what the previous one left), and
reports per band of 600 records: the EVALSHA time inside Redis per commit (``INFO commandstats``), the
redis-server CPU per commit and the client's CPU per commit. The bands show whether the cost grows with
the record (base: the COMMIT script gets the whole record to hash and store) or stays flat (new: APPEND).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap

from jfs.testing.servers import redis_server

CHILD = textwrap.dedent(
    """
    import asyncio, json, resource, subprocess, sys
    from jfs.adapters.kv.registry import open_kv
    from jfs.app.meta import Meta
    from jfs.app.meta.engine import format_meta
    from jfs.domain.attrs import ROOT_INODE
    from jfs.domain.settings import Settings

    url, port, records, band = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

    def server():
        out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "all"], capture_output=True, text=True).stdout
        usec = calls = 0
        cpu = 0.0
        for line in out.splitlines():
            if line.startswith("cmdstat_evalsha:"):
                f = dict(kv.split("=") for kv in line.split(":", 1)[1].split(","))
                usec, calls = int(f["usec"]), int(f["calls"])
            elif line.startswith(("used_cpu_sys:", "used_cpu_user:")):
                cpu += float(line.split(":")[1])
        return usec, calls, cpu

    def me():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    async def main():
        kv = await open_kv(url)
        await kv.reset()
        await format_meta(kv, Settings(name="commit-ab", trash_days=0))
        m = await Meta.load(kv)
        await m.start_session(background=False)
        ino, _ = await m.create(ROOT_INODE, b"f", 0o644)
        out = []
        for start in range(0, records, band):
            u0, c0, s0 = server()
            t0 = me()
            for i in range(start, min(records, start + band)):
                pos = (i * 4096 * 7) % (64 << 20)  # scattered, as random writes leave them
                await m.write_slice(ino, 0, pos, await m.next_slice_id(), 4096, 0, 4096)
            t1 = me()
            u1, c1, s1 = server()
            n = min(records, start + band) - start
            out.append({"records": start + n, "evalsha_us": (u1 - u0) / n, "evalsha_calls": (c1 - c0) / n,
                        "redis_cpu_us": (s1 - s0) / n * 1e6, "client_cpu_us": (t1 - t0) / n * 1e6})
        await m.close()
        await kv.reset()
        await kv.close()
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="+", help="LABEL=PYTHON")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--records", type=int, default=2400)
    ap.add_argument("--band", type=int, default=600)
    args = ap.parse_args()
    targets = [tuple(t.split("=", 1)) for t in args.targets]
    results: dict[str, list[list[dict]]] = {label: [] for label, _ in targets}
    with redis_server() as server:
        db = 0
        for n in range(args.pairs):
            for label, python in targets:
                db += 1
                proc = subprocess.run(
                    [python, "-c", CHILD, f"{server.url}/{db}", str(server.port), str(args.records), str(args.band)],
                    capture_output=True, text=True, check=True, timeout=1800)
                bands = json.loads(proc.stdout.strip().splitlines()[-1])
                results[label].append(bands)
                print(f"{label:>6} #{n} " + "  ".join(
                    f"≤{b['records']}: redis {b['evalsha_us']:.0f} µs ({b['redis_cpu_us']:.0f} cpu) client "
                    f"{b['client_cpu_us']:.0f}" for b in bands), flush=True)
    for label, _ in targets:
        runs = results[label]
        line = []
        for i in range(len(runs[0])):
            band = [r[i] for r in runs]
            line.append(f"≤{band[0]['records']}: EVALSHA {statistics.median(b['evalsha_us'] for b in band):.0f} µs, "
                        f"redis CPU {statistics.median(b['redis_cpu_us'] for b in band):.0f} µs, client CPU "
                        f"{statistics.median(b['client_cpu_us'] for b in band):.0f} µs")
        print(f"{label:>6} medians per commit: " + "; ".join(line))


if __name__ == "__main__":
    sys.exit(main())

#!/bin/bash
# Creates on one jfs mount (Redis + local directory): N files spread over 4 directories (one per process)
# and N files in ONE directory by 4 processes, alternating, ROUNDS times; per run: files/s, the mount's CPU
# per create (/proc/PID/stat) and FUSE requests per create by method (.stats). ADR 0086.
#   sudo bench/bigdir_spread.sh .venv/bin/jfs 10000                   # spread, onedir, spread, onedir
#   sudo ROUNDS=6 MODES=onedir SAME=1 bench/bigdir_spread.sh .venv/bin/jfs 10000   # one dir growing to 60k
# WORK (default /tmp/jfs-bigdir-spread) holds the redis-server, bucket and mount; all stopped at the end.
set -u
JFS=$1; N=$2
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
W=${WORK:-/tmp/jfs-bigdir-spread}; rm -rf $W; mkdir -p $W/mnt
redis-server --port $PORT --save '' --appendonly no --daemonize yes --pidfile $W/redis.pid --logfile $W/redis.log --dir $W
sleep 0.5
$JFS format redis://127.0.0.1:$PORT/1 pvol --trash-days 0 --bucket $W/bucket > $W/cmd.log 2>&1 || cat $W/cmd.log
$JFS mount redis://127.0.0.1:$PORT/1 $W/mnt -d --cache-dir $W/cache > $W/cmd.log 2>&1 || cat $W/cmd.log
PID=$(pgrep -f "jfs.cli.main mount redis://127.0.0.1:$PORT/1" | head -1)
$(dirname "$JFS")/python - $W/mnt $N $PID <<'PY'
import os, sys, time
from multiprocessing import Pool
mnt, n, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def ops():
    out = {}
    for line in open(f"{mnt}/.stats"):
        if line.startswith("jfs_fuse_ops_total"):
            k, v = line.split()
            out[k.split('"')[1]] = float(v)
    return out
def job(a):
    d, r = a
    os.makedirs(d, exist_ok=True)
    for i in r: os.close(os.open(f"{d}/f{i:06d}", os.O_CREAT|os.O_WRONLY, 0o644))
with Pool(4) as p:
    for rnd in range(int(os.environ.get("ROUNDS", "2"))):
        for mode in os.environ.get("MODES", "spread,onedir").split(","):
            per = -(-n // 16)
            if mode == "spread":
                jobs = [(f"{mnt}/{mode}{rnd}/p{k}", range(k * n // 4, (k + 1) * n // 4)) for k in range(4)]
            else:
                jobs = [(f"{mnt}/{mode}" + ("" if os.environ.get("SAME") else str(rnd)), range(rnd * n + i, rnd * n + min(i + per, n))) for i in range(0, n, per)]
            s0 = ops()
            c0, t0 = cpu(), time.perf_counter()
            p.map(job, jobs, chunksize=1)
            t1, c1 = time.perf_counter(), cpu()
            s1 = ops()
            print({k: round((s1.get(k, 0) - s0.get(k, 0)) / n, 2) for k in s1 if s1.get(k, 0) != s0.get(k, 0)})
            print(f"{mode} round {rnd}: {n / (t1 - t0):,.0f}/s  mount CPU {(c1 - c0) / n * 1e6:.0f} µs/op", flush=True)
PY
$JFS umount $W/mnt
kill $(cat $W/redis.pid)

#!/bin/bash
# The mount's CPU for the same big write three times in a row on one fresh mount (fio 4 jobs x 128 MiB,
# sequential 1 MiB, --end_fsync=1, files removed in between): on a VM the first run pays for page-cache
# pages the guest touches for the first time (see docs/benchmarks.md, ADR 0048).
# Usage (root, /dev/fuse, fio):  bench/first_write_cost.sh jfs [TREE]   |   bench/first_write_cost.sh juicefs
set -euo pipefail
KIND=${1:-jfs}; TREE=${2:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin
R=$(mktemp -d /tmp/first-write-XXXXXX); mkdir -p "$R/mnt"
META=sqlite3://$R/meta.db
if [ "$KIND" = juicefs ]; then
  "$BIN/juicefs" format "$META" vol --bucket "$R/bucket/" --trash-days 0 >/dev/null 2>&1
  "$BIN/juicefs" mount --no-usage-report "$META" "$R/mnt" --cache-dir "$R/cache" --log "$R/j.log" >"$R/mount.log" 2>&1 &
else
  export PYTHONPATH=$TREE
  "$BIN/python" -m jfs.cli.main format "$META" vol --bucket "$R/bucket" --trash-days 0 >/dev/null 2>&1
  "$BIN/python" -m jfs.cli.main mount "$META" "$R/mnt" --foreground --cache-dir "$R/cache" >"$R/mount.log" 2>&1 &
fi
SP=$!
trap 'umount "$R/mnt" 2>/dev/null || true; wait $SP 2>/dev/null || true; rm -rf "$R"' EXIT
for _ in $(seq 200); do mountpoint -q "$R/mnt" && break; sleep 0.1; done
MP=$SP
if [ "$KIND" = juicefs ]; then MP=$(pgrep -P "$SP" | head -1 || true); MP=${MP:-$SP}; fi
ticks() { awk '{print $14 + $15}' "/proc/$MP/stat"; }
for k in 1 2 3; do
  mkdir -p "$R/mnt/d$k"
  a=$(ticks); t0=$(date +%s.%N)
  fio --name=four --directory="$R/mnt/d$k" --filename_format='$jobname.$jobnum' --rw=write --bs=1M --size=128M \
      --numjobs=4 --direct=0 --ioengine=psync --fallocate=none --group_reporting --end_fsync=1 --output-format=terse >/dev/null
  b=$(ticks); t1=$(date +%s.%N)
  echo "$KIND run $k: mount CPU $(echo "($b - $a) / $(getconf CLK_TCK)" | bc -l | cut -c1-5) s per 512 MiB, wall $(echo "$t1 - $t0" | bc | cut -c1-5) s"
  rm -rf "$R/mnt/d$k"; sleep 1
done

#!/usr/bin/env bash
# The main job on the embedded defaults: a jfs volume with its metadata in SQLite and its data blocks in
# a local directory. Sets up what it needs from nothing (python3-venv if missing, .venv, jfs), formats the
# volume once, mounts it at $DIR/mnt (in the background) and writes a file there, then shows its status.
# Safe to re-run: an existing volume and mount are kept.
#
#     ./scripts/demo.sh                         # volume under ./.jfs-demo
#     JFS_DEMO_DIR=/srv/jfs ./scripts/demo.sh   # elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh

jfs_venv_ensure
JFS="$PWD/$JFS_VENV/bin/jfs"

DIR="${JFS_DEMO_DIR:-./.jfs-demo}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd -P)"
META="sqlite3://$DIR/meta.db"

# 1. Format, unless a volume is already there (format refuses to overwrite one without --force).
if [ -s "$DIR/meta.db" ] && "$JFS" status "$META" >/dev/null 2>&1; then
  jfs_say "volume already formatted in $DIR/meta.db: keeping it (rm -rf '$DIR' to start over)"
else
  jfs_say "formatting volume 'demo': metadata $META, data in $DIR/bucket/"
  "$JFS" format "$META" demo --storage file --bucket "$DIR/bucket/" --trash-days 0
fi

# 2. Mount it (in the background) unless it is mounted already, and use it.
jfs_apt_ensure fuse3
MNT="$DIR/mnt"
mkdir -p "$MNT"
if grep -qs " $MNT fuse" /proc/mounts; then
  jfs_say "$MNT is already mounted"
else
  jfs_say "mounting at $MNT"
  "$JFS" mount "$META" "$MNT" --background --cache-dir "$DIR/cache"
fi
echo "hello from jfs, $(date -u +%FT%TZ)" >"$MNT/hello.txt"
jfs_say "wrote $MNT/hello.txt: $(cat "$MNT/hello.txt")"
ls -la "$MNT"

# 3. Show the volume: settings, the mount's session, usage.
jfs_say "status of $META"
"$JFS" status "$META"
jfs_say "done: the volume is mounted at $MNT (unmount with: $JFS umount $MNT)"

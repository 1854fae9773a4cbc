#!/usr/bin/env bash
# The main job on the embedded defaults: a jfs volume with its metadata in SQLite and its data blocks in
# a local directory. Sets up what it needs from nothing (python3-venv if missing, .venv, jfs), formats the
# volume once, then shows its status. Safe to re-run: an existing volume is kept.
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

# 2. Show what is there.
jfs_say "status of $META"
"$JFS" status "$META"

# 3. MOUNT — not yet: the FUSE mount is the next milestone. When it lands, this step becomes:
#      jfs_apt_ensure fuse3
#      mkdir -p "$DIR/mnt"
#      "$JFS" mount "$META" "$DIR/mnt" --background
#      echo hello >"$DIR/mnt/hello.txt" && cat "$DIR/mnt/hello.txt" && "$JFS" umount "$DIR/mnt"
jfs_say "done. (mounting the volume comes with the FUSE milestone; see README)"

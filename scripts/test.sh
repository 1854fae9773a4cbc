#!/usr/bin/env bash
# Set up everything from nothing and run every check of jfs: ruff, mypy, pytest (unit, contract,
# integration). Exits non-zero when any check fails. Safe and fast to re-run.
#
#     ./scripts/test.sh                      # everything (this is what CI runs, via .ci/run)
#     ./scripts/test.sh tests/unit -k cli    # extra arguments go to pytest (ruff and mypy still run)
#
# Environment:
#     JFS_TEST_TIKV=pd-host:port   also run the KV contract suite against that TiKV cluster
#     JFS_MYPY_TARGETS="..."       what mypy checks (default: jfs/domain jfs/ports, strict)
#     JFS_PYTEST_TIMEOUT=1620      wall-clock limit of the pytest run, in seconds (CI allows 30 min in all)
set -uo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh

t0=$SECONDS
jfs_apt_ensure fuse3 redis-server etcd-server etcd-client curl openssl cadaver davfs2 rclone
jfs_venv_ensure dev
jfs_say "environment ready in $((SECONDS - t0))s ($("$JFS_VENV/bin/python" -V 2>&1), redis $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p'), etcd $(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p'))"

if [ -n "${JFS_TEST_TIKV:-}" ]; then
  tikv_note="TiKV: tested against PD ${JFS_TEST_TIKV}"
else
  tikv_note="TiKV: skipped, JFS_TEST_TIKV is not set (set JFS_TEST_TIKV=pd-host:port to run those tests)"
fi
jfs_say "$tikv_note"

export PATH="$PWD/$JFS_VENV/bin:$PATH"
summary=()
failed=0

# Run one named step, record its outcome and duration; keep going so the summary shows every step.
step() {
  local name="$1" start=$SECONDS rc
  shift
  jfs_say "$name: $*"
  "$@"
  rc=$?
  if [ "$rc" -eq 0 ]; then
    summary+=("$(printf '  %-8s ok      %4ss' "$name" $((SECONDS - start)))")
  else
    local why="exit $rc"
    [ "$rc" -eq 124 ] && why="TIMED OUT"
    summary+=("$(printf '  %-8s FAILED  %4ss  (%s: %s)' "$name" $((SECONDS - start)) "$why" "$*")")
    failed=1
  fi
}

step ruff ruff check jfs tests
# shellcheck disable=SC2086  # JFS_MYPY_TARGETS is a word list on purpose
step mypy mypy ${JFS_MYPY_TARGETS:-jfs/domain jfs/ports}
# -rs lists every skipped test with its reason (e.g. TiKV without JFS_TEST_TIKV). A hang that
# pytest-timeout cannot break (e.g. in an async fixture's teardown) must not hold CI past its 20 minutes:
# after JFS_PYTEST_TIMEOUT seconds pytest gets SIGINT, prints where it was stuck and its summary.
step pytest timeout --foreground --signal=INT --kill-after=30 "${JFS_PYTEST_TIMEOUT:-1620}" \
  pytest -q -rs --tb=short --durations=15 "$@"

echo
echo "jfs test summary ($((SECONDS - t0))s):"
printf '%s\n' "${summary[@]}"
echo "  $tikv_note"
if [ "$failed" -ne 0 ]; then
  echo "RESULT: FAILED"
  exit 1
fi
echo "RESULT: all checks passed"

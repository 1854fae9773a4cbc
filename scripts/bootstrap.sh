# shellcheck shell=bash
# Shared set-up for scripts/demo.sh and scripts/test.sh. Source it from the repository root:
#
#     source scripts/bootstrap.sh
#     jfs_apt_ensure fuse3 redis-server     # Debian packages, installed only when missing
#     jfs_venv_ensure dev                   # .venv with `pip install -e '.[dev]'` (no argument: plain '.')
#
# Both functions are idempotent and cheap when there is nothing to do: apt is not touched when every
# package is present, and pip is skipped while pyproject.toml is unchanged since the last install.
# Works as root (CI) or as a user with sudo; never prompts (DEBIAN_FRONTEND=noninteractive).

JFS_VENV="${JFS_VENV:-.venv}"

jfs_say() { printf '==> %s\n' "$*" >&2; }
jfs_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

_jfs_pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Install the given Debian packages if any of them is missing (apt-get update first, once).
jfs_apt_ensure() {
  local missing=() pkg
  for pkg in "$@"; do
    _jfs_pkg_installed "$pkg" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    jfs_die "missing system packages: ${missing[*]} (no apt-get here: install them with your package manager)"
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || jfs_die "missing system packages: ${missing[*]} (run as root or install sudo)"
    sudo=(sudo)
  fi
  jfs_say "installing system packages: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    jfs_die "apt-get update failed"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null ||
    jfs_die "apt-get install ${missing[*]} failed"
}

# Make sure python3 (>= 3.11) with a working `venv` module exists, installing python3-venv if needed.
jfs_python_ensure() {
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    jfs_apt_ensure python3 python3-venv
  fi
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    jfs_die "jfs needs Python >= 3.11; python3 is $(python3 -V 2>&1)"
}

# Create (or reuse) the virtualenv in $JFS_VENV and install jfs into it in editable mode.
# $1: the extras to install ("dev" for tests; empty for the plain package).
jfs_venv_ensure() {
  local extras="${1:-}" spec="." stamp="$JFS_VENV/.jfs-bootstrap" want have=""
  [ -n "$extras" ] && spec=".[$extras]"
  jfs_python_ensure
  if [ -x "$JFS_VENV/bin/python" ] && ! "$JFS_VENV/bin/python" -c '' >/dev/null 2>&1; then
    jfs_say "$JFS_VENV is broken (moved or Python upgraded): recreating it"
    rm -rf "$JFS_VENV"
  fi
  if [ ! -x "$JFS_VENV/bin/python" ]; then
    jfs_say "creating virtualenv $JFS_VENV"
    python3 -m venv "$JFS_VENV" || jfs_die "python3 -m venv $JFS_VENV failed"
  fi
  # The stamp records what was installed, for which pyproject.toml and which checkout: re-runs skip pip.
  want="$(sha256sum pyproject.toml | cut -d' ' -f1) $(pwd -P)"
  [ -f "$stamp" ] && have="$(cat "$stamp")"
  if [ "$have" = "$want [$extras]" ] || { [ -z "$extras" ] && [ "${have% \[*\]}" = "$want" ]; }; then
    if "$JFS_VENV/bin/python" -c 'import jfs' >/dev/null 2>&1; then
      jfs_compile
      return 0
    fi
  fi
  jfs_say "installing jfs into $JFS_VENV: pip install -e '$spec'"
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$JFS_VENV/bin/python" -m pip install -q -e "$spec" || jfs_die "pip install -e '$spec' failed"
  printf '%s [%s]\n' "$want" "$extras" >"$stamp"
  jfs_compile
}

# Byte-compile jfs's own modules (pip compiles the dependencies, not an editable install's sources): with
# PYTHONDONTWRITEBYTECODE set, as on some CI machines, every command would otherwise compile what it imports
# (~0.1 s of CPU for a mount or fsck). Up-to-date files are skipped, so re-runs cost ~0.15 s.
jfs_compile() {
  "$JFS_VENV/bin/python" -m compileall -q -j 0 jfs >/dev/null || jfs_say "warning: compileall of jfs failed"
}

"""fstab integration: the ``mount.jfs`` helper that mount(8) runs, and ``jfs mount --update-fstab``.

An fstab line ``META-URL /mnt/jfs jfs _netdev,cache-size=10240,enable-xattr 0 0`` makes ``mount /mnt/jfs``
(and ``mount -a``, and systemd's generated mount units) run ``/sbin/mount.jfs META-URL /mnt/jfs -o OPTIONS``,
which becomes ``jfs mount -d META-URL /mnt/jfs --cache-size 10240 --enable-xattr``: ``key=value`` is
``--key value``, a bare word ``--word``, ``ro`` is ``--read-only``, FUSE words (``allow_other``,
``noatime``, ...) are ``-o word``, ``env.NAME=VALUE`` sets an environment
variable (e.g. ``env.META_PASSWORD=…``), and options meant for mount(8) or systemd (``_netdev``, ``nofail``,
``noauto``, ``x-systemd.*`` …) are dropped. pip cannot install into /sbin: ``--update-fstab`` links
``/sbin/mount.jfs`` to the ``mount.jfs`` script of this installation (or link it by hand).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

FSTAB = "/etc/fstab"
HELPER_LINK = "/sbin/mount.jfs"
FS_TYPE = "jfs"

IGNORED = {
    "_netdev", "nofail", "noauto", "auto", "user", "users", "nouser", "owner", "group", "defaults", "rw",
    "dev", "nodev", "suid", "nosuid", "exec", "async", "atime", "lazytime", "loop", "bg", "fg",
}
FUSE_WORDS = {
    "allow_other", "default_permissions", "writeback_cache", "noatime", "nodiratime", "relatime", "strictatime",
    "noexec", "sync", "dirsync",
}
"""Words that are FUSE/mount flags of `jfs mount -o` (everything else is a `jfs mount` option)."""
IGNORED_PREFIXES = ("x-systemd.", "x-", "comment=", "helper=")
SKIPPED_PARAMS = {"meta_url", "mountpoint", "background", "foreground", "update_fstab"}


def options_to_args(options: str) -> tuple[list[str], dict[str, str]]:
    """mount(8)'s ``-o`` string → (arguments of ``jfs mount``, environment variables to set)."""
    args: list[str] = []
    env: dict[str, str] = {}
    for opt in filter(None, (o.strip() for o in options.split(","))):
        key, sep, value = opt.partition("=")
        if opt in IGNORED or opt.startswith(IGNORED_PREFIXES):
            continue
        if key.startswith("env."):
            env[key[4:]] = value
        elif opt in FUSE_WORDS or key == "max_read":
            args += ["-o", opt]
        elif opt == "ro":
            args.append("--read-only")
        elif sep:
            args += [f"--{key.replace('_', '-')}", value]
        else:
            args.append(f"--{key.replace('_', '-')}")
    return args, env


def helper_main(argv: list[str] | None = None) -> int:
    """``mount.jfs META-URL MOUNTPOINT [-sfnv] [-o OPTIONS]``: mount(8)'s calling convention."""
    argv = list(sys.argv[1:] if argv is None else argv)
    positional: list[str] = []
    options: list[str] = []
    fake = verbose = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-o" and i + 1 < len(argv):
            options.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("-o") and len(arg) > 2:
            options.append(arg[2:])
        elif arg.startswith("-") and len(arg) > 1:
            fake |= "f" in arg[1:]
            verbose |= "v" in arg[1:]  # -s (sloppy) and -n (no mtab) need nothing
        else:
            positional.append(arg)
        i += 1
    if len(positional) != 2:
        sys.stderr.write("usage: mount.jfs META-URL MOUNTPOINT [-sfnv] [-o OPTIONS]\n")
        return 2
    args, env = options_to_args(",".join(options))
    command = [sys.executable, "-P", "-m", "jfs.cli.main", "mount", "-d", *positional, *args]
    if verbose or fake:
        sys.stderr.write(" ".join(command) + "\n")
    if fake:
        return 0
    return subprocess.run(command, env={**os.environ, **env}, stdin=subprocess.DEVNULL).returncode


def _given_options(ctx: Any) -> list[str]:
    """The options given on the command line of the running ``jfs mount`` (its typer context), as fstab
    words; options from the environment stay out (secrets)."""
    words: list[str] = []
    for param in ctx.command.params:
        if param.param_type_name != "option" or param.name in SKIPPED_PARAMS or param.name is None:
            continue
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[param.name]
        if param.name == "fuse_options":  # -o words are fstab words of their own
            words.extend(w for text in value or () for w in text.split(",") if w)
        elif param.is_flag:
            names = param.opts if value else param.secondary_opts
            long = next((n for n in names if n.startswith("--")), None)
            if long:
                words.append(long[2:])
        else:
            name = next(n for n in param.opts if n.startswith("--"))[2:]
            words.append(f"{name}={getattr(value, 'text', getattr(value, 'value', value))}")
    return words


def fstab_line(meta_url: str, mountpoint: str, words: list[str]) -> str:
    return f"{meta_url} {mountpoint} {FS_TYPE} {','.join(['_netdev', *words])} 0 0"


def update_fstab(meta_url: str, mountpoint: str, ctx: Any, *, path: str = FSTAB) -> str:
    """Add the running mount's line to `path` (replacing the line of the same mount point) and link
    `HELPER_LINK`; returns the line. VolumeError when not root or a file cannot be written."""
    from jfs.app.errors import VolumeError

    if os.geteuid() != 0:
        raise VolumeError("--update-fstab needs root (it writes /etc/fstab and /sbin/mount.jfs)")
    target = os.path.abspath(mountpoint)
    line = fstab_line(meta_url, target, _given_options(ctx))
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        kept = [ln for ln in lines if ln.lstrip().startswith("#") or len(ln.split()) < 2 or ln.split()[1] != target]
        # Written in place: /etc/fstab may be a bind mount (containers), which a rename cannot replace.
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join([*kept, line]) + "\n")
    except OSError as exc:
        raise VolumeError(f"cannot update {path}: {exc.strerror or exc}") from None
    _link_helper()
    return line


def _link_helper() -> None:
    from jfs.app.errors import VolumeError

    script = os.path.join(os.path.dirname(sys.executable), "mount.jfs")
    if os.path.lexists(HELPER_LINK) or not os.path.exists(script):
        return
    try:
        os.symlink(script, HELPER_LINK)
    except OSError as exc:
        raise VolumeError(f"cannot link {HELPER_LINK} to {script}: {exc.strerror or exc}") from None


def main() -> None:
    """Console-script entry point (``mount.jfs``)."""
    sys.exit(helper_main())

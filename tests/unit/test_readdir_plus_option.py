"""`jfs mount --readdir-plus always|auto|never` (ADR 0080): the mode reaches the FUSE INIT reply's flags."""

from __future__ import annotations

import asyncio
import socket
from typing import NoReturn

import pytest
from typer.testing import CliRunner

from jfs.adapters.fuse import protocol as p
from jfs.adapters.fuse.mounting import MountOptions
from jfs.adapters.fuse.operations import Operations
from jfs.adapters.fuse.server import FuseServer
from jfs.app.errors import VolumeError
from jfs.cli import mount
from jfs.cli.main import app


def _args(**kw: object) -> mount.MountArgs:
    return mount.MountArgs(meta_url="sqlite3:///x.db", mountpoint="/x", **kw)  # type: ignore[arg-type]


def test_the_default_mode_is_always_and_each_mode_reaches_the_mount_options() -> None:
    assert mount.fuse_mount_options(_args(), "jfs")[0].readdirplus == "always"
    for mode in ("always", "auto", "never"):
        assert mount.fuse_mount_options(_args(readdir_plus=mode), "jfs")[0].readdirplus == mode


def test_an_unknown_mode_is_refused_before_anything_is_opened() -> None:
    with pytest.raises(VolumeError, match="--readdir-plus must be always, auto or never"):
        mount.fuse_mount_options(_args(readdir_plus="sometimes"), "jfs")


def test_the_cli_passes_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[mount.MountArgs] = []
    monkeypatch.setattr(mount, "run_foreground", seen.append)
    result = CliRunner().invoke(app, ["mount", "sqlite3:///nonexistent.db", "/nonexistent-mnt", "--readdir-plus",
                                      "auto"])
    assert result.exit_code == 0, result.output
    assert seen and seen[0].readdir_plus == "auto"
    assert "--readdir-plus" in CliRunner().invoke(app, ["mount", "--help"]).output


class _NoOps(Operations):
    async def lookup(self, *args: object) -> NoReturn:
        raise AssertionError("not called")

    async def getattr(self, *args: object) -> NoReturn:
        raise AssertionError("not called")


async def _init_flags(mode: str) -> int:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    server = FuseServer(_NoOps(), "/nonexistent", MountOptions(readdirplus=mode, drain_timeout=1))
    server.attach(theirs.detach())
    serving = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    try:
        body = p.INIT_IN.pack(7, 38, 1 << 17, 0xFFFF_FFFF, 0xFFFF_FFFF)
        header = p.IN_HEADER.pack(p.IN_HEADER_SIZE + len(body), p.Opcode.INIT, 1, 0, 0, 0, 0, 0, 0)
        await loop.sock_sendall(ours, header + body)
        reply = await loop.sock_recv(ours, 1 << 16)
        return int(p.INIT_OUT.unpack_from(reply, p.OUT_HEADER.size)[3])
    finally:
        ours.close()
        await asyncio.wait_for(serving, 5)


@pytest.mark.parametrize(("mode", "plus", "auto"), [("always", True, False), ("auto", True, True),
                                                    ("never", False, False)])
async def test_init_asks_the_kernel_for_the_mode(mode: str, plus: bool, auto: bool) -> None:
    flags = await _init_flags(mode)
    assert bool(flags & p.FUSE_DO_READDIRPLUS) is plus
    assert bool(flags & p.FUSE_READDIRPLUS_AUTO) is auto

"""``jfs umount`` (ADR 0069): the plain forms the fast entry takes, the server's pid in a mount's ``.config``,
and `umount` waiting for the serving process to exit — without a kernel mount (the mount table, the unmount
and the server are stand-ins; tests/integration/test_mount_options.py does it on a real mount)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from jfs.adapters.fuse import mountinfo
from jfs.app.errors import VolumeError
from jfs.cli import unmount
from jfs.cli.unmount import plain_args


@pytest.mark.parametrize(("args", "expected"), [
    (["/mnt/jfs"], ("/mnt/jfs", False)),
    (["-f", "/mnt/jfs"], ("/mnt/jfs", True)),
    (["/mnt/jfs", "--force"], ("/mnt/jfs", True)),
    (["--", "-odd"], ("-odd", False)),
    ([], None),
    (["--help"], None),
    (["-h"], None),
    (["/a", "/b"], None),
    (["--wait", "/a"], None),
    (["-v", "/a"], None),
    ([""], None),
])
def test_plain_args(args: list[str], expected: tuple[str, bool] | None) -> None:
    assert plain_args(args) == expected


def test_config_pid_reads_jfs_and_juicefs_configs() -> None:
    assert mountinfo.config_pid(json.dumps({"Format": {}, "Mount": {"Pid": 123}}).encode()) == 123
    assert mountinfo.config_pid(json.dumps({"Pid": 456, "Meta": {}}).encode()) == 456  # JuiceFS
    assert mountinfo.config_pid(json.dumps({"Format": {}, "Mount": {}}).encode()) is None  # an older jfs
    assert mountinfo.config_pid(json.dumps({"Mount": {"Pid": True}}).encode()) is None
    assert mountinfo.config_pid(json.dumps({"Mount": {"Pid": -1}}).encode()) is None
    assert mountinfo.config_pid(b"not json") is None
    assert mountinfo.config_pid(b"[1, 2]") is None


def test_server_pid_of_a_config_file_and_of_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".config").write_text(json.dumps({"Mount": {"Pid": 77}}))
    assert mountinfo.server_pid(str(tmp_path)) == 77
    assert mountinfo.server_pid(str(tmp_path / "missing")) is None


class FakeMount:
    """A mount table with one entry that `unmount` removes, served by `server` (a real child process)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, server: subprocess.Popen[bytes] | None) -> None:
        self.mounted = True
        self.unmounts: list[bool] = []
        self.asked = 0
        monkeypatch.setattr(mountinfo, "is_mounted", lambda path: self.mounted)
        monkeypatch.setattr(mountinfo, "unmount", self.unmount)
        monkeypatch.setattr(mountinfo, "server_pid", self.server_pid)
        monkeypatch.setattr(mountinfo, "holds_fuse_device", lambda pid: self.fuse)
        self.server = server
        self.fuse = True

    def unmount(self, path: str, *, lazy: bool = True) -> None:
        self.unmounts.append(lazy)
        self.mounted = False

    def server_pid(self, path: str, timeout: float = 2.0) -> int | None:
        self.asked += 1
        return self.server.pid if self.server is not None else None


def _server(seconds: float) -> subprocess.Popen[bytes]:
    """A stand-in server that takes `seconds` to exit once unmounted."""
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def test_umount_returns_after_the_server_exited(monkeypatch: pytest.MonkeyPatch) -> None:
    server = _server(0.6)
    fake = FakeMount(monkeypatch, server)
    start = time.monotonic()
    unmount.umount("/mnt/x")
    assert fake.unmounts == [False]
    assert server.wait(timeout=0) == 0  # it had exited: TimeoutExpired otherwise
    assert time.monotonic() - start >= 0.3


def test_umount_reports_a_server_still_running(monkeypatch: pytest.MonkeyPatch) -> None:
    server = _server(30)
    FakeMount(monkeypatch, server)
    try:
        with pytest.raises(VolumeError, match=f"mount process {server.pid} is still running"):
            unmount.umount("/mnt/x", exit_wait=0.2)
    finally:
        server.kill()
        server.wait()


def test_force_detaches_without_asking_or_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    server = _server(30)
    fake = FakeMount(monkeypatch, server)
    try:
        start = time.monotonic()
        unmount.umount("/mnt/x", force=True)
        assert fake.unmounts == [True] and fake.asked == 0
        assert time.monotonic() - start < 5
    finally:
        server.kill()
        server.wait()


def test_a_mount_naming_no_server_is_waited_for_in_the_mount_table_only(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMount(monkeypatch, None)
    unmount.umount("/mnt/x")
    assert fake.unmounts == [False] and fake.asked == 1


def test_a_pid_that_is_no_fuse_server_here_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``.config`` pid from another pid namespace (a mount made in a container) may name an unrelated
    process here: without ``/dev/fuse`` open it is not the server, and `umount` does not wait for it."""
    server = _server(30)
    fake = FakeMount(monkeypatch, server)
    fake.fuse = False
    try:
        start = time.monotonic()
        unmount.umount("/mnt/x", exit_wait=20)
        assert fake.unmounts == [False] and time.monotonic() - start < 10
    finally:
        server.kill()
        server.wait()


def test_holds_fuse_device() -> None:
    assert not mountinfo.holds_fuse_device(os.getpid())
    assert not mountinfo.holds_fuse_device(2**22 + 12345)  # no such process
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.skip("/dev/fuse is not usable here")
    holder = subprocess.Popen([sys.executable, "-c", "import os, sys, time; fd = os.open('/dev/fuse', os.O_RDWR); "
                               "print('open', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert mountinfo.holds_fuse_device(holder.pid)
        pidfd = mountinfo.open_process(holder.pid)
        assert pidfd is not None
        holder.kill()
        assert mountinfo.wait_exit(pidfd, 10)
    finally:
        holder.kill()
        holder.wait()


def test_not_mounted_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMount(monkeypatch, None)
    fake.mounted = False
    with pytest.raises(VolumeError, match="is not mounted"):
        unmount.umount("/mnt/x")
    fake.mounted = True

    def busy(path: str, *, lazy: bool = True) -> None:
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(mountinfo, "unmount", busy)
    with pytest.raises(VolumeError, match="cannot unmount /mnt/x: Device or resource busy"):
        unmount.umount("/mnt/x")


def _console(*args: str) -> subprocess.CompletedProcess[str]:
    """``jfs ARGS`` as the console script enters it, reporting whether typer was imported."""
    code = ("import sys, atexit; atexit.register(lambda: print('typer' in sys.modules)); "
            "from jfs.cli import run; run()")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          cwd="/")


def test_the_console_script_enters_plain_umounts_without_typer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _console("umount", str(tmp_path / "nothing"))
    assert done.returncode == 1
    assert done.stderr == f"jfs: error: {tmp_path / 'nothing'} is not mounted\n"
    assert done.stdout.strip() == "False"
    helped = _console("umount", "--help")
    assert helped.returncode == 0 and "MOUNTPOINT" in helped.stdout and "--force" in helped.stdout
    wrong = _console("umount", "--bogus", "/x")
    assert wrong.returncode == 2 and "--bogus" in wrong.stderr

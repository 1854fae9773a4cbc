"""The jfs processes the CLI starts (mount daemon, gateway, WebDAV, dump workers, fstab's mount) import the
jfs that started them, not a `jfs` package in their working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jfs.cli import mount_start


def test_mount_daemon_argv_isolates_the_working_directory(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["jfs", "mount", "sqlite3:///v.db", "/mnt/v", "-d"])
    argv = mount_start.foreground_argv()
    assert argv[:4] == [sys.executable, "-P", "-m", "jfs.cli.main"]
    assert argv[4:] == ["mount", "sqlite3:///v.db", "/mnt/v", "--foreground"]


def test_dash_p_skips_a_jfs_package_in_the_working_directory(tmp_path: Path) -> None:
    decoy = tmp_path / "jfs"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('decoy jfs imported')\n")
    code = "import jfs, sys; print(jfs.__file__)"
    plain = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    isolated = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert "decoy" in plain.stderr
    assert isolated.returncode == 0 and str(tmp_path) not in isolated.stdout


def test_every_cli_child_command_runs_isolated() -> None:
    root = Path(mount_start.__file__).parent
    for module in ("mount_start.py", "gateway.py", "webdav_cmd.py", "fstab.py", "dump_cmd.py"):
        text = (root / module).read_text()
        assert '"-m", "jfs.' in text, module
        assert text.count('sys.executable, "-m"') == 0 and text.count('sys.executable, "-P", "-m"') >= 1, module

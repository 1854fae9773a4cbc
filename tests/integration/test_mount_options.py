"""`jfs mount` options against real FUSE mounts: --subdir, -o (allow_other opt-in, ro, noatime),
--log for background mounts, --upload-limit."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jfs.testing.mounts import format_volume, is_mounted, jfs, mount_process, mounted, reachable_dir
from jfs.testing.servers import free_port

NOBODY = 65534


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory other users can reach (pytest's temp tree is 0700), removed afterwards."""
    with reachable_dir("jfs-mopts-") as d:
        yield d


@pytest.fixture(params=["trash-off", "trash-on"])
def volume(request: pytest.FixtureRequest, base: Path) -> str:
    """A SQLite + local directory volume, without and with the trash (the default format)."""
    url = f"sqlite3://{base}/meta.db"
    format_volume(url, str(base / "bucket"), "optvol", *(["--trash-days", "1"] if request.param == "trash-on" else []))
    return url


def _mount_line(mountpoint: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields[4] == str(mountpoint):
                return fields
    raise AssertionError(f"{mountpoint} is not mounted")


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), user=NOBODY, group=NOBODY, capture_output=True, text=True, timeout=30)


def _plain_mount(url: str, mountpoint: Path, *extra: str) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """A foreground mount without `mounted`'s defaults (no allow_other), unmounted and stopped on exit."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    return mount_process(url, mountpoint, "--cache-dir", str(mountpoint.parent / "cache-plain"), "--metrics", "off",
                         *extra, log=mountpoint.parent / "plain-mount.log")


def test_subdir_mounts_a_directory_of_the_volume_as_the_root(volume: str, base: Path) -> None:
    with mounted(volume, base / "full") as full:
        (full / "team" / "docs").mkdir(parents=True)
        (full / "team" / "docs" / "a.txt").write_bytes(b"alpha")
        (full / "other").mkdir()
        with mounted(volume, base / "sub", "--subdir", "/team", "--metrics", "off") as sub:
            assert sorted(n for n in os.listdir(sub) if not n.startswith(".")) == ["docs"]
            assert (sub / "docs" / "a.txt").read_bytes() == b"alpha"
            # The virtual files are at the mount's root; the volume's trash is not a subdir's.
            assert (sub / ".stats").is_file() and (sub / ".config").is_file()
            assert ".stats" in os.listdir(sub) and ".trash" not in os.listdir(sub)
            assert '"Subdir": "/team"' in (sub / ".config").read_text()
            # Changes at the mount's root land in /team of the volume.
            (sub / "new.txt").write_bytes(b"beta")
            (sub / "dir").mkdir()
            os.rename(sub / "new.txt", sub / "dir" / "moved.txt")
            assert os.statvfs(sub).f_blocks > 0
            assert (full / "team" / "dir" / "moved.txt").read_bytes() == b"beta"
            # Nothing above the subdir is reachable through it.
            assert not (sub / "other").exists() and not (sub / "team").exists()
            assert os.path.realpath(sub / "..") == str(base)
        r = jfs("mount", volume, str(base / "bad"), "--subdir", "/missing", "--metrics", "off", check=False)
        assert r.returncode != 0 and "missing" in r.stderr and not is_mounted(str(base / "bad"))


def test_allow_other_is_opt_in(volume: str, base: Path) -> None:
    mnt = base / "mnt"
    with _plain_mount(volume, mnt):
        mnt.chmod(0o777)
        fields = _mount_line(mnt)
        assert "allow_other" not in fields[-1] and "default_permissions" in fields[-1]
        denied = _as_nobody("stat", str(mnt))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
    with _plain_mount(volume, mnt, "-o", "allow_other,noatime", "-o", "noexec"):
        fields = _mount_line(mnt)
        mount_opts, super_opts = fields[5].split(","), fields[-1].split(",")
        assert "allow_other" in super_opts and "noatime" in mount_opts and "noexec" in mount_opts
        assert _as_nobody("stat", str(mnt)).returncode == 0


def test_o_ro_mounts_read_only_and_bad_words_are_refused(volume: str, base: Path) -> None:
    mnt = base / "mnt"
    with mounted(volume, base / "rw") as rw:
        (rw / "kept").write_bytes(b"x")
    with _plain_mount(volume, mnt, "-o", "ro"):
        assert "ro" in _mount_line(mnt)[5].split(",")
        assert (mnt / "kept").read_bytes() == b"x"
        with pytest.raises(OSError) as err:
            (mnt / "new").write_bytes(b"y")
        assert err.value.errno == errno.EROFS
    r = jfs("mount", volume, str(base / "bad"), "-o", "max_read=12", "--metrics", "off", check=False)
    assert r.returncode != 0 and "max_read" in r.stderr
    r = jfs("mount", volume, str(base / "bad"), "-o", "no_such_option", "--metrics", "off", check=False)
    assert r.returncode != 0 and not is_mounted(str(base / "bad"))


def test_background_mount_logs_to_the_log_option(volume: str, base: Path) -> None:
    mnt, log = base / "bg", base / "logs" / "mount.log"
    r = jfs("mount", "-d", volume, str(mnt), "--log", str(log), "--metrics", "off",
            "--cache-dir", str(base / "bgcache"), check=False)
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(str(mnt))
        text = log.read_text()
        assert "event=mounting" in text and str(mnt) in text
    finally:
        if is_mounted(str(mnt)):
            jfs("umount", str(mnt), check=False)
    assert not is_mounted(str(mnt))
    assert "event=unmounted" in log.read_text()


def test_upload_limit_slows_uploads_to_the_bandwidth(volume: str, base: Path) -> None:
    """8 MiB through --upload-limit 32 (Mbps = 4 MB/s) take at least 8 MiB / 4 MB/s - the 0.1 s burst."""
    size, mbps = 8 << 20, 32
    expected = size * 8 / (mbps * 1e6) - 0.1
    data = os.urandom(size)
    with mounted(volume, base / "lim", "--upload-limit", str(mbps), "--metrics", "off") as mnt:
        start = time.monotonic()
        with open(mnt / "big", "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        took = time.monotonic() - start
        assert took >= expected, f"{took:.2f}s < {expected:.2f}s"
        assert (mnt / "big").read_bytes() == data
    assert sum(p.stat().st_size for p in (base / "bucket").rglob("*") if p.is_file()) >= size


def _mount_pid(mountpoint: Path) -> int:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--foreground" in argv and str(mountpoint).encode() in argv:
                return int(entry)
    raise AssertionError(f"no mount process for {mountpoint}")


def test_sighup_reopens_the_log_file_and_reloads_the_level(volume: str, base: Path) -> None:
    """logrotate's way: move the log away, SIGHUP; the mount writes to a new file, at the new level."""
    mnt, log = base / "hup", base / "hup.log"
    r = jfs("mount", "-d", volume, str(mnt), "--log", str(log), "--metrics", "off",
            "--cache-dir", str(base / "hupcache"), check=False)
    try:
        assert r.returncode == 0, r.stderr
        pid = _mount_pid(mnt)
        log.rename(base / "hup.log.1")
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not (log.exists() and "event=log_level" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "new_level=debug" in log.read_text()
        os.listdir(mnt)  # the mount still serves
        assert "event=mounting" in (base / "hup.log.1").read_text()
    finally:
        if is_mounted(str(mnt)):
            jfs("umount", str(mnt), check=False)
    assert "event=unmounted" in log.read_text()


def test_backup_meta_puts_a_dump_in_the_bucket_that_jfs_load_restores(volume: str, base: Path) -> None:
    """--backup-meta 2s: a mount writes optvol/meta/dump-YYYY-MM-DD-HHMMSS.json.gz into the bucket; `jfs load`
    of it into a fresh engine gives the same tree and file contents (the data stays in the same bucket)."""
    backups = base / "bucket" / "optvol" / "meta"
    with mounted(volume, base / "bk", "--backup-meta", "2s", "--metrics", "off") as mnt:
        (mnt / "d" / "e").mkdir(parents=True)
        (mnt / "d" / "e" / "f.txt").write_bytes(b"restored")
        (mnt / "top.bin").write_bytes(os.urandom(100_000))
        os.symlink("d/e/f.txt", mnt / "link")
        want = {p.relative_to(mnt).as_posix(): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
                for p in mnt.rglob("*") if not p.name.startswith(".")}
        # A backup made after the tree was written: wait for one newer than the files.
        made = time.time()
        deadline = time.monotonic() + 40
        found: list[Path] = []
        while time.monotonic() < deadline:
            found = sorted(p for p in backups.glob("dump-*.json.gz") if p.stat().st_mtime > made + 0.5)
            if found:
                break
            time.sleep(0.2)
        assert found, sorted(os.listdir(backups)) if backups.exists() else "no meta/ prefix"
    assert all(len(p.name) == len("dump-2026-01-01-000000.json.gz") for p in found)
    restored = f"sqlite3://{base}/restored.db"
    r = jfs("load", restored, str(found[-1]), check=False)
    assert r.returncode == 0, r.stderr
    with mounted(restored, base / "rs", "--backup-meta", "0", "--metrics", "off", "--read-only") as mnt:
        got = {p.relative_to(mnt).as_posix(): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
               for p in mnt.rglob("*") if not p.name.startswith(".")}
        assert os.readlink(mnt / "link") == "d/e/f.txt"
    assert got == want


def test_backup_meta_thins_old_backups_as_juicefs_does(volume: str, base: Path) -> None:
    """Backups of the last 10 days (4 a day, 3 h off every window's edge) lie in the bucket; after the
    mount's first backup (--backup-meta 2s) the ones `expired` names are gone, the rest and other objects
    under meta/ stay, and the dump's temporary file is gone from the cache directory."""
    from datetime import UTC, datetime, timedelta

    from jfs.app.meta_backup import backup_key, backup_time, expired

    backups = base / "bucket" / "optvol" / "meta"
    backups.mkdir(parents=True)
    now = datetime.now(UTC)
    old = [now - timedelta(hours=3 + 6 * i) for i in range(40)]
    for t in old:
        (base / "bucket" / backup_key("optvol", t.timestamp())).write_bytes(b"an old backup")
    (backups / "README").write_text("not a backup")
    old = [backup_time(backup_key("optvol", t.timestamp())) for t in old]  # to the second, as named
    want_gone = {backup_key("optvol", t.timestamp()).rsplit("/", 1)[1] for t in expired(old, now) if t}
    assert len(want_gone) == 40 - (8 + 8)  # all 8 of the last 2 days, then 1 a day for 8 days
    port = free_port()
    with mounted(volume, base / "bk", "--backup-meta", "2s", "--metrics", f"127.0.0.1:{port}") as mnt:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            names = set(os.listdir(backups))
            if len(names) > 41 - len(want_gone) and not names & want_gone:
                break
            time.sleep(0.2)
        cache = Path(json.loads((mnt / ".config").read_text())["Mount"]["CacheDir"])
        leftovers = list(cache.rglob(".backup-meta-*"))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            samples = {s.name: s.value for f in text_string_to_metric_families(resp.read().decode())
                       for s in f.samples}
        assert samples["juicefs_last_successful_backup"] >= now.timestamp() - 1  # JuiceFS's backup gauges
        assert samples["juicefs_last_backup_duration"] > 0
    names = set(os.listdir(backups))
    assert not names & want_gone, sorted(names & want_gone)
    assert "README" in names
    assert len([n for n in names if n.startswith("dump-")]) >= 40 - len(want_gone) + 1
    assert not leftovers


def test_backup_meta_zero_and_no_bgjob_make_no_backup(volume: str, base: Path) -> None:
    with mounted(volume, base / "nb", "--backup-meta", "0", "--metrics", "off") as mnt:
        (mnt / "x").write_bytes(b"x")
        time.sleep(2.5)
    with mounted(volume, base / "nb2", "--backup-meta", "1s", "--no-bgjob", "--metrics", "off"):
        time.sleep(2.5)
    assert not (base / "bucket" / "optvol" / "meta").exists()


def _bucket_bytes(bucket: Path) -> int:
    return sum(p.stat().st_size for p in (bucket / "optvol" / "chunks").rglob("*") if p.is_file()) \
        if (bucket / "optvol" / "chunks").exists() else 0


def test_writeback_survives_sigkill_and_the_next_mount_uploads(volume: str, base: Path) -> None:
    """--writeback with uploads held back (--upload-limit 1 = 125 kB/s): files closed (acknowledged) are
    staged; SIGKILL the mount; the next mount of the same cache directory uploads them; a mount with
    another cache directory then reads every byte from the bucket."""
    mnt = base / "wb"
    files = {f"f{i}": os.urandom(3 << 20) for i in range(3)}
    with _plain_mount(volume, mnt, "--writeback", "--upload-limit", "1", "--backup-meta", "0",
                      "--heartbeat", "1") as proc:
        for name, data in files.items():
            with open(mnt / name, "wb") as f:
                f.write(data)
        staged = base / "cache-plain"
        assert sum(p.stat().st_size for p in staged.rglob("rawstaging/**/*") if p.is_file()) > 0
        assert _bucket_bytes(base / "bucket") < sum(map(len, files.values()))  # not all uploaded yet
        stats = dict(line.split(maxsplit=1) for line in (mnt / ".stats").read_text().splitlines() if line)
        assert float(stats["jfs_staging_blocks"]) > 0
        assert float(stats["jfs_staging_block_bytes"]) > 0
        # `jfs status` shows the session's pending uploads (published at its next heartbeat, 1 s here)
        pending: dict[str, object] = {}
        deadline = time.monotonic() + 15
        while not pending.get("Blocks") and time.monotonic() < deadline:
            time.sleep(0.3)
            doc = json.loads(jfs("status", volume, "--json").stdout)
            pending = next(s for s in doc["Sessions"] if s["MountPoint"] == str(mnt)).get("Staging") or {}
        assert isinstance(pending.get("Blocks"), int) and pending["Blocks"] > 0, pending
        assert isinstance(pending.get("Bytes"), int) and 0 < pending["Bytes"] <= sum(map(len, files.values()))
        assert str(pending["Dir"]).endswith("rawstaging")
        proc.kill()
        proc.wait()
    assert not is_mounted(str(mnt))
    with _plain_mount(volume, mnt, "--writeback", "--backup-meta", "0"):  # same cache dir, no limit
        assert sorted(n for n in os.listdir(mnt) if not n.startswith(".")) == sorted(files)
    # (leaving the block unmounted it gracefully: that waits for the uploads)
    assert not [p for p in (base / "cache-plain").rglob("rawstaging/**/*") if p.is_file()]
    with mounted(volume, base / "check", "--metrics", "off", "--backup-meta", "0") as check:  # another cache
        for name, data in files.items():
            assert (check / name).read_bytes() == data, name


def _staged_bytes(cache: Path) -> int:
    return sum(p.stat().st_size for p in cache.rglob("rawstaging/**/*") if p.is_file())


def test_writeback_staging_is_bounded_by_cache_size_and_free_space(volume: str, base: Path) -> None:
    """--cache-size 2M: of four 1 MiB files written back to back, at most 2 MiB wait staged (uploads held
    at 4 Mbps); the rest went straight to the bucket (``jfs_staging_direct_uploads``). With
    --free-space-ratio 1.0 (never that much free) nothing is staged: a closed file is in the bucket."""
    mnt = base / "wb"
    files = {f"f{i}": os.urandom(1 << 20) for i in range(4)}
    # --free-space-ratio 0: only the size bound is under test (a fuller disk would send every block direct)
    with _plain_mount(volume, mnt, "--writeback", "--cache-size", "2M", "--free-space-ratio", "0",
                      "--upload-limit", "4", "--backup-meta", "0"):
        peak = 0
        for name, data in files.items():
            with open(mnt / name, "wb") as f:
                f.write(data)
            peak = max(peak, _staged_bytes(base / "cache-plain"))
        stats = dict(line.split(maxsplit=1) for line in (mnt / ".stats").read_text().splitlines() if line)
        assert 0 < peak <= 2 << 20
        assert float(stats["jfs_staging_direct_uploads"]) >= 1
        assert float(stats["jfs_staging_block_bytes"]) <= 2 << 20
    assert _staged_bytes(base / "cache-plain") == 0
    assert _bucket_bytes(base / "bucket") >= 4 << 20

    port = free_port()
    with _plain_mount(volume, mnt, "--writeback", "--free-space-ratio", "1.0", "--backup-meta", "0",
                      "--metrics", f"127.0.0.1:{port}"):
        before = _bucket_bytes(base / "bucket")
        (mnt / "g").write_bytes(os.urandom(1 << 20))
        assert _staged_bytes(base / "cache-plain") == 0
        assert _bucket_bytes(base / "bucket") >= before + (1 << 20)  # uploaded before close returned
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            samples = {s.name: s.value for f in text_string_to_metric_families(resp.read().decode())
                       for s in f.samples}
        assert samples["juicefs_staging_direct_uploads"] >= 1 and samples["juicefs_staging_blocks"] == 0
        assert samples["juicefs_staging_block_bytes"] == 0
    with mounted(volume, base / "check", "--metrics", "off", "--backup-meta", "0") as check:
        for name, data in files.items():
            assert (check / name).read_bytes() == data, name


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie has exited: its parent has only not reaped it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_umount_returns_once_the_mount_process_flushed_and_exited(volume: str, base: Path) -> None:
    """``jfs umount`` (the console script's fast entry, ADR 0069) returns only after the background mount's
    process has exited: its session is gone and the data of files just written (not fsynced) is read back by a
    fresh mount."""
    mnt, log = base / "um", base / "um.log"
    r = jfs("mount", "-d", volume, str(mnt), "--log", str(log), "--metrics", "off",
            "--cache-dir", str(base / "umcache"), check=False)
    try:
        assert r.returncode == 0, r.stderr
        pid = _mount_pid(mnt)
        assert json.loads((mnt / ".config").read_bytes())["Mount"]["Pid"] == pid
        big, small = os.urandom((4 << 20) + 12345), b"just written"
        (mnt / "big").write_bytes(big)
        (mnt / "small").write_bytes(small)
        done = subprocess.run([sys.executable, "-c", "from jfs.cli import run; run()", "umount", str(mnt)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert not _alive(pid)
        assert not is_mounted(str(mnt))
    finally:
        if is_mounted(str(mnt)):
            jfs("umount", str(mnt), check=False)
    assert "event=unmounted" in log.read_text()
    assert not json.loads(jfs("status", volume, "--json").stdout)["Sessions"]
    with mounted(volume, base / "again", "--metrics", "off") as again:
        assert (again / "big").read_bytes() == big
        assert (again / "small").read_bytes() == small

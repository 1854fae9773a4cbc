"""`DirectWriter` (ADR 0059): whole files written with O_DIRECT, exact sizes, clean fallbacks."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jfs.adapters import direct_files
from jfs.adapters.direct_files import DirectWriter


def _usable(tmp_path: Path) -> DirectWriter:
    w = DirectWriter()
    probe = str(tmp_path / "probe")
    if not w.write(probe, [b"x"]):
        pytest.skip("no O_DIRECT on this file system")
    os.unlink(probe)
    return w


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 3 * direct_files.ALIGN + 7), min_size=1, max_size=3))
def test_the_file_holds_exactly_the_parts(tmp_path_factory: pytest.TempPathFactory, sizes: list[int]) -> None:
    tmp_path = tmp_path_factory.mktemp("d")
    w = _usable(tmp_path)
    parts = [os.urandom(n) for n in sizes]
    path = tmp_path / "f"
    assert w.write(str(path), list(parts))
    assert path.read_bytes() == b"".join(parts)
    assert path.stat().st_mode & 0o777 == 0o600
    bigger = [os.urandom(5 * direct_files.ALIGN + 1)]  # the thread's buffer grows
    assert w.write(str(tmp_path / "g"), list(bigger))
    assert (tmp_path / "g").read_bytes() == bigger[0]


def test_an_existing_name_is_refused(tmp_path: Path) -> None:
    w = _usable(tmp_path)
    (tmp_path / "f").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        w.write(str(tmp_path / "f"), [b"new"])
    assert (tmp_path / "f").read_bytes() == b"old"


def test_a_file_system_without_o_direct_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = DirectWriter()
    real_open = os.open

    def refuse(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "no O_DIRECT")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refuse)
    assert not w.write(str(tmp_path / "f"), [b"data"])
    assert not w.usable and not (tmp_path / "f").exists()
    assert not w.write(str(tmp_path / "g"), [b"data"])  # no more tries


def test_a_short_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = _usable(tmp_path)
    monkeypatch.setattr(os, "write", lambda fd, data: len(data) - direct_files.ALIGN)
    with pytest.raises(OSError) as err:
        w.write(str(tmp_path / "f"), [os.urandom(3 * direct_files.ALIGN)])
    assert err.value.errno == errno.ENOSPC
    assert not (tmp_path / "f").exists() and w.usable


def test_write_fd_fills_an_open_file_and_gives_its_flags_back(tmp_path: Path) -> None:
    import fcntl

    w = _usable(tmp_path)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        before = fcntl.fcntl(fd, fcntl.F_GETFL)
        data = os.urandom(2 * direct_files.ALIGN + 3)
        assert w.write_fd(fd, [data[:5], data[5:]])
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == before
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data


def test_at_most_buffers_copies_at_once(tmp_path: Path) -> None:
    """Two buffers, eight threads: every file whole, and never more than two buffers made."""
    import threading

    w = DirectWriter(buffers=2)
    if not w.write(str(tmp_path / "probe"), [b"x"]):
        pytest.skip("no O_DIRECT on this file system")
    bodies = [os.urandom(3 * direct_files.ALIGN + i) for i in range(8)]
    threads = [threading.Thread(target=w.write, args=(str(tmp_path / str(i)), [b])) for i, b in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all((tmp_path / str(i)).read_bytes() == b for i, b in enumerate(bodies))
    assert len(w._free) <= 2


def test_parts_of_any_item_format_are_counted_in_bytes(tmp_path: Path) -> None:
    import array

    w = _usable(tmp_path)
    ints = array.array("I", range(3000))  # 12,000 bytes in 4-byte items
    assert w.write(str(tmp_path / "f"), [memoryview(ints), b"tail"])
    assert (tmp_path / "f").read_bytes() == ints.tobytes() + b"tail"

"""`Tally.read_error`: a client's documented answer to a read of a file another client deleted is expected
only from that client (its errnos given), with that errno, and when the file is indeed gone."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from jfs.testing.workloads import JUICEFS_DELETED_READ, Tally

EBADF = OSError(errno.EBADF, "Bad file descriptor")


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY)
    yield fd
    os.close(fd)


def _judge(t: Tally, exc: OSError, fd: int, errnos: frozenset[int], fstat_errno: int | None = None) -> bool:
    """`t.read_error`, with fstat of `fd` failing with `fstat_errno` (the file gone) unless it is None."""
    if fstat_errno is None:
        return t.read_error(exc, fd, errnos)

    def fstat(_fd: int) -> os.stat_result:
        raise OSError(fstat_errno, os.strerror(fstat_errno))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fstat", fstat)
        return t.read_error(exc, fd, errnos)


@pytest.mark.parametrize("code", [errno.ENOENT, errno.ESTALE])
def test_ebadf_from_a_juicefs_read_of_a_gone_file_is_expected(fd: int, code: int) -> None:
    t = Tally()
    assert _judge(t, EBADF, fd, JUICEFS_DELETED_READ, code)
    assert t.expected == {"EBADF (read of a deleted file)": 1} and not t.unexpected


def test_ebadf_while_the_file_still_exists_is_not(fd: int) -> None:
    t = Tally()
    assert not _judge(t, EBADF, fd, JUICEFS_DELETED_READ)  # fstat answers: the file is there
    assert not t.expected


def test_ebadf_from_a_client_without_that_answer_is_not(fd: int) -> None:
    t = Tally()
    assert not _judge(t, EBADF, fd, frozenset(), errno.ENOENT)  # jfs: EBADF from a read is never a race answer
    assert not t.expected


def test_another_errno_is_not(fd: int) -> None:
    t = Tally()
    assert not _judge(t, OSError(errno.EIO, "I/O error"), fd, JUICEFS_DELETED_READ, errno.ENOENT)
    assert not t.expected


def test_fstat_failing_otherwise_is_not(fd: int) -> None:
    t = Tally()
    assert not _judge(t, EBADF, fd, JUICEFS_DELETED_READ, errno.EIO)
    assert not t.expected

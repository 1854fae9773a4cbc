"""What this client last wrote to a file's attributes and chunk records by committing slices: the
expected values a slice commit validates instead of reading them first (one round trip instead of two on
engines that validate reads by value, ADR 0016 + docs/adr/0002-redis-transactions.md)."""

from __future__ import annotations

LIMIT = 4096
"""Files remembered at most (all forgotten when passed: a miss costs one read round, nothing more)."""
MISS_PAUSE = 8
"""Commits of a file that read first after a wrong guess (another writer is changing it)."""


class CommitTails:
    """Per inode: the attribute record and, per chunk index, the chunk record this client's last slice
    commit left. A guess only: the transaction validates it and a wrong one costs a retry with real reads.

    `take` hands the guess out at most once (a retried body reads for real); `keep` records what a commit
    wrote; `missed` pauses guessing for the inode after a wrong guess.
    """

    def __init__(self) -> None:
        self._attrs: dict[int, bytes] = {}
        self._chunks: dict[tuple[int, int], bytes | None] = {}
        self._paused: dict[int, int] = {}

    def take(self, ino: int, indx: int) -> tuple[bytes, bytes | None] | None:
        """(attribute record, chunk record) to assume for a commit to chunk `indx` of `ino`, or None."""
        if ino in self._paused:
            left = self._paused[ino] - 1
            if left > 0:
                self._paused[ino] = left
            else:
                del self._paused[ino]
            return None
        if ino not in self._attrs or (ino, indx) not in self._chunks:
            return None
        return self._attrs.pop(ino), self._chunks.pop((ino, indx))

    def keep(self, ino: int, indx: int, attr: bytes, chunk: bytes) -> None:
        """A commit to chunk `indx` of `ino` left these records."""
        if len(self._chunks) >= LIMIT:
            self.clear()
        self._attrs[ino] = attr
        self._chunks[(ino, indx)] = chunk

    def missed(self, ino: int) -> None:
        """A guess for `ino` was wrong: read first for its next few commits."""
        self._paused[ino] = MISS_PAUSE
        self._attrs.pop(ino, None)

    def forget(self, inodes: tuple[int, ...]) -> None:
        """Another transaction of this client changes `inodes`: their guesses are stale."""
        for ino in inodes:
            self._attrs.pop(ino, None)

    def clear(self) -> None:
        self._attrs.clear()
        self._chunks.clear()
        self._paused.clear()

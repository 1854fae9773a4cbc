"""What this client last wrote to a file's attributes and chunk records by committing slices, and to a
directory's attributes by creating entries in it: the expected values a slice commit or a create validates
instead of reading them first (one round trip instead of two on engines that validate reads by value,
ADR 0016 + docs/adr/0002-redis-transactions.md, ADR 0031). Of a chunk record only its length is kept: the
commit appends to it checked by length (`AppendingTx`, ADR 0055)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from jfs.domain.errors import FSError
from jfs.ports.kv import ConflictError, Tx

T = TypeVar("T")

LIMIT = 4096
"""Files remembered at most (all forgotten when passed: a miss costs one read round, nothing more)."""
NAMES = 64
"""Names whose last LOOKUP reply is remembered (the oldest dropped first): a rename follows the kernel's
LOOKUPs of its two names at once, so a short window is enough."""
MISS_PAUSE = 8
"""Commits of a file that read first after a wrong guess (another writer is changing it)."""


class CommitTails:
    """Per inode: the attribute record and, per chunk index, the length of the chunk record this client's
    last slice commit left. A guess only: the transaction validates it and a wrong one costs a retry with real reads.

    `take` hands the guess out at most once (a retried body reads for real); `keep` records what a commit
    wrote; `missed` pauses guessing for the inode after a wrong guess. `take_dir` / `keep_dir` /
    `missed_dir` do the same for a directory's attribute record (`namespace.mknod`, `rename`);
    `keep_name` / `take_name` for what a LOOKUP of a name found: its entry and the inode's attribute
    record, or nothing (`rename`, ADR 0086).
    """

    def __init__(self) -> None:
        self._attrs: dict[int, bytes] = {}
        self._chunks: dict[tuple[int, int], int] = {}
        self._paused: dict[int, int] = {}
        self._dirs: dict[int, bytes] = {}
        self._dirs_paused: dict[int, int] = {}
        self._names: dict[tuple[int, bytes], tuple[bytes, bytes] | None] = {}

    def take(self, ino: int, indx: int) -> tuple[bytes, int] | None:
        """(attribute record, chunk record's length) to assume for a commit to chunk `indx` of `ino`, or None."""
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

    def keep(self, ino: int, indx: int, attr: bytes, chunk: int) -> None:
        """A commit to chunk `indx` of `ino` left this attribute record and a chunk record `chunk` bytes long."""
        if len(self._chunks) >= LIMIT:
            self.clear()
        self._attrs[ino] = attr
        self._chunks[(ino, indx)] = chunk

    def keep_created(self, ino: int, attr: bytes) -> None:
        """This client has just created the regular file `ino` with the attribute record `attr`: its chunk 0
        is empty (a record of length 0, i.e. absent), so its first slice commit there need not read either."""
        self.keep(ino, 0, attr, 0)

    def missed(self, ino: int) -> None:
        """A guess for `ino` was wrong: read first for its next few commits."""
        self._paused[ino] = MISS_PAUSE
        self._attrs.pop(ino, None)

    def take_dir(self, ino: int) -> bytes | None:
        """The attribute record to assume for directory `ino` in a create, or None (read it)."""
        if ino in self._dirs_paused:
            left = self._dirs_paused[ino] - 1
            if left > 0:
                self._dirs_paused[ino] = left
            else:
                del self._dirs_paused[ino]
            return None
        return self._dirs.pop(ino, None)

    def keep_dir(self, ino: int, attr: bytes) -> None:
        """A create in directory `ino` committed, leaving (or finding unchanged) its record `attr`."""
        if len(self._dirs) >= LIMIT:
            self._dirs.clear()
            self._dirs_paused.clear()
        self._dirs[ino] = attr

    def missed_dir(self, ino: int) -> None:
        """A guess for directory `ino` was wrong: read first for its next few creates."""
        self._dirs_paused[ino] = MISS_PAUSE
        self._dirs.pop(ino, None)

    def keep_name(self, parent: int, name: bytes, found: tuple[bytes, bytes] | None) -> None:
        """A LOOKUP of `name` in `parent` found (entry record, attribute record), or no entry (None)."""
        names = self._names
        if len(names) >= NAMES:
            del names[next(iter(names))]
        names[(parent, name)] = found

    def take_name(self, parent: int, name: bytes) -> tuple[bytes, bytes] | None | bool:
        """What the last LOOKUP of `name` in `parent` found (see `keep_name`), at most once; False when
        there is nothing to go by."""
        return self._names.pop((parent, name), False)

    def drop_name(self, parent: int, name: bytes) -> None:
        """This client changes the name `name` in `parent`: what a LOOKUP found there is stale."""
        self._names.pop((parent, name), None)

    def forget(self, inodes: tuple[int, ...]) -> None:
        """Another transaction of this client changes `inodes`: their guesses are stale."""
        for ino in inodes:
            self._attrs.pop(ino, None)
            self._dirs.pop(ino, None)

    def clear(self) -> None:
        self._attrs.clear()
        self._chunks.clear()
        self._paused.clear()
        self._dirs.clear()
        self._dirs_paused.clear()
        self._names.clear()


def errors_on_guesses_retried(
    body: Callable[[Tx], Awaitable[T]], guessing: Callable[[], bool], what: str
) -> Callable[[Tx], Awaitable[T]]:
    """`body`, except that an FSError it raises while `guessing()` (its attempt works on assumed records)
    becomes a ConflictError: an error found on a guess another client has made stale (a chmod, a move) is
    never the answer; the transaction's retry reads what is stored and decides (ADR 0086)."""

    async def guarded(tx: Tx) -> T:
        try:
            return await body(tx)
        except FSError:
            if guessing():
                raise ConflictError(f"{what}: an error on guessed records, read them") from None
            raise

    return guarded

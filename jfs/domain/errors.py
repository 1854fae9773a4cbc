"""File-system errors: every failure a caller of the metadata engine can see carries an errno."""

from __future__ import annotations

import errno as _errno
import os


class FSError(OSError):
    """A POSIX error with an errno, raised by domain rules and the metadata engine.

    `FSError(errno.ENOENT)` formats its message from the errno; an optional detail is appended.
    """

    def __init__(self, code: int, detail: str | None = None) -> None:
        message = os.strerror(code)
        if detail:
            message = f"{message}: {detail}"
        super().__init__(code, message)

    @property
    def name(self) -> str:
        return _errno.errorcode.get(self.errno or 0, str(self.errno))


ENOATTR = _errno.ENODATA  # Linux spells "no such attribute" ENODATA.

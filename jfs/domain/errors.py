"""File-system errors: every failure a caller of the metadata engine can see carries an errno."""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

# The builtin OSError subclass Python uses for an errno (FileNotFoundError for ENOENT, ...).
_BUILTIN: dict[int, type[OSError]] = {
    _errno.ENOENT: FileNotFoundError,
    _errno.EEXIST: FileExistsError,
    _errno.ENOTDIR: NotADirectoryError,
    _errno.EISDIR: IsADirectoryError,
    _errno.EACCES: PermissionError,
    _errno.EPERM: PermissionError,
    _errno.EAGAIN: BlockingIOError,
    _errno.EINTR: InterruptedError,
    _errno.ETIMEDOUT: TimeoutError,
}


def _message(code: int, detail: str | None) -> str:
    message = os.strerror(code)
    return f"{message}: {detail}" if detail else message


class FSError(OSError):
    """A POSIX error with an errno, raised by domain rules and the metadata engine.

    `FSError(errno.ENOENT)` formats its message from the errno (an optional detail is appended) and is
    also an instance of the matching builtin subclass (FileNotFoundError here), like OSError itself.
    """

    _variants: dict[int, type[FSError]] = {}

    def __new__(cls, code: int, detail: str | None = None, *args: Any) -> FSError:
        target = cls
        if cls is FSError and code in _BUILTIN:
            target = cls._variants.get(code) or cls._variant(code)
        return OSError.__new__(target, code, _message(code, detail))  # type: ignore[return-value]

    @classmethod
    def _variant(cls, code: int) -> type[FSError]:
        variant = type("FSError", (FSError, _BUILTIN[code]), {"__module__": __name__})
        cls._variants[code] = variant
        return variant

    def __init__(self, code: int, detail: str | None = None, *args: Any) -> None:
        pass  # OSError.__new__ already stored errno and strerror

    def __reduce__(self) -> tuple[Any, ...]:
        return (FSError, (self.errno, None))

    @property
    def name(self) -> str:
        return _errno.errorcode.get(self.errno or 0, str(self.errno))


ENOATTR = _errno.ENODATA  # Linux spells "no such attribute" ENODATA.

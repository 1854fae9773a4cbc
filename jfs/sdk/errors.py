"""How the SDK reports file-system errors: the built-in `OSError` subclass of the errno, with the path(s)."""

from __future__ import annotations

import errno
import os

from jfs.domain.errors import FSError


def os_error(exc: FSError, path: str | bytes | os.PathLike[str] | None,
             path2: str | bytes | os.PathLike[str] | None = None) -> OSError:
    """The built-in OSError subclass for `exc` (chosen by its errno: FileNotFoundError, PermissionError, …),
    naming `path` (and `path2`, for two-path calls) as `str`."""
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno or errno.EIO),
                   None if path is None else os.fsdecode(os.fspath(path)), None,
                   None if path2 is None else os.fsdecode(os.fspath(path2)))

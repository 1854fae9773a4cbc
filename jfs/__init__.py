"""jfs: a distributed POSIX file system (metadata in a transactional KV engine, data in object storage).

``jfs.Client`` / ``jfs.AsyncClient`` open a volume in-process (see `jfs.sdk`); imported on first use so that
the command line does not pay for them.
"""

from typing import Any

__all__ = ["AsyncClient", "Client", "RawFile"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import jfs.sdk

        return getattr(jfs.sdk, name)
    raise AttributeError(f"module 'jfs' has no attribute {name!r}")

"""The jfs Python SDK: a volume in-process, without FUSE or root.

- `Client` — synchronous, thread-safe, `os`/`shutil`/`open()`-like (``jfs.Client``).
- `AsyncClient` — the same names as coroutines (``jfs.AsyncClient``).
- `jfs.sdk.fsspec.JfsFileSystem` — an fsspec filesystem (protocol ``jfs``).
"""

from jfs.sdk.aio import AsyncClient, DirEntry
from jfs.sdk.sync import Client, RawFile

__all__ = ["AsyncClient", "Client", "DirEntry", "RawFile"]

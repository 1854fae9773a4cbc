"""`JfsFileSystem`: a jfs volume as an fsspec filesystem (protocol ``jfs``; ADR 0010 on the name).

    fs = fsspec.filesystem("jfs", meta="redis://10.0.0.5/1")
    pandas.read_parquet("jfs://data/table.parquet", storage_options={"meta": "sqlite3:///srv/jfs.db"})

The META-URL comes from the ``meta`` argument or ``$JFS_META_URL``; other arguments are client options
(`jfs.bootstrap.ClientOptions`). Paths are absolute within the volume (``jfs://a/b`` is ``/a/b``).
Copies are made by slice reference (no data is read or written), ``rm(recursive=True)`` removes a tree on
the server side, files are real `io` objects; with ``autocommit=False`` (fsspec transactions) a written
file appears under its name only when the transaction commits.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import secrets
import stat as stat_mod
from typing import Any

from fsspec.spec import AbstractFileSystem

from jfs.sdk.sync import Client

COPY_CHUNK = 4 << 20


class JfsFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """fsspec on one `jfs.Client` (instances are cached by fsspec per arguments)."""

    protocol = ("jfs",)
    root_marker = "/"
    sep = "/"

    def __init__(self, meta: str | None = None, auto_mkdir: bool = True, **options: Any) -> None:
        fs_options = {k: options.pop(k) for k in ("use_listings_cache", "listings_expiry_time", "max_paths",
                                                   "skip_instance_cache", "asynchronous", "loop") if k in options}
        super().__init__(**fs_options)
        url = meta or os.environ.get("JFS_META_URL")
        if not url:
            raise ValueError("no META-URL: pass meta='redis://…' (storage_options) or set JFS_META_URL")
        self.meta_url = url
        self.auto_mkdir = auto_mkdir
        """Writing a file creates its missing parent directories (as object stores behave)."""
        self.client = Client(url, **options)

    def _parents(self, path: str) -> None:
        parent = path.rsplit("/", 1)[0]
        if self.auto_mkdir and parent and not self.client.isdir(parent):
            self.client.makedirs(parent, exist_ok=True)

    # ------------------------------------------------------------------ paths

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        p = os.fspath(path)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        for proto in cls.protocol:
            if p.startswith(proto + "://"):
                p = p[len(proto) + 3:]
                break
        p = "/" + p.lstrip("/")
        return p.rstrip("/") or "/"

    def unstrip_protocol(self, name: str) -> str:
        return "jfs://" + name.lstrip("/")

    # ------------------------------------------------------------------ metadata

    def _info_of(self, path: str, st: os.stat_result, *, link: bool = False) -> dict[str, Any]:
        typ = "directory" if stat_mod.S_ISDIR(st.st_mode) else "file" if stat_mod.S_ISREG(st.st_mode) else "other"
        info = {
            "name": path, "size": st.st_size if typ == "file" else 0, "type": typ, "mode": st.st_mode,
            "uid": st.st_uid, "gid": st.st_gid, "ino": st.st_ino, "nlink": st.st_nlink,
            "mtime": st.st_mtime, "created": st.st_ctime, "islink": link,
        }
        if link:
            info["destination"] = self.client.readlink(path)
        return info

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        lst = self.client.lstat(path)
        if stat_mod.S_ISLNK(lst.st_mode):
            try:
                return self._info_of(path, self.client.stat(path), link=True)
            except FileNotFoundError:  # a dangling link is a (zero-size) file
                return self._info_of(path, lst, link=True) | {"type": "file", "size": 0}
        return self._info_of(path, lst)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        st = self.client.stat(path)
        if not stat_mod.S_ISDIR(st.st_mode):
            entries = [self.info(path)]
        else:
            entries = []
            base = path.rstrip("/")
            for e in self.client.scandir(path):
                child = f"{base}/{e.name}"
                if e.is_symlink():
                    entries.append(self.info(child))
                else:
                    entries.append(self._info_of(child, e.stat()))
        return entries if detail else [e["name"] for e in entries]

    def exists(self, path: str, **kwargs: Any) -> bool:
        return bool(self.client.exists(self._strip_protocol(path)))

    def isdir(self, path: str) -> bool:
        return bool(self.client.isdir(self._strip_protocol(path)))

    def isfile(self, path: str) -> bool:
        return bool(self.client.isfile(self._strip_protocol(path)))

    def modified(self, path: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.client.stat(self._strip_protocol(path)).st_mtime, tz=dt.UTC)

    def created(self, path: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.client.stat(self._strip_protocol(path)).st_ctime, tz=dt.UTC)

    def checksum(self, path: str) -> int:
        st = self.client.stat(self._strip_protocol(path))
        return hash((st.st_ino, st.st_size, st.st_mtime_ns))

    # ------------------------------------------------------------------ changes

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if create_parents:
            self.makedirs(path, exist_ok=True)
        else:
            self.client.mkdir(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.client.makedirs(self._strip_protocol(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        self.client.rmdir(self._strip_protocol(path))

    def rm_file(self, path: str) -> None:
        self.client.remove(self._strip_protocol(path))

    def _rm(self, path: str) -> None:
        path = self._strip_protocol(path)
        if self.client.isdir(path) and not self.client.islink(path):
            self.client.rmdir(path)
        else:
            self.client.remove(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        paths = path if isinstance(path, list) else [path]
        for p in paths:
            p = self._strip_protocol(p)
            if recursive and maxdepth is None and self.client.isdir(p) and not self.client.islink(p):
                if p == "/":
                    for name in self.client.listdir("/"):
                        self.client.rmtree(f"/{name}")
                else:
                    self.client.rmtree(p)  # server side, as `jfs rmr`
                continue
            if not recursive and self.client.isdir(p) and not self.client.islink(p):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), p)
            if recursive:
                super().rm(p, recursive=True, maxdepth=maxdepth)
            else:
                self._rm(p)

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.client.isdir(dst) and not self.client.isdir(src):
            dst = f"{dst.rstrip('/')}/{src.rsplit('/', 1)[-1]}"
        self.client.rename(src, dst)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy by slice reference (no data moves); a directory source makes a directory."""
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.client.isdir(src):
            self.makedirs(dst, exist_ok=True)
            return
        self._parents(dst)
        self.client.copy_file(src, dst)

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if truncate or not self.client.exists(path):
            self._parents(path)
            self.client.write_bytes(path, b"")
        else:
            self.client.utime(path)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        self._parents(path)
        with self.client.open(path, "xb" if mode == "create" else "wb") as f:
            f.write(value)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        if start is None and end is None:
            return self.client.read_bytes(path)  # open + read + close in one hand-off
        with self.client.open(path, "rb", buffering=0) as f:
            size = None
            if start is not None and start < 0 or end is not None and end < 0:
                size = self.client.getsize(path)
            first = 0 if start is None else start if start >= 0 else max(0, size + start)  # type: ignore[operator]
            last = None if end is None else end if end >= 0 else size + end  # type: ignore[operator]
            if first:
                f.seek(first)
            if last is None:
                return bytes(f.readall())
            return bytes(f.read(max(0, last - first)))

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        rpath = self._strip_protocol(rpath)
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        self._parents(rpath)
        with open(lpath, "rb") as src, self.client.open(rpath, "wb") as dst:
            while chunk := src.read(COPY_CHUNK):
                dst.write(chunk)
                if callback is not None:
                    callback.relative_update(len(chunk))

    def get_file(self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None, **kwargs: Any) -> None:
        rpath = self._strip_protocol(rpath)
        if self.client.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        if outfile is None and os.path.dirname(lpath):
            os.makedirs(os.path.dirname(lpath), exist_ok=True)
        with self.client.open(rpath, "rb") as src:
            dst = outfile or open(lpath, "wb")
            try:
                while chunk := src.read(COPY_CHUNK):
                    dst.write(chunk)
                    if callback is not None:
                        callback.relative_update(len(chunk))
            finally:
                if outfile is None:
                    dst.close()

    # ------------------------------------------------------------------ files

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:
        path = self._strip_protocol(path)
        if "r" not in mode:
            self._parents(path)
        if "r" in mode or autocommit:
            return self.client.open(path, mode)
        return _Staged(self, path, mode)


class _Staged:
    """A file written under a temporary name in its target directory and renamed into place on `commit`
    (fsspec transactions), or removed on `discard`."""

    def __init__(self, fs: JfsFileSystem, path: str, mode: str) -> None:
        parent, _, name = path.rpartition("/")
        self.fs = fs
        self.path = path
        self.temp = f"{parent}/.{name}.jfs-staged-{secrets.token_hex(6)}"
        self.f = fs.client.open(self.temp, mode.replace("a", "w").replace("x", "w"))
        self.autocommit = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def __enter__(self) -> _Staged:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.f.close()

    def commit(self) -> None:
        self.f.close()
        self.fs.client.rename(self.temp, self.path)

    def discard(self) -> None:
        self.f.close()
        try:
            self.fs.client.remove(self.temp)
        except FileNotFoundError:
            pass

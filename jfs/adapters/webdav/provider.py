"""`JfsProvider`: WsgiDAV resources on a jfs volume, through the synchronous SDK (`jfs.Client`).

Translation only — every operation is one or a few SDK calls:

* PROPFIND reads a directory with its attributes in one listing (`scandir`); live properties come from
  the inode (size, mtime, ctime as creationdate, an ETag of inode/mtime/size).
* Dead properties (PROPPATCH) are extended attributes ``user.dav.{namespace}name`` holding the
  property's XML, so they live and die with the file and follow it through MOVE and hard links.
* GET streams the file in `BLOCK` reads (Range is WsgiDAV's, by seek); PUT streams the body into an open
  file, never holding it whole.
* COPY copies file data by slice reference (`Client.copy_file`: no block is read or written); MOVE is one
  rename; DELETE of a collection is the server-side tree removal of `jfs rmr`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import io
import mimetypes
import os
import stat as stat_mod
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_INTERNAL_ERROR,
    HTTP_NOT_FOUND,
    HTTP_SERVICE_UNAVAILABLE,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider, _DAVResource
from wsgidav.xml_tools import etree

from jfs.adapters.webdav.locks import VolumeLockStorage
from jfs.adapters.webdav.middleware import DirectBody
from jfs.app.virtual_files import TRASH_NAME, VIRTUAL_FILES
from jfs.ports.kv import KVError
from jfs.sdk import Client

DEAD_PREFIX = "user.dav."
"""Dead property ``{ns}name`` is the xattr ``user.dav.{ns}name``."""
MAX_XATTR_NAME = 255
_HIDDEN_AT_ROOT = frozenset(os.fsdecode(n) for n in (*VIRTUAL_FILES, b".control", TRASH_NAME))
"""The mount's virtual files and the trash are not served."""

_STATUS = {
    errno.ENOENT: HTTP_NOT_FOUND,
    errno.ENOTDIR: HTTP_CONFLICT,
    errno.EISDIR: HTTP_CONFLICT,
    errno.ENOTEMPTY: HTTP_CONFLICT,
    errno.EEXIST: HTTP_CONFLICT,
    errno.EACCES: HTTP_FORBIDDEN,
    errno.EPERM: HTTP_FORBIDDEN,
    errno.EROFS: HTTP_FORBIDDEN,
    errno.ENOSPC: HTTP_INSUFFICIENT_STORAGE,
    errno.EDQUOT: HTTP_INSUFFICIENT_STORAGE,
    errno.E2BIG: HTTP_INSUFFICIENT_STORAGE,
    errno.ENAMETOOLONG: HTTP_BAD_REQUEST,
    errno.EINVAL: HTTP_BAD_REQUEST,
    # The volume's engine or object store failed underneath (the SDK reports both as EIO): the client may
    # retry later, nothing about its request was wrong.
    errno.EIO: HTTP_SERVICE_UNAVAILABLE,
}


_MISSING = frozenset((errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG))
"""Lookup errors that mean "no such resource" (404), not a failure."""

_SEEN = "jfs.webdav.seen"
"""environ key: the resources a request has looked up so far, by path (WsgiDAV asks for the same path
two or three times per request; each miss is an engine read)."""


def dav_error(exc: OSError) -> DAVError:
    """The HTTP status for a failed file-system call (500 for what the client cannot have caused)."""
    return DAVError(_STATUS.get(exc.errno or 0, HTTP_INTERNAL_ERROR), exc.strerror or str(exc))


@contextmanager
def translated() -> Iterator[None]:
    """File-system errors as their HTTP status; the metadata engine out of reach as 503."""
    try:
        yield
    except OSError as exc:
        raise dav_error(exc) from None
    except KVError as exc:
        raise DAVError(HTTP_SERVICE_UNAVAILABLE, f"metadata engine: {exc}") from None


def _dead(xattrs: list[str]) -> list[str]:
    return [x[len(DEAD_PREFIX):] for x in xattrs if x.startswith(DEAD_PREFIX)]


def _is_dead(name: str) -> bool:
    return not name.startswith("{DAV:}") and not name.startswith("{urn:schemas-microsoft-com:}")


@functools.lru_cache(maxsize=1024)
def mime_type(ext: str) -> str:
    """The Content-Type of a file name's extension (lower case, with its dot)."""
    return mimetypes.types_map.get(ext) or util.guess_mime_type("x" + ext) or "application/octet-stream"


class _Node:
    """What files and directories share: their path in the volume and the attributes read with them."""

    provider: JfsProvider
    path: str
    name: str
    environ: dict[str, Any]
    is_collection: bool

    def _init_node(self, provider: JfsProvider, st: os.stat_result) -> None:
        self.fs = provider.client
        self.st = st
        self.fs_path = provider.fs_path(self.path)
        self.dead_names: list[str] | None = None
        """Names of the dead properties, when read with the parent's listing (`get_member_list`)."""

    # ---- live properties

    def get_creation_date(self) -> float:
        return self.st.st_ctime

    def get_last_modified(self) -> float:
        return self.st.st_mtime

    def get_display_name(self) -> str:
        return self.name

    def get_etag(self) -> str:
        return f"{self.st.st_ino:x}-{self.st.st_mtime_ns:x}-{self.st.st_size:x}"

    def support_etag(self) -> bool:
        return True

    # ---- dead properties: extended attributes

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names: list[str] = _DAVResource.get_property_names(self, is_allprop=is_allprop)  # type: ignore[arg-type]
        if self.provider.dead_props:
            if self.dead_names is None:
                with translated():
                    self.dead_names = _dead(self.fs.listxattr(self.fs_path))
            names += self.dead_names
        return names

    def get_property_value(self, name: str) -> Any:
        if not _is_dead(name) or not self.provider.dead_props:
            return _DAVResource.get_property_value(self, name)  # type: ignore[arg-type]
        try:
            value = self.fs.getxattr(self.fs_path, DEAD_PREFIX + name)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOENT, errno.ENOTSUP):
                raise DAVError(HTTP_NOT_FOUND) from None
            raise dav_error(exc) from None
        return etree.fromstring(value)

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        if not _is_dead(name) or not self.provider.dead_props:
            return _DAVResource.set_property_value(self, name, value, dry_run=dry_run)  # type: ignore[arg-type]
        key = DEAD_PREFIX + name
        if len(key.encode()) > MAX_XATTR_NAME:
            raise DAVError(HTTP_FORBIDDEN, "property name too long")
        if dry_run:
            return None
        with translated():
            if value is None:
                try:
                    self.fs.removexattr(self.fs_path, key)
                except OSError as exc:
                    if exc.errno != errno.ENODATA:
                        raise
            else:
                self.fs.setxattr(self.fs_path, key, etree.tostring(value))
        return None

    def remove_all_properties(self, *, recursive: bool) -> None:
        """Dead properties are xattrs of the inode: they go with it."""

    def _copy_dead_props(self, dest_fs_path: str) -> None:
        if not self.provider.dead_props:
            return
        for key in self.fs.listxattr(self.fs_path):
            if key.startswith(DEAD_PREFIX):
                self.fs.setxattr(dest_fs_path, key, self.fs.getxattr(self.fs_path, key))

    # ---- MOVE / DELETE helpers

    def _changing(self) -> None:
        """Forget the resources this request has looked up: the tree is about to change."""
        self.environ.pop(_SEEN, None)

    def _forget_locks(self, recursive: bool) -> None:
        lm = self.provider.lock_manager
        if lm is not None:
            lm.remove_all_locks_from_url(self.get_ref_url(), recursive=recursive)  # type: ignore[attr-defined]

    def support_recursive_move(self, dest_path: str) -> bool:
        """A file or a whole tree moves with one rename (`move_recursive`)."""
        return True

    def move_recursive(self, dest_path: str) -> list[Any]:
        self._rename_to(dest_path)
        return []

    def _rename_to(self, dest_path: str) -> None:
        """MOVE as one rename; a destination in the way (Overwrite: T, checked by WsgiDAV) is replaced:
        a file by rename itself, a directory or a file of the other kind removed first."""
        self._changing()
        dest = self.provider.fs_path(dest_path)
        with translated():
            self._clear(dest, files_too=self.is_collection)
            self.fs.rename(self.fs_path, dest)
        self._forget_locks(recursive=True)

    def _clear(self, dest: str, *, files_too: bool) -> None:
        """Remove what is at `dest`: a directory tree (server side), and a file only with `files_too`."""
        try:
            st = self.fs.lstat(dest)
        except FileNotFoundError:
            return
        if stat_mod.S_ISDIR(st.st_mode):
            self.fs.rmtree(dest)
        elif files_too:
            self.fs.remove(dest)


def content_length(environ: dict[str, Any]) -> int | None:
    """The request's Content-Length, or None when absent or not a plain decimal number."""
    length = environ.get("CONTENT_LENGTH") or ""
    return int(length) if length.isdigit() else None


def _new_file_stat() -> os.stat_result:
    now = time.time()
    return os.stat_result((stat_mod.S_IFREG | 0o644, 0, 0, 1, os.getuid(), os.getgid(), 0, now, now, now))


class _CheckedBody:
    """A PUT body that must be exactly as long as its Content-Length (`expected`; None: any length). The WSGI
    server reports a client that hung up mid-body as the end of the body: `close` fails with EIO when the
    length is off instead of committing a short file; `_finish` commits a whole body."""

    def __init__(self, expected: int | None) -> None:
        self._expected = expected
        self._got = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._got += len(data)
        return self._take(data)

    def writelines(self, chunks: Iterator[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._expected is not None and self._got != self._expected:
            raise OSError(errno.EIO, f"request body ended after {self._got} of {self._expected} bytes")
        self._finish()

    def _take(self, data: bytes) -> int:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError


class _SmallBody(_CheckedBody):
    """A PUT body of at most one block: kept until complete, then stored with one trip (`store`)."""

    def __init__(self, res: FileResource, expected: int) -> None:
        super().__init__(expected)
        self._res = res
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        assert self._expected is not None
        if self._got + len(data) > self._expected:
            raise OSError(errno.EIO, "request body longer than its Content-Length")
        return super().write(data)

    def _take(self, data: bytes) -> int:
        self._buf += data
        return len(data)

    def _finish(self) -> None:
        self._res.store(bytes(self._buf))


class _BodyWriter(_CheckedBody):
    """The file a PUT body streams into (bodies larger than one block, or of unknown length): an SDK
    `AsyncFile`, one trip to the client's loop per piece. A body of known length is received here in
    pieces of the volume's block size (`piece`), each into a fresh buffer handed to the data path as it
    is: a piece is one block's bytes, never copied between the socket and the object store's write but
    for the one join of a block. `_finish` closes the file (commits it, as close() on a mount)."""

    def __init__(self, client: Client, afile: Any, expected: int | None, body: DirectBody | None,
                 piece: int) -> None:
        super().__init__(expected)
        self._client = client
        self._f = afile
        self._body = body
        self._piece = piece

    def writelines(self, chunks: Iterator[bytes]) -> None:
        body = self._body
        if body is not None:
            while piece := body.read(self._piece):
                self._got += len(piece)
                self._client.run(self._f.write(piece, owned=True))  # a fresh buffer no one else holds
        for chunk in chunks:  # what is left (nothing, for a body read above: WsgiDAV sees its end)
            self.write(chunk)

    def _take(self, data: bytes) -> int:
        n: int = self._client.run(self._f.write(data))
        return n

    def _finish(self) -> None:
        self._client.run(self._f.close())


class _Content:
    """A file's content as WsgiDAV's GET reads it (`seek` once for a range, then `read` of its chunk size):
    each read is one trip to the client's loop returning the data path's bytes as they are, without a
    buffered reader copying them on the way."""

    def __init__(self, client: Client, afile: Any) -> None:
        self._client = client
        self._f = afile

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or pos < 0:
            raise ValueError("only absolute positions")
        self._f.pos = pos  # no I/O: the next read starts there
        return pos

    def read(self, size: int = -1) -> bytes:
        with translated():
            data: bytes = self._client.run(self._f.read(size))
        return data

    def close(self) -> None:
        if not self._f.closed:
            with translated():
                self._client.run(self._f.close())


class FileResource(_Node, DAVNonCollection):
    """A regular file (or a symlink to one)."""

    def __init__(self, provider: JfsProvider, path: str, environ: dict[str, Any], st: os.stat_result) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self._init_node(provider, st)
        self._writer: Any = None
        self.created = False
        """This request created the file (a failed PUT removes it)."""
        self.pending = False
        """A PUT's new file that exists only once its body has arrived (`store`)."""
        self._fresh = False
        self.prefetched: bytes | None = None
        """The whole content, read with the attributes by a GET's lookup (`JfsProvider.prefetch`)."""

    def get_content_length(self) -> int:
        return self.st.st_size

    def get_content_type(self) -> str:
        return mime_type(os.path.splitext(self.name)[1].lower())

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> Any:
        """A file of at most one block is read in one trip to the client's loop (open, read, close);
        a bigger one streams through a buffered reader."""
        data, self.prefetched = self.prefetched, None
        if data is not None:
            return io.BytesIO(data)
        with translated():
            if self.st.st_size <= self.provider.block_size:
                return io.BytesIO(self.fs.run(self.fs.aio.read_bytes(self.fs_path)))
            return _Content(self.fs, self.fs.run(self.fs.aio.open(self.fs_path, "rb")))

    def begin_write(self, *, content_type: str | None = None) -> Any:
        expected = content_length(self.environ)
        if expected is not None and expected <= self.provider.block_size:
            return _SmallBody(self, expected)
        if self._writer is None:
            with translated():
                self._writer = self.fs.run(self.fs.aio.open(self.fs_path, "wb"))
            self.pending = False
        body = self.environ.get("wsgi.input")
        return _BodyWriter(self.fs, self._writer, expected, body if isinstance(body, DirectBody) else None,
                           self.provider.volume_block)

    def store(self, data: bytes) -> None:
        """Create or replace the file with `data` and read its attributes: one trip to the client's loop."""
        aio = self.fs.aio

        async def put() -> os.stat_result:
            f = await aio.open(self.fs_path, "wb")
            try:
                await f.write(data)
            finally:
                await f.close()
            return await aio.stat(self.fs_path)

        self.pending = False  # from here on a failure may have created the file: end_write removes it
        with translated():
            self.st = self.fs.run(put())
        self._fresh = True

    def end_write(self, *, with_errors: bool) -> None:
        """After a failed PUT a file this PUT created is removed (nothing half-written stays behind)."""
        self._changing()
        writer, self._writer = self._writer, None
        if writer is not None and not writer.closed:
            try:
                self.fs.run(writer.close())
            except (OSError, ValueError):
                with_errors = True
        if self.pending:
            return  # nothing was created
        if with_errors and self.created:
            try:
                self.fs.remove(self.fs_path)
            except OSError:
                pass
        if not self._fresh:
            with translated():
                self.st = self.fs.stat(self.fs_path)

    def delete(self) -> None:
        self._changing()
        with translated():
            self.fs.remove(self.fs_path)
        self._forget_locks(recursive=False)

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        if is_move:
            self._rename_to(dest_path)
            return
        self._changing()
        dest = self.provider.fs_path(dest_path)
        with translated():
            self.fs.copy_file(self.fs_path, dest)
            self._copy_dead_props(dest)

    def handle_move(self, dest_path: str) -> bool:
        """Replacing an existing file is one atomic rename (WsgiDAV would delete it first)."""
        if self.provider.exists_path(dest_path):
            self._rename_to(dest_path)
            return True
        return False


class DirResource(_Node, DAVCollection):
    """A directory."""

    def __init__(self, provider: JfsProvider, path: str, environ: dict[str, Any], st: os.stat_result) -> None:
        DAVCollection.__init__(self, path, environ)
        self._init_node(provider, st)

    def get_etag(self) -> str:
        return f"{self.st.st_ino:x}-{self.st.st_mtime_ns:x}"

    def _child(self, name: str) -> str:
        return util.join_uri(self.path, name)

    def get_member_names(self) -> list[str]:
        with translated():
            names = self.fs.listdir(self.fs_path)
        return [n for n in names if self.provider.visible(self.path, n)]

    def get_member_list(self) -> list[_DAVResource]:
        """One listing with attributes (no per-entry lookups)."""
        with translated():
            entries = self.fs.scandir(self.fs_path)
        members: list[_DAVResource] = []
        for e in entries:
            if not self.provider.visible(self.path, e.name):
                continue
            st = e.stat()
            if stat_mod.S_ISLNK(st.st_mode):
                child = self.provider.get_resource_inst(self._child(e.name), self.environ)
                if child is not None:
                    members.append(child)
                continue
            members.append(self.provider.make(self._child(e.name), self.environ, st))
        if self.provider.dead_props and members and self.environ.get("REQUEST_METHOD") == "PROPFIND":
            self._read_dead_names(members)
        return members

    def _read_dead_names(self, members: list[_DAVResource]) -> None:
        """The dead-property names of every member, read concurrently in one trip to the client's loop
        (an allprop PROPFIND of 10,000 entries would otherwise make 10,000 sequential trips)."""
        aio = self.fs.aio

        async def names(path: str) -> list[str] | None:
            try:
                return _dead(await aio.listxattr(path))
            except OSError:
                return None

        async def all_names() -> list[list[str] | None]:
            sem = asyncio.Semaphore(64)

            async def one(path: str) -> list[str] | None:
                async with sem:
                    return await names(path)

            return list(await asyncio.gather(*(one(m.fs_path) for m in members)))  # type: ignore[attr-defined]

        for member, found in zip(members, self.fs.run(all_names()), strict=True):
            member.dead_names = found  # type: ignore[attr-defined]

    def get_member(self, name: str) -> _DAVResource | None:
        return self.provider.get_resource_inst(self._child(name), self.environ)

    def create_empty_resource(self, name: str) -> FileResource:
        self._changing()
        path = self._child(name)
        fs_path = self.provider.fs_path(path)
        if self.environ.get("REQUEST_METHOD") == "PUT" and content_length(self.environ) is not None:
            # Created with its body (`FileResource.store` or the first open of `begin_write`): a PUT
            # refused before its body is read leaves nothing behind.
            res = FileResource(self.provider, path, self.environ, _new_file_stat())
            res.created = res.pending = True
            return res
        aio = self.fs.aio
        with translated():
            f = self.fs.run(aio.open(fs_path, "xb"))
            try:
                st = self.fs.stat(fs_path)
            except BaseException:
                self.fs.run(f.close())
                raise
        res = FileResource(self.provider, path, self.environ, st)
        res.created = True
        if self.environ.get("REQUEST_METHOD") == "PUT":
            res._writer = f  # the PUT's body goes into this open file: no second open
        else:
            with translated():
                self.fs.run(f.close())
        return res

    def create_collection(self, name: str) -> None:
        self._changing()
        with translated():
            self.fs.mkdir(self.provider.fs_path(self._child(name)))

    def support_recursive_delete(self) -> bool:
        return True

    def _check_tree_unlocked(self) -> None:
        """DAVError (423 Locked) unless the request's lock tokens cover every lock at or below this tree."""
        lm = self.provider.lock_manager
        if lm is not None:
            lm.check_write_permission(  # type: ignore[attr-defined]
                url=self.get_ref_url(), depth="infinity",
                token_list=self.environ.get("wsgidav.ifLockTokenList", []),
                principal=self.environ.get("wsgidav.user_name"),
            )

    def handle_delete(self) -> bool:
        """DELETE of a tree without listing it first: no lock below it may stand in the way, then the
        server-side removal of `jfs rmr`."""
        self._check_tree_unlocked()
        self.delete()
        return True

    def delete(self) -> list[Any]:
        if self.path.strip("/") == "":
            raise DAVError(HTTP_FORBIDDEN, "the root cannot be deleted")
        self._changing()
        with translated():
            self.fs.rmtree(self.fs_path)
        self._forget_locks(recursive=True)
        return []

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        self._changing()
        dest = self.provider.fs_path(dest_path)
        with translated():
            try:
                self.fs.mkdir(dest, stat_mod.S_IMODE(self.st.st_mode))
            except FileExistsError:
                pass
            self._copy_dead_props(dest)

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        """COPY with Depth 0 copies the collection alone (WsgiDAV would copy its members too); Depth
        infinity is WsgiDAV's walk, calling `copy_move_single` for each member."""
        if depth_infinity:
            return False
        self._changing()
        dest = self.provider.fs_path(dest_path)
        with translated():
            self._clear(dest, files_too=True)
        self.copy_move_single(dest_path, is_move=False)
        return True

    def handle_move(self, dest_path: str) -> bool:
        """A directory moves with one rename, without listing its tree first."""
        if self.path.strip("/") == "":
            raise DAVError(HTTP_FORBIDDEN, "the root cannot be moved")
        self._check_tree_unlocked()
        self._rename_to(dest_path)
        return True


class JfsProvider(DAVProvider):
    """The resources of one volume (or of its served subdirectory, the client's root)."""

    def __init__(self, client: Client, *, read_only: bool = False, dead_props: bool = True,
                 block_size: int = 1 << 20, serves_volume_root: bool = True,
                 lock_table: VolumeLockStorage | None = None) -> None:
        super().__init__()
        self.client = client
        self.lock_table = lock_table
        """The volume's lock table, when it is the lock storage: a PUT's first lookup reads its snapshot."""
        self.read_only = read_only
        self.dead_props = dead_props
        self.block_size = block_size
        self.volume_block = client.aio.client.meta.settings.block_bytes
        """The volume's block size: PUT bodies are received in pieces of this size (one block each)."""
        self.serves_volume_root = serves_volume_root

    def __repr__(self) -> str:
        return f"JfsProvider({self.client.name!r})"

    def is_readonly(self) -> bool:
        return self.read_only

    def visible(self, parent: str, name: str) -> bool:
        """Whether `name` in the collection `parent` is served (not the mount's virtual files)."""
        return not (self.serves_volume_root and parent.strip("/") == "" and name in _HIDDEN_AT_ROOT)

    def fs_path(self, path: str) -> str:
        """The SDK path of a URL path; HTTP 400 for a name that cannot be one (``..``, ``.``, NUL)."""
        parts = [p for p in path.split("/") if p]
        for p in parts:
            if p in (".", "..") or "\0" in p:
                raise DAVError(HTTP_BAD_REQUEST, "invalid path")
        return "/" + "/".join(parts)

    def exists_path(self, path: str) -> bool:
        try:
            self.client.lstat(self.fs_path(path))
        except OSError:
            return False
        return True

    def make(self, path: str, environ: dict[str, Any], st: os.stat_result) -> _DAVResource:
        if stat_mod.S_ISDIR(st.st_mode):
            return DirResource(self, path, environ, st)
        return FileResource(self, path, environ, st)

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        seen: dict[str, _DAVResource | None] = environ.setdefault(_SEEN, {})
        if path in seen:
            return seen[path]
        if not seen and environ.get("REQUEST_METHOD") in ("GET", "PUT"):
            return self._prefetch(path, environ, seen)
        res = seen[path] = self._lookup(path, environ)
        return res

    def _prefetch(self, path: str, environ: dict[str, Any],
                  seen: dict[str, _DAVResource | None]) -> _DAVResource | None:
        """A GET's or PUT's first lookup (its target), with what the request reads next, in one trip to
        the client's loop: for a GET, the content of a file of at most one block; for a PUT, the parent
        collection and the lock table's snapshot. Each trip costs two thread switches, more than the
        reads themselves on a small file."""
        aio = self.client.aio
        block = self.block_size
        fs_path = self.fs_path(path)
        parent = util.get_uri_parent(path.rstrip("/") or "/") if environ["REQUEST_METHOD"] == "PUT" else None
        locks = self.lock_table if parent is not None and self.lock_table is not None else None
        if locks is not None and not locks.wants_snapshot():
            locks = None

        async def stat(p: str) -> os.stat_result | None:
            try:
                return await aio.stat(p)
            except OSError as exc:
                if exc.errno in _MISSING:
                    return None
                raise

        async def stat_and_read(p: str) -> tuple[os.stat_result | None, bytes | None]:
            """A GET's target and, for a file of at most a block, its content (one path walk, whose engine
            read the open reuses); content None when it could not be read: `get_content` tries again and
            reports."""
            try:
                return await aio.stat_and_read(p, block)
            except OSError as exc:
                if exc.errno in _MISSING:
                    return None, None
                raise

        async def run() -> tuple[os.stat_result | None, bytes | None, os.stat_result | None, Any]:
            st, data = None, None
            if not self.may_serve(fs_path):
                pass
            elif parent is None:
                st, data = await stat_and_read(fs_path)
            else:
                st = await stat(fs_path)
            pst = await stat(self.fs_path(parent)) if parent and self.may_serve(self.fs_path(parent)) else None
            snapshot = await locks.read_snapshot() if locks is not None else None
            return st, data, pst, snapshot

        with translated():
            st, data, pst, snapshot = self.client.run(run())
        if locks is not None:
            locks.prime(snapshot)
        if parent is not None and parent != path:
            seen[parent] = self._resource(parent, environ, pst)
        res = seen[path] = self._resource(path, environ, st)
        if data is not None and isinstance(res, FileResource) and len(data) == res.st.st_size:
            res.prefetched = data
        return res

    def may_serve(self, fs_path: str) -> bool:
        """Whether `fs_path` (an SDK path) is served: not one of the mount's virtual files at the volume root."""
        parts = fs_path.strip("/").split("/")
        return not (len(parts) == 1 and not self.visible("/", parts[0]))

    def _resource(self, path: str, environ: dict[str, Any], st: os.stat_result | None) -> _DAVResource | None:
        if st is None or not (stat_mod.S_ISDIR(st.st_mode) or stat_mod.S_ISREG(st.st_mode)):
            return None  # devices, FIFOs, sockets: nothing WebDAV can serve
        return self.make(path, environ, st)

    def _lookup(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        fs_path = self.fs_path(path)
        if not self.may_serve(fs_path):
            return None
        with translated():
            try:
                st = self.client.stat(fs_path)
            except OSError as exc:
                if exc.errno in _MISSING:
                    return None
                raise
        return self._resource(path, environ, st)

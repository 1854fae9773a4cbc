"""The file-system API every face uses (FUSE, SDK, gateways): inode- and path-based operations with
open-file handles, virtual files, lock owners, the access log and the consistency rules, written once on
the metadata engine and the data path. Faces translate their protocol onto it and hold no file-system
logic of their own."""

from jfs.app.vfs.core import VFS, Invalidator, OpenFile, VfsConfig
from jfs.app.vfs.paths import PathResolver, split_path

__all__ = ["VFS", "Invalidator", "OpenFile", "PathResolver", "VfsConfig", "split_path"]

"""`jfs fsck`: check that the metadata is self-consistent and that every file's blocks exist.

One streaming scan of the inode key space (``A…``) builds a compact model — per inode its type, nlink,
parent, length and ctime; per inode the directories holding its names; the per-parent counters of hard
links — from which these problems are found:

==================  ===========================================================  ==========================
kind                what                                                         ``--repair``
==================  ===========================================================  ==========================
lost-blocks         a file refers to block objects that are missing, or whose    the unreadable ranges become
                    stored size is wrong (uncompressed volumes)                  holes (read as zeros); the
                                                                                 file keeps its path and size
broken-dentry       a directory entry names an inode that does not exist         entry removed
dead-entries        entries stored under an inode that is missing or not a       entries removed (their
                    directory                                                    inodes become orphans)
stray-records       chunks, xattrs, symlink target or parent counters of an     released like a deleted
                    inode without attributes (and no delfile marker)             file's, then removed
wrong-type          an entry's type differs from its inode's                     entry rewritten
wrong-nlink         nlink differs from the names (files) or 2 + subdirectories   nlink set
                    (directories)
wrong-parent        attribute parent / hard-link parent counters (``A<ino>P``)   parent and counters set
                    disagree with the names
orphan              an inode with attributes but no name, not held open          moved to ``/lost+found`` as
                    (sustained) and not the root or trash root                   ``#<ino>``; a file with
                                                                                 nlink 0 or a trash parent
                                                                                 is deleted instead
multi-linked-dir    a directory with more than one name                          reported only
counters            usedSpace / totalInodes differ from Σ align4k / the number   the difference is added
                    of inodes (root and trash root excluded)
==================  ===========================================================  ==========================

Blocks: the whole-volume check lists ``<volume>/chunks/`` once and counts, per referenced slice, the blocks
present; only slices with a block missing (or of the wrong size) are looked at again (HEAD of each block,
then a scan for the chunks that use them). A block counts as lost for a file only when one of its slice
records covers bytes in it. With ``path`` only the files below that path are checked, by HEAD requests.

Scope: without ``path`` everything is checked. With ``path`` the metadata model is still built from the
whole volume (link counts need every name), but only problems of inodes below ``path`` (``recursive``) or
of ``path`` and its direct entries are reported and repaired; orphans, stray records and counters are
whole-volume notions and are checked only without ``path``.

Live volumes: the scan is not a snapshot. Inodes changed after the scan started (ctime) are not judged;
every repair is one transaction that first re-checks what was found (the inode unchanged, the entry still
dangling, …) and skips it otherwise; counters are compared only when they did not move during the scan
and every file the scan counted is still as it saw it (a delete and a create of the same size leave the
counters where they were), and repaired by adding the difference. Memory: about 350 bytes per inode
(measured) plus 10 per distinct slice.

Modules: `run` (the entry, `run_fsck`, on an engine and object store its caller opened and closes),
`scan` (the one scan of ``A…``), `model` (what it builds), `judge` (pure: the problems of a model; unit-tested on hand-built
models in tests/unit/test_fsck_judge.py), `blocks` (block objects), `confirm` (re-checks against the
engine), `paths` (scope and names), `repairs` (the table of problem → repair), `report` (`Issue`,
`FsckReport`). Helpers shared with gc live beside this package: `jfs.app.ops.slice_set`,
`jfs.app.ops.block_objects`; the engine's reader (`jfs.app.meta.reader`, `jfs.app.meta.chunk_scan`)
resolves paths, walks subtrees and scans chunks. The model's scan and the repairs work on raw records
on purpose: fsck judges the key layout itself (ADR 0004), so it reads and rewrites it key by key.
"""

from __future__ import annotations

from jfs.app.ops.fsck.report import KINDS, FsckReport, Issue
from jfs.app.ops.fsck.run import run_fsck

__all__ = ["KINDS", "FsckReport", "Issue", "run_fsck"]

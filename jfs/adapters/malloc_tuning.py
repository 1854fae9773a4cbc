"""glibc's malloc tuned for block-sized buffers: `keep_block_buffers` keeps freed ones for reuse (`jfs
webdav`, `jfs gateway`); `give_back_free_memory` returns what is free to the OS (the mount's data path,
after its memory cache let go of blocks for writers, ADR 0048)."""

from __future__ import annotations

import ctypes
import ctypes.util

import structlog

log = structlog.get_logger("jfs.malloc")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20
"""Allocations below this come from malloc's arenas (every block size a volume may have: at most 16 MiB)."""
TRIM_THRESHOLD = 64 << 20
"""Free memory an arena keeps at its top before giving it back to the OS."""


def keep_block_buffers() -> bool:
    """Make freed block buffers (a PUT's body pieces, a GET's blocks: 4 MiB each) reusable by the next ones
    instead of going back to the OS. With glibc's defaults most of them end up in fresh pages, and the
    page faults of touching a new 4 MiB buffer cost more CPU than copying into it (about 150,000 minor
    faults per GiB streamed; a few thousand with these thresholds). The price is resident memory: up to
    `TRIM_THRESHOLD` of free memory per malloc arena stays mapped after a burst (ADR 0029).

    Returns whether the C library took the settings (nothing happens on other C libraries)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not ok:
        log.debug("mallopt_refused")
    return ok


_libc: ctypes.CDLL | None = None


def give_back_free_memory() -> bool:
    """Return the free memory of every malloc arena to the OS (``malloc_trim(0)``). Blocks loaded by the
    object-store threads live in those threads' arenas, which the event loop's own allocations (block
    arenas, request buffers) never reuse: once freed they stay resident until trimmed. Takes tens of
    milliseconds for a few hundred MiB (run it off the event loop). False on other C libraries."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(_libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False

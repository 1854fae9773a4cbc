"""Removed after merge: a re-export of `jfs.compose`, the composition root, which moved out of the app layer.

Only `jfs.app.ops.gc` and `jfs.app.ops.fsck` (and `jfs.app.volume.loaded_volume`, which they use) still
import it, until they receive `(meta, store)` instead of a META-URL. Import `jfs.compose` instead.
"""

from __future__ import annotations

from jfs.compose import (
    UUID_OBJECT,
    Volume,
    check_volume_key,
    normalize_bucket,
    open_bucket,
    open_engine,
    open_volume,
    opened_engine,
    with_env_password,
)

__all__ = [
    "UUID_OBJECT", "Volume", "check_volume_key", "normalize_bucket", "open_bucket", "open_engine", "open_volume",
    "opened_engine", "with_env_password",
]

"""How young an unreferenced object may be before gc calls it leaked (a client may still be writing it).

Contract: `skip_age_from_env` returns ``$JFS_GC_SKIPPEDTIME`` (seconds, a number ≥ 0) when set, else the
default; a malformed or negative value raises VolumeError (one line for the user).
"""

from __future__ import annotations

import os

from jfs.app.volume import VolumeError

SKIP_ENV = "JFS_GC_SKIPPEDTIME"
DEFAULT_SKIP_AGE = 3600.0


def skip_age_from_env(default: float = DEFAULT_SKIP_AGE) -> float:
    """The age threshold in seconds: ``$JFS_GC_SKIPPEDTIME`` if set (a number ≥ 0), else `default`."""
    raw = os.environ.get(SKIP_ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise VolumeError(f"{SKIP_ENV} must be a number of seconds, not {raw!r}") from None
    if value < 0:
        raise VolumeError(f"{SKIP_ENV} must not be negative")
    return value

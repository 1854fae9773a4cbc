"""Engine registry: META-URL scheme -> opener, extensible through the ``jfs.kv`` entry-point group.

A third-party package registers an engine by declaring, in its own pyproject.toml::

    [project.entry-points."jfs.kv"]
    myengine = "my_package.module:open_myengine"

where ``open_myengine(url: str) -> Awaitable[KV]``. jfs itself registers its adapters the same way; the
table below is the fallback used when jfs runs from a source tree without installed metadata.
"""

from __future__ import annotations

import importlib

from jfs.adapters.kv.base import redact_url
from jfs.adapters.plugins import registered
from jfs.ports.kv import KV, EngineUnavailable, KVOpener

BUILTIN: dict[str, tuple[str, str | None]] = {
    "memory": ("jfs.adapters.kv.memory:open_memory", None),
    "sqlite3": ("jfs.adapters.kv.sqlite:open_sqlite", None),
    "redis": ("jfs.adapters.kv.redis:open_redis", None),
    "rediss": ("jfs.adapters.kv.redis:open_redis", None),
    "unix": ("jfs.adapters.kv.redis:open_redis", None),
    "tikv": ("jfs.adapters.kv.tikv:open_tikv", "install the TiKV client: pip install 'jfs[tikv]'"),
    "etcd": ("jfs.adapters.kv.etcd:open_etcd", "install the etcd client: pip install 'jfs[etcd]'"),
}


class BadMetaURL(ValueError):
    """The META-URL is malformed or names an unknown engine."""


def _load(target: str) -> KVOpener:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def opener_for(scheme: str) -> KVOpener:
    """The opener registered for `scheme`; raises BadMetaURL for unknown schemes."""
    for ep in registered("jfs.kv"):
        if ep.name == scheme:
            return ep.load()  # type: ignore[no-any-return]
    if scheme in BUILTIN:
        target, hint = BUILTIN[scheme]
        try:
            return _load(target)
        except ImportError as exc:
            raise EngineUnavailable(f"engine '{scheme}' cannot be loaded: {exc}" + (f" ({hint})" if hint else "")) from None
    known = sorted(set(BUILTIN) | {ep.name for ep in registered("jfs.kv")})
    raise BadMetaURL(f"unknown metadata engine '{scheme}' (known: {', '.join(known)})")


async def open_kv(url: str) -> KV:
    """Connect to the engine named by `url` (e.g. ``sqlite3:///var/jfs/meta.db``, ``redis://host:6379/1``)."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise BadMetaURL(f"malformed META-URL '{redact_url(url)}': expected scheme://address")
    return await opener_for(scheme.lower())(url)

"""`purge_volume_uploads`: what `jfs gc` runs for the S3 gateway's unfinished uploads, apart from the
gateway's server module (``jfs gc`` then needs neither aiohttp nor the S3 server: a third of its start).
A volume whose root has no ``.sys`` directory has never been served by a gateway: then nothing is opened
(no second client, no VFS imported; ADR 0063)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jfs.app.objectview.keys import SYS_DIR
from jfs.app.objectview.report import DEFAULT_AGE, PurgeReport

if TYPE_CHECKING:
    from jfs.app.meta import Meta


async def purge_volume_uploads(meta_url: str, age: float = DEFAULT_AGE, *, dry_run: bool = False,
                               meta: Meta | None = None) -> PurgeReport:
    """Purge the stale uploads of the gateway serving the volume's root (one served with ``--subdir``
    keeps its own ``.sys`` there and purges it itself); with `dry_run` only count them. `meta`, the volume's
    engine when the caller has it open, lets a volume without a root ``.sys`` answer at once."""
    from jfs.app.meta import ROOT_CTX
    from jfs.app.meta.reader import lookup_entry
    from jfs.domain.attrs import ROOT_INODE

    if meta is not None and await lookup_entry(meta.kv, ROOT_INODE, SYS_DIR) is None:
        return PurgeReport()
    from jfs.app.objectview.cleanup import purge_stale_uploads
    from jfs.bootstrap import ClientOptions, open_client

    client = await open_client(meta_url, ClientOptions(cache_dir=None, background_jobs=False,
                                                       mountpoint="gc:gateway-uploads"))
    try:
        return await purge_stale_uploads(client.vfs, client.root, age, ctx=ROOT_CTX, dry_run=dry_run)
    finally:
        await client.close()

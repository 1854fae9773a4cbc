"""`purge_volume_uploads`: what `jfs gc` runs for the S3 gateway's unfinished uploads, apart from the
gateway's server module (``jfs gc`` then needs neither aiohttp nor the S3 server: a third of its start)."""

from __future__ import annotations

from jfs.app.objectview import DEFAULT_AGE, PurgeReport, purge_stale_uploads
from jfs.bootstrap import ClientOptions, open_client


async def purge_volume_uploads(meta_url: str, age: float = DEFAULT_AGE, *, dry_run: bool = False) -> PurgeReport:
    """Purge the stale uploads of the gateway serving the volume's root (one served with ``--subdir``
    keeps its own ``.sys`` there and purges it itself); with `dry_run` only count them."""
    from jfs.app.meta import ROOT_CTX

    client = await open_client(meta_url, ClientOptions(cache_dir=None, background_jobs=False,
                                                       mountpoint="gc:gateway-uploads"))
    try:
        return await purge_stale_uploads(client.vfs, client.root, age, ctx=ROOT_CTX, dry_run=dry_run)
    finally:
        await client.close()

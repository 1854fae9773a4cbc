"""The metadata engine: every file-system operation as one transaction on the KV port, and the one owner
of metadata knowledge (ADR 0018).

`Meta` (engine.py) is the entry point; each module holds the rules of one family of operations. Besides
them: typed record access (`store`), quota accounting (`quota`, ADR 0019), the trash and the jobs the
background loop runs on it (`trash`, `trash_purge`, `trash_restore`), and the read-only queries the ops
tools use instead of keys (`reader`, `chunk_scan`).
"""

from jfs.app.meta.context import ROOT_CTX, Ctx
from jfs.app.meta.engine import Meta

__all__ = ["Meta", "Ctx", "ROOT_CTX"]

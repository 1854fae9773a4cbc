"""The metadata engine: every file-system operation as one transaction on the KV port.

`Meta` (engine.py) is the entry point; each module holds the rules of one family of operations.
"""

from jfs.app.meta.context import ROOT_CTX, Ctx
from jfs.app.meta.engine import Meta

__all__ = ["Meta", "Ctx", "ROOT_CTX"]

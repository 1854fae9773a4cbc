"""Pure model and rules of jfs: records, codecs, chunk math, overlay, locks, permissions.

Nothing in this package performs I/O, uses asyncio, or imports another jfs layer.
"""

"""The data path: blocks of file content in object storage (compression, caching, reads and writes)."""

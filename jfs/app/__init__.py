"""The application layer: jfs's use cases on the ports (metadata engine `meta`, data path `data`, VFS `vfs`,
ops tools `ops`, ...). It receives opened ports and imports no adapter (tests/unit/test_layering.py)."""

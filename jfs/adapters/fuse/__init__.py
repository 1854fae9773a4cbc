"""FUSE driving adapter: a pure-asyncio server of the Linux FUSE kernel protocol over ``/dev/fuse``.

``protocol`` holds the wire structs, ``operations`` the interface a file system implements,
``server`` the mount and the request loop. The adapter knows nothing about jfs's file-system logic.
"""

"""FUSE driving adapter: a pure-asyncio server of the Linux FUSE kernel protocol over ``/dev/fuse``.

``protocol`` holds the wire structs, ``operations`` the interface a file system implements,
``mounting`` the mount options, mount and unmount, ``dispatch`` the opcode table (each request decoded
into an ``Operations`` call, its result encoded as the reply), ``notify`` the kernel cache
invalidations and ``server`` the request loop. The adapter knows nothing about jfs's file-system logic.
"""

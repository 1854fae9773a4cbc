"""Adapters: the ports (`jfs.ports`) implemented on real systems, one package per kind of system (kv,
objects, fuse, s3gw, webdav, metrics), one module per system. Only the composition roots
(`jfs.compose`, `jfs.bootstrap`) and the faces choose and build them; the app layer never imports them."""

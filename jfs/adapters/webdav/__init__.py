"""The WebDAV face of a volume (`jfs webdav`): a WsgiDAV provider on the synchronous SDK, locks in the
volume's engine, served by cheroot. See docs/adr/0012-webdav.md."""

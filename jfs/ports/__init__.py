"""Abstract ports: what the app layer needs from a metadata engine and from an object store."""

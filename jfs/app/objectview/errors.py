"""`ObjectError`: a failure of an object operation, named by its S3 error code (the object API's own
vocabulary; the gateway adapter maps each code to an HTTP status)."""

from __future__ import annotations


class ObjectError(Exception):
    """An S3-style error: `code` (e.g. ``NoSuchKey``) and a message for people."""

    def __init__(self, code: str, message: str = "", *, resource: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.resource = resource

"""The byte layout of an object sealed by JuiceFS's envelope encryption (`pkg/object/encrypt.go`).

Every object (each data block, and the ``juicefs_uuid`` object) is sealed on its own, after compression::

    2 bytes, big-endian   K  = length of the wrapped data key (256 for an RSA-2048 volume key)
    1 byte                N  = nonce length (12)
    K bytes               the object's fresh random data key, wrapped with RSA-OAEP(SHA-256, label "keys")
    N bytes               the AEAD nonce
    the rest              AEAD ciphertext followed by its 16-byte tag, no associated data

This module is the pure codec of that layout (no cryptography here): `pack` and `unpack`. `unpack` checks
that the lengths fit the object and raises `BadEnvelope` otherwise, so a truncated object is refused
before any key is unwrapped.
"""

from __future__ import annotations

from typing import NamedTuple

TAG_SIZE = 16
"""Bytes of the AEAD tag at the end of the ciphertext (AES-GCM and ChaCha20-Poly1305 alike)."""
NONCE_SIZE = 12
ALGORITHMS = {"aes256gcm-rsa": 32, "chacha20-rsa": 32}
"""The data-key algorithms JuiceFS names in ``EncryptAlgo``, and their data-key length in bytes (jfs does
not implement JuiceFS's ``sm4gcm``)."""
DEFAULT_ALGORITHM = "aes256gcm-rsa"


class BadEnvelope(ValueError):
    """The bytes are not a sealed object: too short, or lengths that do not fit."""


class Envelope(NamedTuple):
    wrapped_key: bytes
    nonce: bytes
    ciphertext: memoryview
    """AEAD ciphertext with its tag (a view into the object, to avoid copying a whole block)."""


def header_size(wrapped_key_len: int, nonce_len: int = NONCE_SIZE) -> int:
    return 3 + wrapped_key_len + nonce_len


def pack(wrapped_key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    """The stored object: header, wrapped key, nonce, ciphertext (with tag)."""
    if not 0 < len(wrapped_key) <= 0xFFFF or not 0 < len(nonce) <= 0xFF:
        raise ValueError(f"wrapped key of {len(wrapped_key)} bytes or nonce of {len(nonce)} bytes out of range")
    return b"".join((len(wrapped_key).to_bytes(2, "big"), bytes((len(nonce),)), wrapped_key, nonce, ciphertext))


def unpack(data: bytes | bytearray | memoryview) -> Envelope:
    """Split a stored object into its parts; BadEnvelope when it cannot be one (e.g. truncated)."""
    view = memoryview(data)
    if len(view) < 3:
        raise BadEnvelope(f"sealed object of {len(view)} bytes is shorter than its 3-byte header")
    klen = int.from_bytes(view[:2], "big")
    nlen = view[2]
    start = header_size(klen, nlen)
    if klen == 0 or nlen == 0 or len(view) < start + TAG_SIZE:
        raise BadEnvelope(
            f"sealed object of {len(view)} bytes cannot hold a {klen}-byte key, a {nlen}-byte nonce and a tag"
        )
    return Envelope(bytes(view[3 : 3 + klen]), bytes(view[3 + klen : start]), view[start:])


__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "BadEnvelope", "Envelope", "TAG_SIZE", "pack", "unpack"]

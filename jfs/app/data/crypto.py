"""Encryption at rest, byte-compatible with JuiceFS (`pkg/object/encrypt.go`, `pkg/meta/config.go`).

Three pieces, all on the `cryptography` library (OpenSSL underneath; nothing hand-rolled):

* `load_volume_key`: the volume's RSA private key from the PEM stored in the setting's ``EncryptKey``,
  decrypted with the passphrase from ``$JFS_RSA_PASSPHRASE`` when the PEM is protected. A missing or
  wrong passphrase, or a PEM that is not an RSA private key, is a `KeyProblem` with one line.
* `Sealer`: seals one object (envelope encryption: a fresh data key per object, wrapped with RSA-OAEP
  SHA-256 label ``"keys"``; AES-256-GCM or ChaCha20-Poly1305 over the compressed block; byte layout in
  `jfs.domain.envelope`) and opens it again. Opening a damaged, truncated or foreign object raises
  `SealBroken` (a `CorruptBlock`, so the block store retries it a few times, then reports EIO with the key).
* `EncryptedStore`: an `ObjectStore` that seals every `put` and opens every `get` — JuiceFS wraps its
  object storage the same way, so the blocks and the ``juicefs_uuid`` object are sealed alike. The AEAD
  and the RSA unwrap run on a thread pool (OpenSSL releases the GIL), never on the event loop. Inside
  `sealed_by_caller()` it passes objects through as they are: the block store seals and opens blocks
  itself, in the CPU-pool call that (de)compresses them (ADR 0023), and still sends them through every
  store layer around this one (request metrics, throttling).
* `seal_secret` / `open_secret` and `plain_settings` / `seal_settings`: the setting's secret fields
  (``SecretKey``, ``SessionToken``, ``EncryptKey``) sealed when ``KeyEncrypted``: AES-128-GCM with key
  ``MD5(UUID)``, stored as base64(nonce(12) || ciphertext). This hides secrets from a casual reader of the
  metadata engine only (the key derives from the UUID, which sits next to them); the RSA passphrase is
  what actually protects the data.

`cryptography` is imported inside the functions that use it: a command on a volume without encryption or
sealed secrets never loads its native bindings (~0.05 s of CPU per ``jfs`` command, ADR 0063).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hashlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from jfs.app.data.compress import CorruptBlock
from jfs.app.data.store_wrapper import StoreWrapper
from jfs.domain import envelope
from jfs.domain.settings import InvalidSettings, Settings
from jfs.ports.objects import ObjectStore

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

T = TypeVar("T")

PASSPHRASE_ENV = "JFS_RSA_PASSPHRASE"
OAEP_LABEL = b"keys"
SECRET_NONCE = 12


class KeyProblem(InvalidSettings):
    """The volume's key cannot be used: no or wrong passphrase, not an RSA key, or not the volume's key.
    The message is one line for the user."""


class SealBroken(CorruptBlock):
    """A sealed object does not open: truncated, tampered with, or sealed under another key."""


# -- the volume key ---------------------------------------------------------------------------------------


def _oaep() -> padding.OAEP:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=OAEP_LABEL)


def load_volume_key(pem: str | bytes, passphrase: str | None = None) -> rsa.RSAPrivateKey:
    """The RSA private key of the PEM (PKCS#1 or PKCS#8, plain or passphrase-protected, as JuiceFS takes).

    `passphrase` None means ``$JFS_RSA_PASSPHRASE``. A passphrase given for an unprotected PEM is ignored
    (JuiceFS only warns). Raises KeyProblem with one line.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    data = pem.encode() if isinstance(pem, str) else pem
    if passphrase is None:
        passphrase = os.environ.get(PASSPHRASE_ENV) or None
    if b"-----BEGIN" not in data:
        raise KeyProblem("the volume's EncryptKey is not a PEM private key")
    protected = b"ENCRYPTED" in data
    if protected and not passphrase:
        raise KeyProblem(f"the volume's RSA key is protected by a passphrase: set {PASSPHRASE_ENV}")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase.encode() if protected and passphrase else None)
    except ValueError as exc:
        if protected:
            raise KeyProblem(f"{PASSPHRASE_ENV} does not decrypt the volume's RSA key (wrong passphrase?)") from None
        raise KeyProblem(f"the volume's RSA key cannot be read: {' '.join(str(exc).split())}") from None
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise KeyProblem(f"the volume's RSA key cannot be read: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyProblem(f"the volume's key is a {type(key).__name__.lstrip('_')}, jfs supports RSA keys only")
    return key


def read_key_file(path: str) -> str:
    """The PEM text of `path` for ``format --encrypt-rsa-key`` (stored as is, like JuiceFS); KeyProblem if
    it cannot be read or is not a usable RSA key with the current passphrase."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise KeyProblem(f"cannot read the RSA key {path}: {exc.strerror}") from None
    load_volume_key(data)
    return data.decode("ascii", errors="strict")


# -- objects ----------------------------------------------------------------------------------------------


class Sealer:
    """Seals and opens objects under one volume key with one algorithm; safe to share between threads."""

    def __init__(self, key: rsa.RSAPrivateKey, algorithm: str = envelope.DEFAULT_ALGORITHM) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

        algorithm = algorithm or envelope.DEFAULT_ALGORITHM
        if algorithm not in envelope.ALGORITHMS:
            raise KeyProblem(
                f"unsupported encryption algorithm '{algorithm}' (jfs supports: {', '.join(envelope.ALGORITHMS)})"
            )
        self.algorithm = algorithm
        self._key = key
        self._public = key.public_key()
        self._key_len = envelope.ALGORITHMS[algorithm]
        self._wrapped_len = key.key_size // 8
        self._aead: Callable[[bytes], AESGCM | ChaCha20Poly1305] = (
            AESGCM if algorithm == "aes256gcm-rsa" else ChaCha20Poly1305
        )
        self._local = threading.local()  # open_scratch's buffer, one per thread

    @property
    def overhead(self) -> int:
        """Bytes a sealed object has more than its plaintext."""
        return envelope.header_size(self._wrapped_len) + envelope.TAG_SIZE

    def seal(self, data: bytes | bytearray | memoryview) -> bytearray:
        """`data` sealed under a fresh data key. The ciphertext is written straight after the header into
        one buffer (no copy of the block besides the encryption itself); the caller owns it."""
        data_key = secrets.token_bytes(self._key_len)
        nonce = secrets.token_bytes(envelope.NONCE_SIZE)
        wrapped = self._public.encrypt(data_key, _oaep())
        head = envelope.pack(wrapped, nonce, b"")
        out = bytearray(len(head) + len(data) + envelope.TAG_SIZE)
        out[: len(head)] = head
        self._aead(data_key).encrypt_into(nonce, data, None, memoryview(out)[len(head) :])
        return out

    def open(self, data: bytes | bytearray | memoryview) -> bytes:
        """The plaintext of a sealed object; SealBroken when it does not open."""
        from cryptography.exceptions import InvalidTag

        aead, env = self._unwrap(data)
        try:
            return aead.decrypt(env.nonce, env.ciphertext, None)
        except InvalidTag:
            raise SealBroken(f"{self.algorithm} tag does not verify (the object was altered)") from None

    def open_scratch(self, data: bytes | bytearray | memoryview) -> memoryview:
        """As `open`, into a buffer the calling thread reuses: valid only until the same thread's next
        `open_scratch` (for a caller that consumes it at once: the decompression of a block)."""
        from cryptography.exceptions import InvalidTag

        aead, env = self._unwrap(data)
        n = len(env.ciphertext) - envelope.TAG_SIZE
        if n < 0:
            raise SealBroken(f"a ciphertext of {len(env.ciphertext)} bytes is shorter than its tag")
        scratch: bytearray | None = getattr(self._local, "scratch", None)
        if scratch is None or len(scratch) < n:
            scratch = self._local.scratch = bytearray(n)
        view = memoryview(scratch)[:n]
        try:
            aead.decrypt_into(env.nonce, env.ciphertext, None, view)
        except InvalidTag:
            raise SealBroken(f"{self.algorithm} tag does not verify (the object was altered)") from None
        return view

    def _unwrap(self, data: bytes | bytearray | memoryview) -> tuple[AESGCM | ChaCha20Poly1305, envelope.Envelope]:
        """The AEAD of the object's data key and its parsed envelope; SealBroken when the key does not unwrap."""
        try:
            env = envelope.unpack(data)
        except envelope.BadEnvelope as exc:
            raise SealBroken(str(exc)) from None
        if len(env.wrapped_key) != self._wrapped_len:
            raise SealBroken(
                f"wrapped data key of {len(env.wrapped_key)} bytes, the volume's RSA key wraps {self._wrapped_len}"
            )
        try:
            data_key = self._key.decrypt(env.wrapped_key, _oaep())
        except ValueError:
            raise SealBroken("the data key does not unwrap with the volume's RSA key (another key, or damaged)") from None
        if len(data_key) != self._key_len or len(env.nonce) != envelope.NONCE_SIZE:
            raise SealBroken(f"a {len(data_key)}-byte data key or {len(env.nonce)}-byte nonce is not {self.algorithm}")
        return self._aead(data_key), env


def volume_sealer(settings: Settings, passphrase: str | None = None) -> Sealer | None:
    """The sealer of an encrypted volume (None when it is not encrypted); KeyProblem when the key is
    unusable. `settings` may still have its secrets sealed (``KeyEncrypted``)."""
    pem = plain_settings(settings).encrypt_key
    if not pem:
        return None
    if pem == "removed":
        raise KeyProblem(f"volume '{settings.name}' is encrypted but its setting holds no key (EncryptKey removed)")
    return Sealer(load_volume_key(pem, passphrase), settings.encrypt_algo)


_SEALED_BY_CALLER: ContextVar[bool] = ContextVar("jfs_sealed_by_caller", default=False)


@contextlib.contextmanager
def sealed_by_caller() -> Iterator[None]:
    """While this is active (in this task, and tasks it starts), an `EncryptedStore` anywhere in a chain
    of store layers stores `put` bytes as they are and returns `get` bytes as stored: the caller seals and
    opens them itself (`BlockStore`)."""
    token = _SEALED_BY_CALLER.set(True)
    try:
        yield
    finally:
        _SEALED_BY_CALLER.reset(token)


def find_sealer(store: object) -> Sealer | None:
    """The sealer of the `EncryptedStore` in `store`'s chain of layers (followed through ``inner``), if any."""
    seen = 0
    while store is not None and seen < 16:
        if isinstance(store, EncryptedStore):
            return store.sealer
        store = getattr(store, "inner", None)
        seen += 1
    return None


class EncryptedStore(StoreWrapper):
    """An ObjectStore whose objects are sealed by `sealer` in `inner` (see the module docstring).

    Ranged `get`s read and open the whole object, then slice it (a sealed object cannot be opened in part);
    `head` and `list` report the stored (sealed) sizes.
    """

    def __init__(self, inner: ObjectStore, sealer: Sealer, *, threads: int | None = None) -> None:
        super().__init__(inner)
        self.sealer = sealer
        self._pool = ThreadPoolExecutor(max_workers=threads or min(8, (os.cpu_count() or 1) + 2),
                                        thread_name_prefix="jfs-crypto")

    async def _cpu(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    async def put(self, key: str, data: bytes | memoryview) -> None:
        if _SEALED_BY_CALLER.get():
            await self.inner.put(key, data)
            return
        await self.inner.put(key, memoryview(await self._cpu(self.sealer.seal, data)))

    async def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        if _SEALED_BY_CALLER.get():
            return await self.inner.get(key, off, limit)
        raw = await self.inner.get(key)
        try:
            data = await self._cpu(self.sealer.open, raw)
        except SealBroken as exc:
            raise SealBroken(f"object '{key}' ({len(raw)} bytes stored): {exc}") from None
        if off == 0 and limit < 0:
            return data
        return data[off:] if limit < 0 else data[off : off + limit]

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await asyncio.to_thread(self._pool.shutdown, True)


# -- the setting's secrets --------------------------------------------------------------------------------

SEALED_FIELDS = ("secret_key", "session_token", "encrypt_key")
"""`Settings` attributes of JuiceFS's secret fields (SecretKey, SessionToken, EncryptKey)."""


def _secret_aead(uuid: str) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(hashlib.md5(uuid.encode()).digest())  # noqa: S324 - JuiceFS's key derivation, not a hash of trust


def seal_secret(uuid: str, value: str) -> str:
    """`value` sealed as JuiceFS's `Format.Encrypt` seals a secret field (empty stays empty)."""
    if not value:
        return value
    nonce = secrets.token_bytes(SECRET_NONCE)
    return base64.b64encode(nonce + _secret_aead(uuid).encrypt(nonce, value.encode(), None)).decode()


def open_secret(uuid: str, value: str, field: str = "secret") -> str:
    """The plain text of a sealed secret field; KeyProblem when it does not open with the volume's UUID."""
    if not value or value == "removed":  # dumps replace secrets with "removed"
        return value
    from cryptography.exceptions import InvalidTag

    try:
        raw = base64.b64decode(value, validate=True)
        return _secret_aead(uuid).decrypt(raw[:SECRET_NONCE], raw[SECRET_NONCE:], None).decode()
    except (binascii.Error, ValueError, InvalidTag):
        raise KeyProblem(f"the setting's {field} does not decrypt with the volume's UUID (KeyEncrypted)") from None


def plain_settings(settings: Settings) -> Settings:
    """`settings` with its secret fields in plain text (a copy when they were sealed)."""
    if not settings.key_encrypted:
        return settings
    u = settings.uuid
    return replace(
        settings, key_encrypted=False, extra=dict(settings.extra),
        secret_key=open_secret(u, settings.secret_key, "SecretKey"),
        session_token=open_secret(u, settings.session_token, "SessionToken"),
        encrypt_key=open_secret(u, settings.encrypt_key, "EncryptKey"),
    )  # fmt: skip


def seal_settings(settings: Settings) -> Settings:
    """`settings` (plain secrets, final UUID) with its secret fields sealed and ``KeyEncrypted`` set, as
    JuiceFS does (nothing changes when there is no secret or they are sealed already)."""
    if settings.key_encrypted or not any(getattr(settings, f) for f in SEALED_FIELDS):
        return settings
    u = settings.uuid
    return replace(
        settings, key_encrypted=True, extra=dict(settings.extra),
        secret_key=seal_secret(u, settings.secret_key),
        session_token=seal_secret(u, settings.session_token),
        encrypt_key=seal_secret(u, settings.encrypt_key),
    )  # fmt: skip


__all__ = [
    "PASSPHRASE_ENV", "KeyProblem", "SealBroken", "Sealer", "EncryptedStore", "sealed_by_caller", "find_sealer",
    "load_volume_key", "read_key_file",
    "volume_sealer", "seal_secret", "open_secret", "plain_settings", "seal_settings",
]

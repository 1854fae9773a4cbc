"""Volume settings: the ``setting`` record, JSON with the field names and order JuiceFS uses ("Format")."""

from __future__ import annotations

import json
import re
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Any

from jfs.domain.checksums import ALGORITHMS as CHECKSUMS
from jfs.domain.checksums import SETTING_FIELD as CHECKSUM_FIELD
from jfs.domain.envelope import ALGORITHMS as ENCRYPT_ALGOS
from jfs.domain.errors import FSError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
META_VERSION = 1
MIN_CLIENT_VERSION = "1.1.0-A"
SECRET_FIELDS = ("SecretKey", "SessionToken", "EncryptKey")
COMPRESSIONS = ("none", "lz4", "zstd")
DEFAULT_ENCRYPT_ALGO = "aes256gcm-rsa"


class InvalidSettings(ValueError):
    """A setting value is out of range or malformed."""


class EncryptedVolume(InvalidSettings):
    """The volume is encrypted in a way jfs cannot read: an algorithm it does not implement (JuiceFS's
    ``sm4gcm``), or a setting whose ``EncryptKey`` was removed."""


@dataclass(slots=True)
class Settings:
    """The volume's format. `block_size` is in KiB as JuiceFS stores it (4096 = 4 MiB)."""

    name: str
    uuid: str = field(default_factory=lambda: str(_uuid.uuid4()))
    storage: str = "file"
    bucket: str = ""
    access_key: str = ""
    secret_key: str = ""
    session_token: str = ""
    block_size: int = 4096
    compression: str = "none"
    hash_prefix: bool = False
    capacity: int = 0
    inodes: int = 0
    trash_days: int = 1
    meta_version: int = META_VERSION
    min_client_version: str = MIN_CLIENT_VERSION
    max_client_version: str = ""
    dir_stats: bool = False
    """jfs does not maintain per-directory statistics yet (ADR 0004)."""
    enable_acl: bool = False
    encrypt_key: str = ""
    """JuiceFS's ``EncryptKey``: the PEM of the volume's RSA private key (itself passphrase-protected, and
    sealed with the UUID when `key_encrypted`); empty for an unencrypted volume (jfs.app.data.crypto)."""
    encrypt_algo: str = DEFAULT_ENCRYPT_ALGO
    """JuiceFS's ``EncryptAlgo``: present in every setting, it only matters when ``EncryptKey`` is set."""
    key_encrypted: bool = False
    """JuiceFS's ``KeyEncrypted``: `secret_key`, `session_token` and `encrypt_key` are stored sealed."""
    checksum: str = ""
    """Block checksums kept in the metadata (``crc32``) or none (``""``): jfs only, stored as
    ``JfsBlockChecksum``, which JuiceFS ignores (ADR 0008)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields written by other clients that jfs keeps but does not interpret."""

    @property
    def block_bytes(self) -> int:
        return self.block_size * 1024

    def validate(self) -> None:
        """Raise InvalidSettings for a bad name, block size, compression, or negative limits."""
        if not NAME_RE.match(self.name):
            raise InvalidSettings(
                f"invalid volume name '{self.name}': 3-63 characters of lowercase letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        if not 64 <= self.block_size <= 16384 or self.block_size & (self.block_size - 1):
            raise InvalidSettings(f"block size {self.block_size} KiB must be a power of two between 64 KiB and 16 MiB")
        if self.compression not in COMPRESSIONS:
            raise InvalidSettings(f"unknown compression '{self.compression}' (choose: {', '.join(COMPRESSIONS)})")
        if self.capacity < 0 or self.inodes < 0 or self.trash_days < 0:
            raise InvalidSettings("capacity, inodes and trash days must not be negative")
        if self.encrypt_algo not in ENCRYPT_ALGOS and self.encrypt_key:
            raise InvalidSettings(
                f"unknown encryption algorithm '{self.encrypt_algo}' (choose: {', '.join(ENCRYPT_ALGOS)})"
            )
        if self.checksum and self.checksum not in CHECKSUMS:
            raise InvalidSettings(f"unknown block checksum '{self.checksum}' (choose: {', '.join(CHECKSUMS)})")

    def to_json(self, *, mask_secrets: bool = False) -> bytes:
        doc: dict[str, Any] = {"Name": self.name, "UUID": self.uuid, "Storage": self.storage}
        doc["Tiers"] = {"0": {"ID": 0, "StorageClass": "", "Tag": ""}}
        doc["Bucket"] = self.bucket
        if self.access_key:
            doc["AccessKey"] = self.access_key
        if self.secret_key:
            doc["SecretKey"] = "removed" if mask_secrets else self.secret_key
        if self.session_token:
            doc["SessionToken"] = "removed" if mask_secrets else self.session_token
        doc["BlockSize"] = self.block_size
        doc["Compression"] = self.compression
        if self.hash_prefix:
            doc["HashPrefix"] = True
        if self.capacity:
            doc["Capacity"] = self.capacity
        if self.inodes:
            doc["Inodes"] = self.inodes
        if self.encrypt_key:
            doc["EncryptKey"] = "removed" if mask_secrets else self.encrypt_key
        doc["EncryptAlgo"] = self.encrypt_algo or DEFAULT_ENCRYPT_ALGO
        if self.key_encrypted:
            doc["KeyEncrypted"] = True
        doc["TrashDays"] = self.trash_days
        doc["MetaVersion"] = self.meta_version
        doc["MinClientVersion"] = self.min_client_version
        if self.max_client_version:
            doc["MaxClientVersion"] = self.max_client_version
        doc["DirStats"] = self.dir_stats
        doc["EnableACL"] = self.enable_acl
        if self.checksum:
            doc[CHECKSUM_FIELD] = self.checksum
        for k, v in self.extra.items():
            doc.setdefault(k, v)
        return json.dumps(doc, indent=1).encode()

    def to_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        return json.loads(self.to_json(mask_secrets=mask_secrets))  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: bytes | str) -> Settings:
        """Parse a setting record. Raises InvalidSettings on malformed JSON or missing Name."""
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise InvalidSettings(f"setting record is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or "Name" not in doc:
            raise InvalidSettings("setting record has no volume name")
        known = {
            "Name", "UUID", "Storage", "Tiers", "Bucket", "AccessKey", "SecretKey", "SessionToken", "BlockSize",
            "Compression", "HashPrefix", "Capacity", "Inodes", "EncryptKey", "EncryptAlgo", "KeyEncrypted", "TrashDays", "MetaVersion",
            "MinClientVersion", "MaxClientVersion", "DirStats", "EnableACL", CHECKSUM_FIELD,
        }
        return cls(
            name=doc["Name"],
            uuid=doc.get("UUID", ""),
            storage=doc.get("Storage", "file"),
            bucket=doc.get("Bucket", ""),
            access_key=doc.get("AccessKey", ""),
            secret_key=doc.get("SecretKey", ""),
            session_token=doc.get("SessionToken", ""),
            block_size=int(doc.get("BlockSize", 4096)),
            compression=doc.get("Compression", "none") or "none",
            hash_prefix=bool(doc.get("HashPrefix", False)),
            capacity=int(doc.get("Capacity", 0)),
            inodes=int(doc.get("Inodes", 0)),
            trash_days=int(doc.get("TrashDays", 1)),
            meta_version=int(doc.get("MetaVersion", META_VERSION)),
            min_client_version=doc.get("MinClientVersion", MIN_CLIENT_VERSION),
            max_client_version=doc.get("MaxClientVersion", ""),
            dir_stats=bool(doc.get("DirStats", False)),
            enable_acl=bool(doc.get("EnableACL", False)),
            encrypt_key=str(doc.get("EncryptKey") or ""),
            encrypt_algo=str(doc.get("EncryptAlgo") or DEFAULT_ENCRYPT_ALGO),
            key_encrypted=bool(doc.get("KeyEncrypted", False)),
            checksum=str(doc.get(CHECKSUM_FIELD) or ""),
            extra={k: v for k, v in doc.items() if k not in known},
        )

    @property
    def encryption(self) -> str | None:
        """The algorithm of an encrypted volume (``"aes256gcm-rsa"``), None when it is not encrypted.

        JuiceFS writes ``EncryptAlgo`` into every setting; a volume is encrypted when it has an ``EncryptKey``
        (the RSA private key, itself sealed when ``KeyEncrypted``; "removed" in some dumps).
        """
        if not self.encrypt_key:
            return None
        return self.encrypt_algo or DEFAULT_ENCRYPT_ALGO

    def check_readable(self) -> None:
        """Raise EncryptedVolume when no client of this jfs can read the volume's data, whatever the key's
        passphrase: checked before anything touches the data (`jfs.compose.open_bucket`, `load`).
        Whether the key itself opens is `jfs.app.data.crypto`'s business."""
        algo = self.encryption
        if algo is None:
            return
        if algo not in ENCRYPT_ALGOS:
            raise EncryptedVolume(
                f"volume '{self.name}' is encrypted with {algo}, which jfs does not support "
                f"(supported: {', '.join(ENCRYPT_ALGOS)})"
            )
        if self.encrypt_key == "removed":
            raise EncryptedVolume(f"volume '{self.name}' is encrypted but its setting holds no key (EncryptKey removed)")

    def check_supported(self) -> None:
        """Raise FSError-free InvalidSettings when this client cannot serve the volume."""
        if self.meta_version > META_VERSION:
            raise InvalidSettings(
                f"volume '{self.name}' has metadata version {self.meta_version}; this jfs supports up to "
                f"{META_VERSION}: upgrade jfs"
            )


__all__ = ["Settings", "InvalidSettings", "EncryptedVolume", "FSError"]

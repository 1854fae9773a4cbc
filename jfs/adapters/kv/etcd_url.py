"""Parsing of etcd META-URLs into an `EtcdTarget` (members, credentials, TLS files, key prefix).

Accepted form (JuiceFS's; user, password and path may be percent-encoded)::

    etcd://[user:password@]host1[:2379][,host2[:2379]…][/prefix][?cacert=PATH&cert=PATH&key=PATH
            &server-name=NAME&insecure-skip-verify=true&max-txn-ops=N&timeout=DURATION&read-cache=MIB]

* The physical key prefix is the URL path **with its leading slash** followed by 0xFD, byte for byte what
  JuiceFS uses (``etcd://h/vol`` stores ``/vol\\xfd`` + key; ``etcd://h`` stores ``\\xfd`` + key), so
  both implementations find each other's volumes.
* TLS is on when any of ``cacert``, ``cert``, ``key`` or ``server-name`` is given (JuiceFS's rule).
  ``insecure-skip-verify`` (any non-empty value, as JuiceFS) accepts a member's certificate without a CA
  vouching for it (etcd_tls.py says how); on its own it does not turn TLS on (JuiceFS's rule too).
* ``max-txn-ops`` must not exceed the servers' ``--max-txn-ops`` (128 by default, what JuiceFS assumes).
* ``timeout`` bounds each request and the fail-over of one request across members (default 30 s).
* ``read-cache`` (jfs only) is the size in MiB of the read cache of read-write transactions (default 32;
  0 turns it off; docs/adr/0025-etcd-read-cache.md).

Raises ValueError (without the password) when malformed; nothing here touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from .redis_url import parse_duration

DEFAULT_PORT = 2379
DEFAULT_MAX_TXN_OPS = 128
DEFAULT_TIMEOUT = 30.0
DEFAULT_READ_CACHE_MIB = 32
_PARAMS = (
    "cacert", "cert", "key", "server-name", "insecure-skip-verify", "max-txn-ops", "timeout", "read-cache"
)  # fmt: skip


@dataclass(frozen=True)
class EtcdTarget:
    """What to connect to; `endpoints` (``host:port``) are safe to print."""

    endpoints: tuple[str, ...]
    prefix: bytes
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    timeout: float = DEFAULT_TIMEOUT
    read_cache_bytes: int = DEFAULT_READ_CACHE_MIB << 20

    @property
    def tls(self) -> bool:
        return any((self.cacert, self.cert, self.key, self.server_name))

    @property
    def address(self) -> str:
        return ",".join(self.endpoints)


def _endpoint(text: str) -> str:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        host, port = f"[{host}]", rest.removeprefix(":")
    else:
        if text.count(":") > 1:
            raise ValueError(f"IPv6 addresses go in brackets ([::1]:2379), not '{text}'")
        host, _, port = text.partition(":")
    if host in ("", "[]"):
        raise ValueError(f"empty host in '{text}'")
    if not port:
        return f"{host}:{DEFAULT_PORT}"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"port must be a number between 1 and 65535, not '{port}'")
    return f"{host}:{int(port)}"


def parse_etcd_url(url: str) -> EtcdTarget:
    """The target named by `url`; ValueError when it is malformed."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "etcd":
        raise ValueError(f"not an etcd:// URL (scheme '{parts.scheme}')")
    netloc = parts.netloc
    cred, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, pw = cred.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    endpoints = tuple(_endpoint(h) for h in hosts.split(",") if h.strip())
    if not endpoints:
        raise ValueError("etcd:// URL without members (e.g. etcd://host1:2379,host2:2379/myvolume)")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - set(_PARAMS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(_PARAMS)})")
    max_ops = params.get("max-txn-ops", str(DEFAULT_MAX_TXN_OPS))
    if not max_ops.isdigit() or int(max_ops) < 2:
        raise ValueError(f"max-txn-ops must be a number >= 2, not '{max_ops}'")
    timeout = parse_duration("timeout", params["timeout"]) if "timeout" in params else DEFAULT_TIMEOUT
    cache_mib = params.get("read-cache", str(DEFAULT_READ_CACHE_MIB))
    if not cache_mib.isdigit():
        raise ValueError(f"read-cache must be a size in MiB (0 = off), not '{cache_mib}'")
    return EtcdTarget(
        endpoints=endpoints,
        prefix=unquote(parts.path).encode() + b"\xfd",
        username=username,
        password=password,
        cacert=params.get("cacert") or None,
        cert=params.get("cert") or None,
        key=params.get("key") or None,
        server_name=params.get("server-name") or None,
        insecure_skip_verify=params.get("insecure-skip-verify", "") not in ("", "false", "0"),
        max_txn_ops=int(max_ops),
        timeout=timeout,
        read_cache_bytes=int(cache_mib) << 20,
    )

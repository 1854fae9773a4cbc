"""Parsing of Redis META-URLs into a `RedisTarget` (where to connect, how to log in, which database).

Accepted forms (user, password and paths may be percent-encoded)::

    redis://[[user]:password@]host[:port][/db][?db=N]
    rediss://[[user]:password@]host[:port][/db][?ssl_cert_reqs=none|optional|required&ssl_ca_certs=PATH
              &ssl_certfile=PATH&ssl_keyfile=PATH&ssl_check_hostname=true|false]
    unix://[[user]:password@]/path/to/redis.sock[?db=N]

JuiceFS's names of the TLS options are accepted too: ``tls-ca-cert-file`` (= ``ssl_ca_certs``),
``tls-cert-file`` / ``tls-key-file`` (a client certificate, = ``ssl_certfile`` / ``ssl_keyfile``) and
``insecure-skip-verify=true`` (= ``ssl_cert_reqs=none``: no check of the server's certificate or name).
Without any of them a ``rediss://`` server must present a certificate that verifies against the system's
CAs (or ``ssl_ca_certs``) for the host name of the URL. A CA or certificate file that cannot be read is a
ValueError naming it.

``password=`` and ``username=`` are also accepted as query parameters (handy for unix sockets).

Timeouts, named as go-redis (and so JuiceFS) names them, on every scheme; a value is a Go duration
(``500ms``, ``10s``, ``1m30s``) or a number of seconds (``10``, ``2.5``), and must be positive:

* ``read_timeout`` — a connection with commands outstanding that receives nothing for this long is given
  up on (its commands fail: EIO for the file system). Default 60 s.
* ``dial_timeout`` — connecting and logging in must finish within this. Default 5 s.

Every other query parameter, a non-numeric database, a bad duration or a port out of range raises
ValueError (the adapter turns it into BadMetaURL). Nothing here touches the network.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_PORT = 6379
_SSL_PARAMS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
_JUICEFS_TLS = {"tls-ca-cert-file": "ssl_ca_certs", "tls-cert-file": "ssl_certfile", "tls-key-file": "ssl_keyfile"}
_SKIP_VERIFY = "insecure-skip-verify"
_COMMON_PARAMS = ("db", "password", "username", "read_timeout", "dial_timeout")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


@dataclass(frozen=True)
class RedisTarget:
    """Where and how to connect; `address` (host:port or socket path) is safe to print."""

    host: str = "localhost"
    port: int = DEFAULT_PORT
    path: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    ssl: ssl.SSLContext | None = field(default=None, repr=False)
    read_timeout: float | None = None
    """Seconds without a reply before a busy connection is given up on (None: the client's default)."""
    dial_timeout: float | None = None
    """Seconds allowed to connect and log in (None: the client's default)."""

    @property
    def address(self) -> str:
        if self.path is not None:
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _flag(name: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not '{value}'")


def _juicefs_tls_names(params: dict[str, str]) -> dict[str, str]:
    """`params` with JuiceFS's TLS option names turned into jfs's (the same option twice is a ValueError)."""
    out = {k: v for k, v in params.items() if k not in _JUICEFS_TLS and k != _SKIP_VERIFY}
    for juicefs_name, name in _JUICEFS_TLS.items():
        if juicefs_name in params:
            if name in params:
                raise ValueError(f"{juicefs_name} and {name} are the same option: give one")
            out[name] = params[juicefs_name]
    if _SKIP_VERIFY in params and _flag(_SKIP_VERIFY, params[_SKIP_VERIFY]):
        if "ssl_cert_reqs" in params:
            raise ValueError(f"{_SKIP_VERIFY} and ssl_cert_reqs are the same option: give one")
        out["ssl_cert_reqs"] = "none"
    return out


def _ssl_context(params: dict[str, str]) -> ssl.SSLContext:
    try:
        return _ssl_context_from_files(params)
    except (OSError, ssl.SSLError) as exc:
        what = ", ".join(f"{k}={params[k]}" for k in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile") if k in params)
        raise ValueError(f"cannot load the TLS files ({what}): {getattr(exc, 'strerror', None) or exc}") from None


def _ssl_context_from_files(params: dict[str, str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=params.get("ssl_ca_certs"))
    reqs = params.get("ssl_cert_reqs", "required").lower()
    if reqs not in _CERT_REQS:
        raise ValueError(f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, not '{reqs}'")
    check = _flag("ssl_check_hostname", params["ssl_check_hostname"]) if "ssl_check_hostname" in params else None
    ctx.check_hostname = (reqs != "none") if check is None else check
    ctx.verify_mode = _CERT_REQS[reqs]
    if "ssl_certfile" in params:
        ctx.load_cert_chain(params["ssl_certfile"], params.get("ssl_keyfile"))
    return ctx


def parse_duration(name: str, text: str) -> float:
    """Seconds in a Go duration (``1m30s``, ``500ms``) or a plain number of seconds; ValueError unless > 0."""
    value = text.strip()
    seconds: float | None = None
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION_PART.findall(value)
        if parts and "".join(n + u for n, u in parts) == value:
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds is None or not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{name} must be a positive duration such as 10s, 500ms or 2.5, not '{text}'")
    return seconds


def parse_redis_url(url: str) -> RedisTarget:
    """The target named by `url`; ValueError (without the password) when it is malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"unsupported scheme '{scheme}'")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    allowed = _COMMON_PARAMS + ((*_SSL_PARAMS, *_JUICEFS_TLS, _SKIP_VERIFY) if scheme == "rediss" else ())
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(allowed)})")
    params = _juicefs_tls_names(params)
    username = unquote(parts.username) if parts.username else params.get("username") or None
    password = unquote(parts.password) if parts.password is not None else params.get("password")
    if password == "":
        password = None
    db_text = params.get("db", "")
    read_timeout = parse_duration("read_timeout", params["read_timeout"]) if "read_timeout" in params else None
    dial_timeout = parse_duration("dial_timeout", params["dial_timeout"]) if "dial_timeout" in params else None
    if scheme == "unix":
        path = unquote(parts.path)
        if not path:
            raise ValueError("missing socket path (unix:///path/to/redis.sock)")
        return RedisTarget(
            path=path, username=username, password=password, db=_db(db_text),
            read_timeout=read_timeout, dial_timeout=dial_timeout,
        )  # fmt: skip
    if not parts.hostname:
        raise ValueError("missing host")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError("port must be a number between 1 and 65535") from None
    path_db = parts.path.strip("/")
    if path_db and db_text and path_db != db_text:
        raise ValueError(f"database given twice ('/{path_db}' and 'db={db_text}')")
    return RedisTarget(
        host=unquote(parts.hostname),
        port=port,
        username=username,
        password=password,
        db=_db(path_db or db_text),
        ssl=_ssl_context(params) if scheme == "rediss" else None,
        read_timeout=read_timeout,
        dial_timeout=dial_timeout,
    )


def _db(text: str) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"database must be a non-negative number, not '{text}'")
    return int(text)

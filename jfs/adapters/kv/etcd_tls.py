"""TLS for the etcd client: gRPC channel credentials from an `EtcdTarget`, and TLS failures in one line.

* ``cacert`` (PEM bundle) verifies the members' certificates; without it the system's roots do.
  ``cert`` + ``key`` are the client certificate etcd asks for under ``--client-cert-auth``.
  ``server-name`` is the name checked against the certificate instead of the endpoint's host.
* ``insecure-skip-verify`` (JuiceFS's option): gRPC cannot turn verification off, so the certificate a
  member presents when the channel is made is fetched (handshake without verification) and trusted as
  the only root for that member, with its own name as the expected name. In effect: no check that a CA
  vouches for the member, as asked; but a member whose certificate changes later is refused until the
  client reconnects (a remount) — stricter than JuiceFS, never laxer.

Errors: an unreadable TLS file → EngineUnavailable naming it; `tls_failure` turns gRPC's handshake
reports into a sentence naming the option to fix (None when the failure is not about TLS).
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from jfs.ports.kv import EngineUnavailable

from .etcd_url import EtcdTarget

FETCH_TIMEOUT = 5.0


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise EngineUnavailable(f"cannot read TLS file {path}: {exc.strerror}") from None


def channel_credentials(target: EtcdTarget, root_pem: bytes | None = None) -> grpc.ChannelCredentials:
    """Credentials for a channel to the members of `target` (`root_pem` replaces ``cacert`` when given)."""
    roots = root_pem if root_pem is not None else _read(target.cacert)
    return grpc.ssl_channel_credentials(roots, _read(target.key), _read(target.cert))


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def _fetch_presented(endpoint: str, target: EtcdTarget) -> bytes:
    """The DER certificate `endpoint` presents (no verification; our client certificate offered)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    if target.cert:
        try:
            ctx.load_cert_chain(target.cert, target.key)
        except (OSError, ssl.SSLError) as exc:
            raise EngineUnavailable(f"cannot load the TLS client certificate {target.cert}: {exc}") from None
    host, port = _host_port(endpoint)
    with socket.create_connection((host, port), timeout=FETCH_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=target.server_name or host) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise OSError(f"{endpoint} presented no certificate")
    return der


def _names(cert: x509.Certificate) -> list[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*sans.get_values_for_type(x509.DNSName), *map(str, sans.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        names = []
    names += [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


async def pinned_credentials(endpoint: str, target: EtcdTarget) -> tuple[grpc.ChannelCredentials, str | None]:
    """For ``insecure-skip-verify``: credentials trusting exactly what `endpoint` presents now, and the
    name to expect (None: the endpoint's host is one of the certificate's names). OSError when the member
    cannot be reached (the caller fails over)."""
    der = await asyncio.to_thread(_fetch_presented, endpoint, target)
    cert = x509.load_der_x509_certificate(der)
    names = _names(cert)
    host = _host_port(endpoint)[0]
    override = target.server_name if target.server_name in names else None
    if override is None and host not in names and names:
        override = names[0]
    return channel_credentials(target, ssl.DER_cert_to_PEM_cert(der).encode()), override


_VERIFY = ("certificate_verify_failed", "certificate verify failed")
_REFUSED_CLIENT = ("tsi_data_corrupted", "bad_certificate", "certificate_required", "certificate required",
                   "unknown_ca", "sslv3_alert")  # fmt: skip
_NOT_TLS = ("wrong_version_number", "packet_length_too_long", "http_request")


def tls_failure(details: str, endpoint: str, target: EtcdTarget) -> str | None:
    """One line saying what to fix when gRPC's `details` report a failed TLS handshake, else None."""
    low = details.lower()
    if not target.tls:
        return None
    reason = details.rsplit("SSL_ERROR_SSL:", 1)[-1].split("OPENSSL_internal:")[-1].strip().rstrip(": OK")
    if any(m in low for m in _VERIFY):
        hint = f"cacert={target.cacert}" if target.cacert else "no cacert= (the system's CAs were used)"
        return (
            f"etcd at {endpoint}: its TLS certificate does not verify ({reason}; {hint}): give the CA that "
            "signed it with cacert=PATH, the name it carries with server-name=NAME, or insecure-skip-verify=true"
        )
    if "hostname verification" in low:
        name = target.server_name or _host_port(endpoint)[0]
        return (
            f"etcd at {endpoint}: its TLS certificate does not verify for the name '{name}': give the name it "
            "carries with server-name=NAME, or insecure-skip-verify=true"
        )
    if any(m in low for m in _NOT_TLS):
        return f"etcd at {endpoint} does not speak TLS ({reason}): drop cacert/cert/key/server-name from the URL"
    if any(m in low for m in _REFUSED_CLIENT):
        given = f"cert={target.cert}" if target.cert else "no client certificate was given"
        return (
            f"etcd at {endpoint} refused our TLS connection ({given}): it requires a client certificate "
            "signed by a CA it trusts (cert=PATH&key=PATH)"
        )
    return None


__all__ = ["channel_credentials", "pinned_credentials", "tls_failure"]

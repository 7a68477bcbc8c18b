"""TLS trust for every endpoint: verified by default, a CA file, a pinned SHA-256 thumbprint, or insecure.

Two consumers, two mechanisms from the libraries themselves:
- pyVmomi takes an ``ssl.SSLContext``; a pin becomes a context whose only trust
  anchor is the pinned certificate (after checking the peer's SHA-256).
- requests (vAPI tagging REST, Redfish through sushy) takes ``verify`` per request
  plus urllib3's ``assert_fingerprint`` for a pin. ``verify`` is passed on every
  request because a session's ``verify=False`` is overridden by REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import socket
import ssl
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from labswitch.config import TLS
from labswitch.errors import ConnectionFailed, TLSVerificationFailed

log = logging.getLogger(__name__)


def warn_if_insecure(tls: TLS, where: str) -> None:
    if tls.insecure:
        log.warning("%s: TLS verification is off (tls = { insecure = true }); pin the thumbprint instead", where)


def ssl_context(tls: TLS, host: str, port: int, where: str, timeout: float = 10.0) -> ssl.SSLContext:
    """An SSLContext for a connection to host:port that trusts what ``tls`` says."""
    warn_if_insecure(tls, where)
    if tls.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if tls.thumbprint:
        pem = _peer_certificate(host, port, where, timeout)
        check_thumbprint(ssl.PEM_cert_to_DER_cert(pem), tls.thumbprint, where)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # the pin names the certificate itself
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a CA-signed leaf is its own anchor
        ctx.load_verify_locations(cadata=pem)
        return ctx
    try:
        return ssl.create_default_context(cafile=tls.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSVerificationFailed(f"{where}: cannot load tls.ca_file {tls.ca_file}: {exc}; check the path") from exc


def check_thumbprint(der: bytes, pinned: str, where: str) -> None:
    actual = hashlib.sha256(der).hexdigest()
    if actual != pinned:
        raise TLSVerificationFailed(
            f"{where}: certificate SHA-256 {actual} does not match the pinned tls.thumbprint; "
            "if the certificate was renewed on purpose, pin the new one"
        )


def _peer_certificate(host: str, port: int, where: str, timeout: float) -> str:
    try:
        return ssl.get_server_certificate((host, port), timeout=timeout)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionFailed(f"{where}: cannot reach {host}:{port}: {_reason(exc)}; check the address and that it is up") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    """One context for every pinned or insecure connection of the process. It loads no CA
    store: trust comes from the fingerprint, or was waived. (Loading the store took 20 ms of
    CPU per BMC, measured: more than the TLS handshake itself.)"""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _UnverifiedContextAdapter(HTTPAdapter):
    """One SSLContext for every connection, checking a pinned fingerprint when given.

    urllib3 otherwise builds a new context and reloads the CA store per connection.
    """

    def __init__(self, fingerprint: str | None) -> None:
        self._fingerprint = fingerprint
        self._context = _unverified_context()
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        if self._fingerprint:
            kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(*args, **kwargs)


def requests_verify(tls: TLS) -> bool | str:
    """The ``verify`` argument to pass on every request."""
    if tls.insecure or tls.thumbprint:
        return False  # a pin is checked by the adapter's assert_fingerprint instead
    return tls.ca_file or True


def configure_session(session: requests.Session, tls: TLS, where: str) -> None:
    """Apply ``tls`` to a requests session (pinning adapter, quiet urllib3 warnings)."""
    warn_if_insecure(tls, where)
    session.verify = requests_verify(tls)
    if tls.thumbprint or tls.insecure:
        session.mount("https://", _UnverifiedContextAdapter(tls.thumbprint))
    if tls.insecure or tls.thumbprint:
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

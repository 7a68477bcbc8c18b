"""A Proxmox VE cluster's API through proxmoxer (the field's client: resource paths, ticket and token auth, the
CSRF token on writes, PVE's errors), over a requests session of ours that carries the TLS trust the config gives
(a pinned thumbprint too, which proxmoxer's own ticket request would not check: the ticket is asked for through
this session instead).

Any node answers for the whole cluster, so the client keeps one node's API and moves to the next server's
``proxmox_url`` when it stops answering (a node going down in a down, the first node still booting in an up).
Errors are translated here, once, into the documented tree (``raise ... from exc``): one line each."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests
from proxmoxer.backends.https import JsonSerializer, ProxmoxHTTPApiTokenAuth, ProxmoxHTTPAuth, ProxmoxHttpSession
from proxmoxer.core import ProxmoxResource, ResourceException
from pydantic import SecretStr

from labswitch.config import Proxmox
from labswitch.errors import AuthenticationFailed, ConnectionFailed, EndpointError, ProxmoxError, TLSVerificationFailed
from labswitch.tls import configure_session, requests_verify

T = TypeVar("T")
Api = Any  # a proxmoxer ProxmoxResource: api.nodes("pve1").qemu(100).status.current.get()


class Client:
    """One cluster's API; thread-safe (a run's steps call it from several workers)."""

    def __init__(self, config: Proxmox, node_urls: Sequence[str] = ()) -> None:
        self.config = config
        self.urls = list(dict.fromkeys([config.https_url, *(_base(u) for u in node_urls)]))
        self._lock = threading.Lock()
        self._api: Api | None = None
        self._url = ""

    @property
    def where(self) -> str:
        return f"Proxmox VE {self._url or self.urls[0]}"

    def call(self, what: str, fn: Callable[[Api], T]) -> T:
        """``fn(api)`` on the node in use; when that node does not answer, on the next one. ``what``: the call in a
        person's words, for the one-line error ("start VM 100")."""
        tried: list[str] = []
        for _ in range(len(self.urls)):
            api, url = self._current()
            try:
                return fn(api)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if isinstance(exc, requests.exceptions.SSLError):
                    raise _tls_error(url, exc) from exc
                tried.append(url)
                self._drop(url)
            except ResourceException as exc:
                raise _api_error(self, what, exc) from exc
        raise ConnectionFailed(f"Proxmox VE: no node's API answers ({', '.join(tried)}) to {what}; check that a node is up")

    def _current(self) -> tuple[Api, str]:
        with self._lock:
            if self._api is not None:
                return self._api, self._url
            failures: dict[str, str] = {}
            for url in self.urls:
                try:
                    self._api, self._url = self._login(url), url
                    return self._api, url
                except ConnectionFailed as exc:
                    failures[url] = getattr(exc, "reason", str(exc))
            reasons = set(failures.values())
            said = f"{', '.join(failures)}: {reasons.pop()}" if len(reasons) == 1 else "; ".join(f"{u}: {r}" for u, r in failures.items())
            raise ConnectionFailed(f"Proxmox VE: no node's API answers ({said}); check proxmox.url and that a node is up")

    def _drop(self, url: str) -> None:
        """That node stopped answering: the next call logs in to the one after it."""
        with self._lock:
            if self._url == url:
                self._api = None
                self.urls = [u for u in self.urls if u != url] + [url]

    def _login(self, url: str) -> Api:
        cfg = self.config
        session = ProxmoxHttpSession()
        configure_session(session, cfg.tls, f"Proxmox VE {url}")
        verify = requests_verify(cfg.tls)
        base = f"{url}/api2/json"
        try:
            if cfg.token is not None:
                user, name = cfg.token.split("!", 1)
                session.auth = ProxmoxHTTPApiTokenAuth(user, name, _plain(cfg.token_secret), verify_ssl=verify, timeout=cfg.timeout)
                session.get(base + "/version").raise_for_status()  # the token, checked now: one line if refused
            else:
                login = requests.Session()  # a plain one for the ticket request; the same trust
                configure_session(login, cfg.tls, f"Proxmox VE {url}")
                session.auth = _TicketAuth(login, cfg.user, _plain(cfg.password), base, verify, cfg.timeout)
        except requests.exceptions.SSLError as exc:
            raise _tls_error(url, exc) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            failed = ConnectionFailed(f"Proxmox VE {url}: cannot connect ({_reason(exc)})")
            failed.reason = _reason(exc)  # type: ignore[attr-defined]
            raise failed from exc
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status == 401:
                raise AuthenticationFailed(
                    f"Proxmox VE {url}: API token {cfg.token} refused ({exc.response.reason if exc.response is not None else 401}); "
                    "check proxmox.token and token_secret (Datacenter > Permissions > API Tokens)"
                ) from exc
            raise ProxmoxError(f"Proxmox VE {url}: {exc}") from exc
        return ProxmoxResource(base_url=base, session=session, serializer=JsonSerializer())


class _TicketAuth(ProxmoxHTTPAuth):  # type: ignore[misc]
    """proxmoxer's ticket auth (renewal, the CSRF token on writes), its ticket asked for through our session: the
    password goes only to a peer the TLS settings trust."""

    def __init__(self, session: requests.Session, user: str, password: str, base: str, verify: bool | str, timeout: float) -> None:
        self._login_session = session
        super().__init__(user, password, base_url=base, verify_ssl=verify, timeout=timeout)

    def _get_new_tokens(self, password: str | None = None, otp: str | None = None, **_: object) -> None:
        secret = password if password is not None else str(getattr(self, "pve_auth_ticket", ""))
        answer = self._login_session.post(
            self.base_url + "/access/ticket",
            data={"username": self.username, "password": secret},
            timeout=self.timeout,
            verify=self.verify_ssl,  # on the request itself: REQUESTS_CA_BUNDLE would override the session's
        )
        data = answer.json().get("data") if answer.headers.get("content-type", "").startswith("application/json") else None
        if answer.status_code == 401 or not data:
            where = self.base_url.removesuffix("/api2/json")
            raise AuthenticationFailed(
                f"Proxmox VE {where}: user {self.username} refused ({answer.reason or answer.status_code}); "
                "check proxmox.user (user@realm) and proxmox.password"
            )
        self.birth_time = time.monotonic()
        self.pve_auth_ticket = data["ticket"]
        self.csrf_prevention_token = data["CSRFPreventionToken"]


def _plain(secret: object) -> str:
    """A resolved secret's text (the config's secrets are resolved on load)."""
    return secret.get_secret_value() if isinstance(secret, SecretStr) else ""


def _base(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url if "://" in url else f"https://{url}")
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 8006}"


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


def _tls_error(url: str, exc: BaseException) -> TLSVerificationFailed:
    if "fingerprint" in str(exc).lower():
        return TLSVerificationFailed(
            f"Proxmox VE {url}: its certificate does not match the pinned tls.thumbprint; if it was renewed on purpose, pin the new one"
        )
    return TLSVerificationFailed(
        f'Proxmox VE {url}: certificate not trusted; give tls = {{ ca_file = ... }} or pin it: tls = {{ thumbprint = "<sha256>" }}'
    )


def _api_error(client: Client, what: str, exc: ResourceException) -> EndpointError:
    """PVE says why in the status line (proxmoxer's ``content``): one line, with what was asked."""
    reason = str(exc.content or exc.status_message or "").strip() or f"HTTP {exc.status_code}"
    if exc.errors:
        reason += " (" + "; ".join(f"{k}: {v}" for k, v in exc.errors.items()) + ")"
    if exc.status_code == 401:
        return AuthenticationFailed(f"{client.where}: {what}: {reason}; check proxmox.user and its password or token")
    if exc.status_code == 403:
        return ProxmoxError(f"{client.where}: {what}: permission denied ({reason}); give the user or token the privilege")
    return ProxmoxError(f"{client.where}: {what}: {reason}")

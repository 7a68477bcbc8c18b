"""A Proxmox VE cluster's API through proxmoxer (the field's client: resource paths, ticket and token auth, the
CSRF token on writes, PVE's errors), over a requests session of ours that carries the TLS trust the config gives
(a pinned thumbprint too, which proxmoxer's own ticket request would not check: the ticket is asked for through
this session instead).

Any node answers for the whole cluster, so the client keeps one node's API and moves to the next server's
``proxmox_url`` when it stops answering (a node going down in a down, the first node still booting in an up).
A TLS handshake cut short (a node shutting down, pveproxy restarting, a proxy whose node is off) is such a
connection error; only a certificate that is not trusted is a trust error. Every node has its own certificate:
with a pinned thumbprint, the other nodes are pinned by what the pinned node says of them (proxmox.pins).
Errors are translated here, once, into the documented tree (``raise ... from exc``): one line each."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from typing import Any, TypeVar

import requests
from proxmoxer.backends.https import JsonSerializer, ProxmoxHTTPApiTokenAuth, ProxmoxHTTPAuth, ProxmoxHttpSession
from proxmoxer.core import ProxmoxResource, ResourceException

from labswitch.config import TLS, Proxmox
from labswitch.config.secrets import plain
from labswitch.errors import AuthenticationFailed, ConnectionFailed, EndpointError, ProxmoxError, TLSVerificationFailed
from labswitch.proxmox.pins import Pins
from labswitch.tls import configure_session, requests_verify

T = TypeVar("T")
HEAD_START = 1.0  # seconds the first node is given to answer before every node is tried at once
OUTAGE = 5.0  # seconds calls fail at once after no node answered (at most proxmox.timeout): then all are tried again
log = logging.getLogger(__name__)
Api = Any  # a proxmoxer ProxmoxResource: api.nodes("pve1").qemu(100).status.current.get()


class Client:
    """One cluster's API; thread-safe (a run's steps call it from several workers)."""

    def __init__(self, config: Proxmox, node_urls: Sequence[str] | Mapping[str, str] = (), pins: Pins | None = None) -> None:
        """``node_urls``: the other nodes' APIs (servers' proxmox_url), as a list or as url -> node name (needed to pin
        each node's own certificate); ``pins``: where the nodes' fingerprints are kept (none: learned per process)."""
        self.config = config
        named = node_urls if isinstance(node_urls, Mapping) else dict.fromkeys(node_urls, "")
        self.nodes = {_base(u): n for u, n in named.items()}  # url -> node name ("" unknown)
        self.urls = list(dict.fromkeys([config.https_url, *self.nodes]))
        self.pins = pins or Pins(None)
        self._lock = threading.Lock()
        self._api: Api | None = None
        self._url = ""
        self._outage: tuple[float, str] | None = None  # no node answered: (until when calls fail at once, why)

    @property
    def where(self) -> str:
        return f"Proxmox VE {self._url or self.urls[0]}"

    def call(self, what: str, fn: Callable[[Api], T]) -> T:
        """``fn(api)`` on the node in use; when that node does not answer, on the next one. ``what``: the call in a
        person's words, for the one-line error ("start VM 100")."""
        for _ in range(len(self.urls)):
            api, url = self._current()
            try:
                return fn(api)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if _untrusted(exc):
                    raise self._tls_error(url, exc) from exc
                self._drop(url, _reason(exc))
            except ResourceException as exc:
                raise _api_error(self, what, exc) from exc
        raise ConnectionFailed(f"Proxmox VE: no node's API answers to {what}; check that a node is up")

    def _current(self) -> tuple[Api, str]:
        """The node in use, or a login to the first node that answers: the first in the list is given a head start,
        then every node is tried at once, so that nodes that do not answer cost proxmox.timeout once, not each. While
        no node answers, calls fail at once for a while (OUTAGE) instead of each waiting out the timeout again."""
        with self._lock:
            if self._api is not None:
                return self._api, self._url
            if self._outage is not None and time.monotonic() < self._outage[0]:
                raise ConnectionFailed(self._outage[1])
            failures: dict[str, str] = {}
            untrusted: dict[str, TLSVerificationFailed] = {}
            pool = ThreadPoolExecutor(max_workers=len(self.urls), thread_name_prefix="pve-login")
            try:
                futures = {pool.submit(self._login, self.urls[0]): self.urls[0]}
                done, _ = wait(futures, timeout=HEAD_START)
                if not any(f.exception() is None for f in done):
                    futures.update({pool.submit(self._login, url): url for url in self.urls[1:]})
                for future in as_completed(futures):
                    url = futures[future]
                    try:
                        self._api, self._url = future.result(), url
                    except _Unreachable as exc:
                        failures[url] = exc.reason
                        continue
                    except TLSVerificationFailed as exc:  # another node may still be trusted: said if none answers
                        untrusted[url] = exc
                        continue
                    self._outage = None
                    return self._api, url
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
            if untrusted:  # the first node's in the list (the one proxmox.url names first)
                raise next(untrusted[u] for u in self.urls if u in untrusted)
            by_reason: dict[str, list[str]] = {}
            for url, reason in failures.items():
                by_reason.setdefault(reason, []).append(self.nodes.get(url) or url)
            said = "; ".join(f"{', '.join(sorted(names))}: {reason}" for reason, names in by_reason.items())
            message = f"Proxmox VE: no node's API answers ({said}); the cluster's state is unknown until one does"
            self._outage = (time.monotonic() + min(OUTAGE, self.config.timeout), message)
            raise ConnectionFailed(message)

    def _name(self, url: str) -> str:
        """A node's API in a person's words: "pve2 (https://10.0.0.12:8006)", or its URL when no server names it."""
        node = self.nodes.get(url)
        return f"{node} ({url})" if node else url

    def _drop(self, url: str, reason: str) -> None:
        """That node stopped answering: the next call logs in to the one after it."""
        log.info("Proxmox VE %s stopped answering (%s): trying the other nodes", self._name(url), reason)
        with self._lock:
            if self._url == url:
                self._api = None
                self.urls = [u for u in self.urls if u != url] + [url]

    def _login(self, url: str) -> Api:
        cfg = self.config
        tls = self._trust(url)
        session = ProxmoxHttpSession()
        configure_session(session, tls, f"Proxmox VE {url}")
        verify = requests_verify(tls)
        base = f"{url}/api2/json"
        try:
            if cfg.token is not None:
                user, name = cfg.token.split("!", 1)
                session.auth = ProxmoxHTTPApiTokenAuth(user, name, plain(cfg.token_secret), verify_ssl=verify, timeout=cfg.timeout)
                session.get(base + "/version").raise_for_status()  # the token, checked now: one line if refused
            else:
                login = requests.Session()  # a plain one for the ticket request; the same trust
                configure_session(login, tls, f"Proxmox VE {url}")
                session.auth = _TicketAuth(login, cfg.user, plain(cfg.password), base, verify, cfg.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            if _untrusted(exc):
                raise self._tls_error(url, exc) from exc
            raise _Unreachable(url, _reason(exc)) from exc
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status == 401:
                raise AuthenticationFailed(
                    f"Proxmox VE {url}: API token {cfg.token} refused ({exc.response.reason if exc.response is not None else 401}); "
                    "check proxmox.token and token_secret (Datacenter > Permissions > API Tokens)"
                ) from exc
            raise ProxmoxError(f"Proxmox VE {url}: {exc}") from exc
        api = ProxmoxResource(base_url=base, session=session, serializer=JsonSerializer())
        if cfg.tls.thumbprint:
            self._learn(api, url)
        return api

    def _trust(self, url: str) -> TLS:
        """The TLS trust for one node's API: the config's, but with a pinned thumbprint, which names the certificate of
        the node ``url`` names only: every other node is pinned by the fingerprint the cluster gave for it."""
        cfg = self.config
        if not cfg.tls.thumbprint or url == cfg.https_url:
            return cfg.tls
        node = self.nodes.get(url, "")
        pinned = self.pins.get(node) if node else None
        if pinned is None:
            raise TLSVerificationFailed(
                f"Proxmox VE {url}{f' (node {node})' if node else ''}: no fingerprint known for its own certificate yet (each node "
                f"has its own; labswitch reads them from {cfg.https_url} while it answers: run `labswitch status` then); "
                'or trust the cluster CA: tls = { ca_file = "pve-root-ca.pem" } (/etc/pve/pve-root-ca.pem)'
            )
        return TLS(thumbprint=pinned[0])

    def _learn(self, api: Api, url: str) -> None:
        """Every node's ssl_fingerprint, from a node this client trusts: kept for the next time (proxmox.pins)."""
        try:
            found = api.nodes.get() or []
        except (requests.RequestException, ResourceException):
            return  # an old or limited answer: the pins stay as they were
        source = self.nodes.get(url) or url
        self.pins.learn({str(n["node"]): str(n["ssl_fingerprint"]) for n in found if n.get("ssl_fingerprint")}, source)

    def _tls_error(self, url: str, exc: BaseException) -> TLSVerificationFailed:
        node = self.nodes.get(url, "")
        pinned = self.pins.get(node) if node and url != self.config.https_url else None
        if pinned is not None:
            got = _got_fingerprint(exc)
            return TLSVerificationFailed(
                f"Proxmox VE {url} (node {node}): its certificate{f' SHA-256 {got}' if got else ''} is not the one the cluster "
                f"gives for {node} ({pinned[0]}, {pinned[1]}); compare with `pvenode cert info` on {node}"
            )
        return _tls_error(url, exc)


class _Unreachable(ConnectionFailed):
    """One node's API does not answer (the client tries the next): why, in a word or two."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Proxmox VE {url}: cannot connect ({reason})")
        self.reason = reason


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


def _untrusted(exc: BaseException) -> bool:
    """A certificate not trusted (a trust error), as against a handshake cut short (EOF, a reset: a connection error,
    the next node is tried)."""
    if not isinstance(exc, requests.exceptions.SSLError):
        return False
    text = str(exc).lower()
    return any(m in text for m in ("certificate verify failed", "fingerprint", "hostname mismatch", "doesn't match", "certificate_verify"))


def _got_fingerprint(exc: BaseException) -> str:
    """The peer's SHA-256 from urllib3's 'Fingerprints did not match. Expected "...", got "..."'."""
    found = re.search(r'got "([0-9a-f:]+)"', str(exc), re.IGNORECASE)
    return found.group(1).replace(":", "").lower() if found else ""


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
    if exc.status_code in (595, 596):  # pveproxy could not reach the node it proxies to (pve-http-server)
        return ConnectionFailed(
            f"{client.where}: {what}: its node does not answer through the cluster ({reason}): off or cut off; its BMC says which"
        )
    if exc.status_code == 403:
        return ProxmoxError(f"{client.where}: {what}: permission denied ({reason}); give the user or token the privilege")
    return ProxmoxError(f"{client.where}: {what}: {reason}")

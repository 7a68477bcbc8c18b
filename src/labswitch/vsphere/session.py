"""Log in to vCenter with pyVmomi and translate what can go wrong into labswitch errors."""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from labswitch import tls
from labswitch.config import TLS, ESXi, Server, VCenter
from labswitch.errors import AuthenticationFailed, ConnectionFailed, EndpointError, TLSVerificationFailed
from labswitch.snapshot import Snapshot
from labswitch.vsphere import faults, inventory
from labswitch.vsphere.actions import Actions
from labswitch.vsphere.tags import TagClient

log = logging.getLogger(__name__)


class VSphere:
    """A logged-in vCenter: the service content plus what reads the inventory."""

    def __init__(self, si: vim.ServiceInstance, config: VCenter) -> None:
        self.si = si
        self.content = si.RetrieveContent()
        self.config = config
        self.where = f"vCenter {config.https_url}"
        self._relogin_lock = threading.Lock()

    def actions(self) -> Actions:
        """The power cycle's calls through this vCenter (a session it lost is logged in again: relogin)."""
        return Actions(self.si, self.content, self.config.timeout, relogin=self.relogin)

    def run_port(self, cancel: Any) -> None:
        """The Runner makes a run's port from actions() (and its hosts' own, for steps through them)."""
        return None

    def refusals(self, plan: Any, snap: Snapshot) -> list[str]:
        """A down's cluster changes the vCenter user may not make (vsphere.privileges), before anything changes."""
        from labswitch.vsphere import privileges

        return privileges.refusals(self.lacking, plan, snap)

    def relogin(self) -> None:
        """vCenter no longer has this session (vpxd restarted): a new one on the same connection, so every object
        bound to it works again. Once, however many calls found it gone at the same moment."""
        manager: Any = self.content.sessionManager
        with self._relogin_lock:
            try:
                if manager.currentSession is not None:
                    return  # another call logged in again meanwhile
            except vim.fault.NotAuthenticated:
                pass
            except (vmodl.MethodFault, OSError, http.client.HTTPException) as exc:
                raise ConnectionFailed(f"{self.where}: no answer while logging in again ({type(exc).__name__})") from exc
            password = self.config.password.get_secret_value() if isinstance(self.config.password, SecretStr) else ""
            try:
                manager.Login(userName=self.config.user, password=password)
            except vim.fault.InvalidLogin as exc:
                raise AuthenticationFailed(f"{self.where}: logging in again was refused; check vcenter.password") from exc
            except (vmodl.MethodFault, OSError, http.client.HTTPException) as exc:
                raise ConnectionFailed(f"{self.where}: logging in again failed ({type(exc).__name__}); run the same command again") from exc
            log.warning("%s: vCenter had lost the session (did vpxd restart?); logged in again", self.where)

    def hosts_and_vms(self) -> Snapshot:
        """Hosts, clusters and VMs in one read, without tags."""
        return inventory.read(self.content, self.where)

    def audit_snapshot(self) -> Snapshot:
        """Hosts and VMs with what the audits read (disks, CBT, snapshots, options, SGX); no tags."""
        return inventory.read(self.content, self.where, audit=True)

    def lacking(self, needed: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
        """The (entity, privilege) pairs this session lacks, in one call. ``needed``: "vcenter" (the root
        folder) or a cluster moid -> privilege ids."""
        entities = {key: self.content.rootFolder if key == "vcenter" else vim.ClusterComputeResource(key, self.si._stub) for key in needed}
        by_moid = {obj._moId: key for key, obj in entities.items()}
        privs = sorted({p for ps in needed.values() for p in ps})
        content: Any = self.content
        try:
            session = content.sessionManager.currentSession.key
            found = content.authorizationManager.HasPrivilegeOnEntities(entity=list(entities.values()), sessionId=session, privId=privs)
        except vmodl.MethodFault as exc:
            raise faults.error(f"{self.where}: privileges could not be checked", exc) from exc
        return {
            (by_moid[e.entity._moId], a.privId)
            for e in found
            for a in e.privAvailability
            if not a.isGranted and a.privId in set(needed.get(by_moid.get(e.entity._moId, ""), ()))
        }

    def snapshot(self, tags_required: bool = False) -> Snapshot:
        """Hosts and VMs in a fixed number of round trips, with their tags.

        Without ``tags_required`` a tagging API failure is a warning and a note.
        """
        snap = inventory.read(self.content, self.where)
        try:
            with TagClient(self.config) as tags:
                by_moid = tags.vm_tags()
        except EndpointError as exc:
            if tags_required:
                raise
            log.warning("%s; VM tags are not shown", exc)
            return inventory.with_tags(snap, {}, note=str(exc))
        return inventory.with_tags(snap, by_moid)


@dataclass(frozen=True)
class Login:
    """One vSphere API endpoint to log in to: vCenter, or an ESXi host directly."""

    url: str  # the SDK URL
    user: str
    password: SecretStr
    tls: TLS
    timeout: float
    where: str  # "vCenter https://..." or "host esx11 https://..."
    section: str  # the config's table for hints: "vcenter" or "esxi"
    up: str  # what must be up, for hints
    overridden: frozenset[str] = frozenset()  # "user", "password", "tls": set on the server itself (esxi_user, ...)
    server: str = ""  # the server whose own keys those are

    def key(self, what: str) -> str:
        """Where the config sets ``what`` (user, password, tls) for this login, for hints."""
        if what in self.overridden:
            return f"servers.esxi_{what} of {self.server}"
        return f"{self.section}.{what}"


def _resolved(secret: object) -> SecretStr:
    """A password as loaded: config.load resolves every secret reference to a SecretStr."""
    assert isinstance(secret, SecretStr), "secret references are resolved on load"
    return secret


def login_for_vcenter(config: VCenter) -> Login:
    return Login(
        config.https_url,
        config.user,
        _resolved(config.password),
        config.tls,
        config.timeout,
        f"vCenter {config.https_url}",
        "vcenter",
        "vCenter",
    )


def login_for_host(esxi: ESXi, server: Server) -> Login:
    """The host's own login: [esxi]'s, with what the server's esxi_user, esxi_password and esxi_tls override."""
    return Login(
        server.direct_url,
        server.esxi_user or esxi.user,
        _resolved(server.esxi_password if server.esxi_password is not None else esxi.password),
        server.esxi_tls or esxi.tls,
        esxi.timeout,
        f"host {server.name} {server.direct_url}",
        "esxi",
        "the host",
        frozenset(
            what
            for what, own in (("user", server.esxi_user), ("password", server.esxi_password), ("tls", server.esxi_tls))
            if own is not None
        ),
        server.name,
    )


def open_session(login: Login) -> Any:
    """A logged-in ServiceInstance; every failure one labswitch error naming the endpoint and the fix."""
    where = login.where
    parts = urlsplit(login.url)
    host, port = parts.hostname or "", parts.port or 443
    context = tls.ssl_context(login.tls, host, port, where, timeout=login.timeout)
    try:
        return SmartConnect(
            protocol=parts.scheme,
            host=host,
            port=port,
            path=parts.path or "/sdk",
            user=login.user,
            pwd=login.password.get_secret_value(),
            sslContext=context,
            httpConnectionTimeout=login.timeout,
        )
    except vim.fault.InvalidLogin as exc:
        raise AuthenticationFailed(
            f"{where}: login refused for user {login.user!r}; check {login.key('user')} and {login.key('password')}"
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise TLSVerificationFailed(
            f"{where}: certificate not trusted ({exc.verify_message}); "
            f"set {login.key('tls')} = {{ ca_file = ... }} or {{ thumbprint = ... }}"
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        reason = (
            "timed out"
            if isinstance(exc, socket.timeout | TimeoutError)
            else (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
        )
        url_key = "vcenter.url" if login.section == "vcenter" else "servers.esxi_url"
        raise ConnectionFailed(f"{where}: cannot connect: {reason}; check {url_key} and that {login.up} is up") from exc
    except vmodl.MethodFault as exc:
        raise faults.error(f"{where}: login failed", exc) from exc
    except Exception as exc:
        raise ConnectionFailed(f"{where}: no vSphere API answers ({exc}); check the URL and that {login.up} is up") from exc


def close_session(si: Any, where: str) -> None:
    try:
        Disconnect(si)
    except Exception:
        log.debug("logout from %s failed", where, exc_info=True)


@contextmanager
def connect(config: VCenter) -> Iterator[VSphere]:
    """A logged-in session, logged out on exit."""
    login = login_for_vcenter(config)
    si = open_session(login)
    try:
        yield VSphere(si, config)
    finally:
        close_session(si, login.where)

"""Log in to vCenter with pyVmomi and translate what can go wrong into labswitch errors."""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from labswitch import tls
from labswitch.config import VCenter
from labswitch.errors import AuthenticationFailed, ConnectionFailed, EndpointError, TLSVerificationFailed, VSphereError
from labswitch.snapshot import Snapshot
from labswitch.vsphere import inventory
from labswitch.vsphere.tags import TagClient

log = logging.getLogger(__name__)


class VSphere:
    """A logged-in vCenter: the service content plus what reads the inventory."""

    def __init__(self, si: vim.ServiceInstance, config: VCenter) -> None:
        self.si = si
        self.content = si.RetrieveContent()
        self.config = config
        self.where = f"vCenter {config.https_url}"

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
            raise VSphereError(f"{self.where}: privileges could not be checked: {exc.msg or type(exc).__name__}") from None
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


@contextmanager
def connect(config: VCenter) -> Iterator[VSphere]:
    """A logged-in session, logged out on exit."""
    where = f"vCenter {config.https_url}"
    parts = urlsplit(config.https_url)
    host, port = parts.hostname or "", parts.port or 443
    context = tls.ssl_context(config.tls, host, port, where, timeout=config.timeout)
    try:
        si = SmartConnect(
            protocol=parts.scheme,
            host=host,
            port=port,
            path=parts.path or "/sdk",
            user=config.user,
            pwd=config.password.get_secret_value(),  # type: ignore[union-attr]  # resolved on load
            sslContext=context,
            httpConnectionTimeout=config.timeout,
        )
    except vim.fault.InvalidLogin:
        raise AuthenticationFailed(f"{where}: login refused for user {config.user!r}; check vcenter.user and vcenter.password") from None
    except ssl.SSLCertVerificationError as exc:
        raise TLSVerificationFailed(
            f"{where}: certificate not trusted ({exc.verify_message}); set vcenter.tls = {{ ca_file = ... }} or {{ thumbprint = ... }}"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        reason = (
            "timed out"
            if isinstance(exc, socket.timeout | TimeoutError)
            else (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
        )
        raise ConnectionFailed(f"{where}: cannot connect: {reason}; check vcenter.url and that vCenter is up") from None
    except vmodl.MethodFault as exc:
        raise VSphereError(f"{where}: login failed: {exc.msg or type(exc).__name__}") from None
    try:
        yield VSphere(si, config)
    finally:
        try:
            Disconnect(si)
        except Exception:
            log.debug("logout from %s failed", where, exc_info=True)

"""Proxmox VE adapter: the cluster's API through proxmoxer (client), read in bulk into a Snapshot (inventory), and
the power cycle's port over it (port). A config with [proxmox] drives a Proxmox VE lab; see docs/proxmox.md."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from labswitch.cancel import Cancel
from labswitch.config import Config
from labswitch.errors import ConnectionFailed
from labswitch.journal import state_base
from labswitch.plan import Plan
from labswitch.proxmox import inventory, privileges
from labswitch.proxmox.client import Client
from labswitch.proxmox.pins import Pins
from labswitch.proxmox.port import ProxmoxPort
from labswitch.snapshot import Snapshot

__all__ = ["Client", "Proxmox", "ProxmoxPort", "client_for"]


def client_for(config: Config, without: str | None = None) -> Client:
    """The cluster's client: every node's own API (servers' proxmox_url, by node; but the server ``without``), the
    nodes' certificate fingerprints kept in the state directory per lab (proxmox.pins)."""
    assert config.proxmox is not None
    nodes = {s.proxmox_url: s.node or s.name for s in config.servers if s.proxmox_url and s.name != without}
    digest = hashlib.sha256(config.lab_id.encode()).hexdigest()[:12]
    return Client(config.proxmox, nodes, Pins(state_base(config.state_dir) / f"proxmox-nodes-{digest}.json"))


class Proxmox:
    """A Proxmox VE lab, as the use cases hold a logged-in vCenter: its snapshot, and its port for a run."""

    def __init__(self, config: Config) -> None:
        assert config.proxmox is not None
        self.config = config
        self.client = client_for(config)
        self._permissions: privileges.Permissions | None = None  # read once per session: its snapshot and its run's check

    def snapshot(self, tags_required: bool = False) -> Snapshot:
        """Nodes, guests (their tags from their configs), HA resources and Ceph: ``tags_required`` needs nothing more.
        No node answering (the whole cluster off) is a snapshot of nothing that says why: the BMCs still tell the
        nodes' power, an up powers them on, and plans their guests once the cluster answers."""
        try:
            snap = inventory.read(self.client)
        except ConnectionFailed as exc:
            return Snapshot((), (), notes=(f"{exc}; its nodes and guests are unknown until one answers",), platform="proxmox")
        perms = self.permissions()
        blind = privileges.blind_note(perms, self.who, len(snap.vms)) if perms is not None else None
        return replace(snap, notes=(*snap.notes, blind)) if blind else snap

    @property
    def who(self) -> str:
        """The user or API token labswitch acts as, in the API's words."""
        pve = self.config.proxmox
        assert pve is not None
        return f"API token {pve.token}" if pve.token else f"user {pve.user}"

    def permissions(self) -> privileges.Permissions | None:
        """The user's or token's effective privileges (GET /access/permissions), read once; None while no node answers."""
        if self._permissions is None:
            try:
                found = self.client.call("read its own permissions", lambda api: api.access.permissions.get())
            except ConnectionFailed:
                return None
            self._permissions = {str(path): dict(privs or {}) for path, privs in (found or {}).items()}
        return self._permissions

    def refusals(self, plan: Plan, snap: Snapshot | None = None) -> list[str]:
        """What the plan needs that the user or token may not do, before anything changes (none known while no node
        answers: an up of a cluster that is off is checked again once it answers)."""
        perms = self.permissions()
        return [] if perms is None else privileges.refusals(perms, plan, self.who)

    def actions(self) -> None:
        """No vCenter: the run's steps go through the Proxmox port (port())."""
        return None

    def port(self, cancel: Cancel) -> ProxmoxPort:
        return ProxmoxPort(self.client, cancel, self.config.policy.max_parallel)

    def run_port(self, cancel: Cancel) -> ProxmoxPort:
        """A run's steps go through the Proxmox port."""
        return self.port(cancel)

    def lacking(self, needed: Any) -> set[tuple[str, str]]:
        """vCenter's privileges do not apply; the API says what the user or token may not do, call by call."""
        return set()

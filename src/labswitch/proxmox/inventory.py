"""A Proxmox VE cluster read in bulk into the Snapshot the planner reasons about, in the lab's own words:
a node is a host ("node/pve1"), a guest a VM ("qemu/100", "lxc/101"), the cluster a cluster ("cluster/lab").

/cluster/status (quorum, nodes, their addresses) and /cluster/resources (every guest's node and status) are
one call each whatever the size of the cluster; a guest's start-at-boot flag and startup order are in its own
config, read for the guests of online nodes in parallel. HA resources and the Ceph flags are one call each.

A guest's ``startup: order=N,up=S`` and ``onboot`` are what Proxmox itself uses at boot: here they become the
guest's AutoStart (its place in the up's waves, the pause after it), ``tags`` (";"-separated) its tags."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from labswitch.errors import ProxmoxError
from labswitch.proxmox.client import Client
from labswitch.snapshot import AutoStart, ClusterInfo, HostInfo, Snapshot, Startup, VMInfo

NODE = "node/"
CLUSTER = "cluster/"
POWER = {"running": "poweredOn", "stopped": "poweredOff", "paused": "suspended"}  # anything else: unknown


def node_key(name: str) -> str:
    return f"{NODE}{name}"


def read(client: Client) -> Snapshot:
    status: list[dict[str, Any]] = client.call("read the cluster's status", lambda api: api.cluster.status.get())
    resources: list[dict[str, Any]] = client.call("list the guests", lambda api: api.cluster.resources.get(type="vm"))
    cluster = next((e for e in status if e.get("type") == "cluster"), None)
    members = [e for e in status if e.get("type") == "node"]
    cluster_moid = f"{CLUSTER}{cluster['name']}" if cluster else None
    hosts = tuple(
        HostInfo(
            node_key(str(n["name"])),
            str(n["name"]),
            str(cluster["name"]) if cluster else None,
            "connected" if n.get("online") else "notResponding",
            False,
            "poweredOn" if n.get("online") else "unknown",
            cluster_moid=cluster_moid,
            address=n.get("ip"),
        )
        for n in members
    )
    online = {h.name for h in hosts if h.connection_state == "connected"}
    guests = [r for r in resources if not r.get("template")]
    configs = _configs(client, [g for g in guests if g.get("node") in online])
    mhz = _node_mhz(client, sorted(online))
    vms = tuple(sorted((_vm(g, configs.get(str(g["id"])), mhz.get(str(g.get("node")))) for g in guests), key=lambda v: v.name))
    clusters: tuple[ClusterInfo, ...] = ()
    notes: list[str] = []
    if cluster is not None:
        clusters = (_cluster(client, cluster, len(members), notes),)
    return Snapshot(hosts=hosts, vms=vms, clusters=clusters, notes=tuple(notes), platform="proxmox")


def _configs(client: Client, guests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each guest's config (onboot, startup, tags), read in parallel: id -> config."""

    def one(g: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        path = f"{g['type']} {g['vmid']}"
        conf = client.call(f"read {path}'s config", lambda api: api.nodes(g["node"])(g["type"])(g["vmid"]).config.get())
        return str(g["id"]), conf or {}

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(guests)))) as pool:
        return dict(pool.map(one, guests))


def _node_mhz(client: Client, nodes: list[str]) -> dict[str, float]:
    """Each online node's CPU clock (its status' cpuinfo.mhz): a guest's load in MHz, for idle auto-down."""

    def one(node: str) -> tuple[str, float]:
        status = client.call(f"read node {node}'s status", lambda api: api.nodes(node).status.get()) or {}
        try:
            return node, float((status.get("cpuinfo") or {}).get("mhz") or 0)
        except (TypeError, ValueError):
            return node, 0.0

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(nodes)))) as pool:
        return dict(pool.map(one, nodes))


def _vm(g: dict[str, Any], read: dict[str, Any] | None, node_mhz: float | None = None) -> VMInfo:
    conf = read or {}
    running = g.get("status") == "running"
    load = float(g.get("cpu") or 0) * float(g.get("maxcpu") or 0) * (node_mhz or 0)  # cpu: the share of its vCPUs in use
    tags = tuple(t for t in re.split(r"[;, ]", str(conf.get("tags", g.get("tags", "")) or "")) if t)
    return VMInfo(
        moid=str(g["id"]),
        name=str(g.get("name") or g["id"]),
        host_moid=node_key(str(g["node"])),
        power_state=POWER.get(str(g.get("status")), "unknown"),
        tools_running=True,  # Proxmox shuts any guest down (ACPI for a VM, the container's init for LXC): no agent needed
        tags=tags,
        autostart=autostart(conf),
        startup=startup(conf) if read is not None else None,
        cpu_mhz=round(load) if running and node_mhz else None,
    )


def autostart(conf: dict[str, Any]) -> AutoStart | None:
    """A guest's place at boot: ``onboot`` with ``startup: order=N,up=S`` (PVE's own rules: no order starts after every
    ordered guest); None when it does not start at boot."""
    if not int(conf.get("onboot", 0) or 0):
        return None
    order = startup(conf)
    return AutoStart(order.order if order.order is not None else 1 << 16, order.up or 0.0, False)


def startup(conf: dict[str, Any]) -> Startup:
    """``startup: [order=]N,up=S,down=S`` as PVE parses it (pve-common's pve-startup-order format: a bare number is
    the order); what does not parse is left unset, as PVE would refuse to store it."""
    fields: dict[str, str] = {}
    for part in str(conf.get("startup", "") or "").split(","):
        key, _, value = part.strip().rpartition("=")
        fields[key or "order"] = value.strip()
    number = re.compile(r"\d+(\.\d+)?")
    order = fields.get("order", "")
    up, down = fields.get("up", ""), fields.get("down", "")
    return Startup(
        int(order) if order.isdigit() else None,
        float(up) if number.fullmatch(up) else None,
        float(down) if number.fullmatch(down) else None,
    )


def fencing(client: Client) -> str | None:
    """HA's armed state where the cluster can disarm HA (pve-ha-manager 5.1.3+: /cluster/ha/status/current has a
    "fencing" entry, its "armed-state"); None on an older cluster."""
    found = client.call("read HA's status", lambda api: api.cluster.ha.status.current.get()) or []
    entry = next((e for e in found if e.get("type") == "fencing"), None)
    return str(entry.get("armed-state") or "armed") if entry is not None else None


def _cluster(client: Client, cluster: dict[str, Any], nodes: int, notes: list[str]) -> ClusterInfo:
    ha = client.call("list the HA resources", lambda api: api.cluster.ha.resources.get()) or []
    flags: tuple[str, ...] = ()
    monitors: tuple[str, ...] = ()
    ceph = False
    try:
        found = client.call("read the Ceph flags", lambda api: api.cluster.ceph.flags.get())
        ceph = True
        flags = tuple(sorted(str(f["name"]) for f in found if int(f.get("value", 0) or 0)))
        status = client.call("read Ceph's status", lambda api: api.cluster.ceph.status.get()) or {}
        monitors = tuple(sorted(str(m["name"]) for m in (status.get("monmap") or {}).get("mons") or [] if m.get("name")))
    except ProxmoxError as exc:
        if "not installed" not in str(exc) and "not initialized" not in str(exc):
            notes.append(f"Ceph's flags not read ({exc}); its flags are left as they are")
    return ClusterInfo(
        moid=f"{CLUSTER}{cluster['name']}",
        name=str(cluster["name"]),
        ha=bool(ha),
        ha_fencing=fencing(client) if ha else None,
        ceph=ceph,
        ceph_flags=flags,
        ceph_monitors=monitors,
        ha_resources=tuple((str(r["sid"]), str(r.get("state", "started"))) for r in ha),
        votes=int(cluster.get("nodes") or nodes),
        quorate=bool(cluster.get("quorate", 1)),
    )

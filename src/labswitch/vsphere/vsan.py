"""vSAN's cluster power system (vSphere 7.0 U3 and later), through pyVmomi's vSAN bindings.

vCenter serves the vSAN API on its own endpoint (``/vsanHealth``) with the same session: the
stub is the vCenter stub's host, TLS context, timeout and session cookie (as vsanapiutils builds
it). The tasks it starts are vCenter tasks, waited on through vCenter's change feed.
"""

from __future__ import annotations

from typing import Any

from pyVmomi import SoapStubAdapter, vim

PATH = "/vsanHealth"
VERSION = "vsan.version.version18"  # vSAN 7.0 U3: VsanClusterPowerSystem
SYSTEM = "vsan-cluster-power-system"
POWERED_OFF = "clusterPoweredOff"
POWERED_ON = "clusterPoweredOn"


def power_system(vc_stub: Any) -> Any:
    """The VsanClusterPowerSystem on the vSAN endpoint of the vCenter ``vc_stub`` is logged in to."""
    host, _, port = vc_stub.host.rpartition(":")
    stub = SoapStubAdapter(
        host=host.strip("[]"),
        port=int(port),
        path=PATH,
        version=VERSION,
        sslContext=vc_stub.schemeArgs.get("context"),
        httpConnectionTimeout=vc_stub.schemeArgs.get("timeout"),
    )
    stub.cookie = vc_stub.cookie
    return vim.cluster.VsanClusterPowerSystem(SYSTEM, stub)


def power_status(vc_stub: Any, cluster: str) -> str:
    """The cluster's current vSAN power status (clusterPoweredOn, clusterPoweredOff, ...)."""
    context = power_system(vc_stub).QueryClusterPowerContext(cluster=vim.ClusterComputeResource(cluster, vc_stub))
    return str(context.currentClusterPowerStatus)


def power_action(vc_stub: Any, cluster: str, target: str) -> Any:
    """Start the cluster power action to ``target`` (POWERED_OFF or POWERED_ON): its vCenter task."""
    spec = vim.cluster.PerformClusterPowerActionSpec(targetPowerStatus=target)
    if target == POWERED_OFF:
        spec.powerOffReason = "Scheduled maintenance"
    task = power_system(vc_stub).PerformClusterPowerAction(cluster=vim.ClusterComputeResource(cluster, vc_stub), spec=spec)
    return vim.Task(task._moId, vc_stub)

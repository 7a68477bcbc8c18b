"""The lab's platform, for the use cases every platform shares (status, plan, down, up): vSphere (vCenter, or
standalone ESXi hosts) or a Proxmox VE cluster, by what the config has."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from labswitch import vsphere
from labswitch.config import Config

if TYPE_CHECKING:
    from typing import TypeAlias

    from labswitch.proxmox import Proxmox

    Lab: TypeAlias = vsphere.VSphere | vsphere.Standalone | Proxmox


@contextlib.contextmanager
def lab(config: Config) -> Iterator[Lab]:
    """vCenter with [vcenter], a Proxmox VE cluster with [proxmox], else the standalone ESXi hosts of [esxi]."""
    if config.proxmox is not None:
        from labswitch.proxmox import Proxmox

        yield Proxmox(config)
        return
    with vsphere.lab(config) as vc:
        yield vc


def need_vsphere(config: Config, what: str) -> None:
    """What only vSphere has (audits, fixes, the vCenter appliance): one line for a Proxmox VE lab, nothing contacted."""
    config.need_vsphere(what)

"""vSphere adapter: a pyVmomi session, bulk inventory through the PropertyCollector, tags over REST;
or, in a lab without vCenter, each host through its own API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from labswitch.config import Config
from labswitch.vsphere.session import VSphere, connect
from labswitch.vsphere.standalone import Standalone

__all__ = ["Standalone", "VSphere", "connect", "lab"]


@contextlib.contextmanager
def lab(config: Config) -> Iterator[VSphere | Standalone]:
    """The lab's vSphere: vCenter when the config has [vcenter], else its standalone hosts."""
    if config.vcenter is None:
        yield Standalone(config)
        return
    with connect(config.vcenter) as vc:
        yield vc

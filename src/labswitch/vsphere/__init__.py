"""vSphere adapter: a pyVmomi session, bulk inventory through the PropertyCollector, tags over REST."""

from labswitch.vsphere.session import VSphere, connect

__all__ = ["VSphere", "connect"]

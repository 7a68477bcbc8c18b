"""labswitch: switch a VMware vSphere lab on and off on demand, and keep it healthy."""

__version__ = "0.1.0"

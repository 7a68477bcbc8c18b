"""Configuration: TOML -> validated models; secret references resolved on load, never printed."""

from labswitch.config.load import DEFAULT_PATH, load, parse
from labswitch.config.models import (
    BMC,
    TLS,
    Appliance,
    Config,
    Energy,
    ESXi,
    Group,
    Plug,
    Policy,
    Serve,
    Server,
    Startup,
    Ups,
    VCenter,
    WakeOnLan,
    Wave,
)

__all__ = [
    "BMC",
    "DEFAULT_PATH",
    "TLS",
    "Appliance",
    "Config",
    "ESXi",
    "Energy",
    "Group",
    "Plug",
    "Policy",
    "Serve",
    "Server",
    "Startup",
    "Ups",
    "VCenter",
    "WakeOnLan",
    "Wave",
    "load",
    "parse",
]

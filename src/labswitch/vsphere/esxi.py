"""Talking to an ESXi host directly: the last steps of a whole-lab down and the first of its up, when
vCenter runs on that host and is off (or about to be).

A host names its objects its own way (VM ids are numbers, the host is ha-host), so the plan names a
VM by its instance UUID ("uuid:<config.instanceUuid>"), the same through vCenter and through the
host, and the host port translates. It connects on first use and waits, bounded, for a host that is
still booting to answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyVmomi import vim

from labswitch.cancel import Cancel
from labswitch.config import VCenter
from labswitch.errors import AuthenticationFailed, ConnectionFailed, EndpointError, TLSVerificationFailed, VSphereError
from labswitch.snapshot import UUID, vm_key
from labswitch.vsphere.actions import Actions
from labswitch.vsphere.inventory import retrieve
from labswitch.vsphere.port import VSpherePort
from labswitch.vsphere.session import Login, close_session, login_for_vcenter, open_session
from labswitch.vsphere.tags import TagClient

RETRY = 2.0  # seconds between attempts to reach a booting host or vCenter


def reach(login: Login, timeout: float, cancel: Cancel) -> Any:
    """A session as soon as the endpoint answers, within ``timeout``; a wrong password or an untrusted
    certificate fails at once (waiting would not change it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_session(login)
        except ConnectionFailed as exc:
            if time.monotonic() + RETRY > deadline:
                raise ConnectionFailed(f"{exc} (no answer for {timeout:.0f}s)") from exc
        cancel.sleep(RETRY)


class Unreachable:
    """The port of a vCenter that is not there (the first part of a whole-lab up; a lab without vCenter):
    every call fails; a wait sees nothing happen (it only pauses, as a BMC poll's hint would)."""

    def __init__(self, reason: str, cancel: Cancel) -> None:
        self.reason = reason
        self.cancel = cancel

    def wait(self, objects: Sequence[str], condition: str, timeout: float, *args: Any, **kwargs: Any) -> set[str]:
        self.cancel.sleep(timeout)
        return set()

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise VSphereError(self.reason)

        return fail


class HostPort:
    """A LabPort over one host's own API. VM names are "uuid:..." keys; host steps act on the host itself."""

    def __init__(self, login: Login, vms: Mapping[str, set[str]], max_parallel: int, cancel: Cancel, connect_timeout: float) -> None:
        """``vms``: each VM (by key) the run will wait on through this host, with its conditions."""
        self.login = login
        self.where = login.where
        self.cancel = cancel
        self._watch = dict(vms)
        self._max_parallel = max_parallel
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._si: Any = None
        self._inner: VSpherePort | None = None
        self._ids: dict[str, str] = {}  # key -> the host's moid
        self._keys: dict[str, str] = {}
        self._host = ""

    def _port(self) -> VSpherePort:
        with self._lock:
            if self._inner is None:
                self._si = reach(self.login, self._connect_timeout, self.cancel)
                content = self._si.RetrieveContent()
                objects = dict(retrieve(content, {vim.VirtualMachine: ["config.instanceUuid"], vim.HostSystem: ["name"]}))
                for (kind, moid), props in objects.items():
                    if kind is vim.VirtualMachine and props.get("config.instanceUuid"):
                        self._ids[vm_key(props["config.instanceUuid"])] = moid
                    elif kind is vim.HostSystem:
                        self._host = moid
                self._keys = {moid: key for key, moid in self._ids.items()}
                watched = {self._ids[k]: c for k, c in self._watch.items() if k in self._ids}
                actions = Actions(self._si, content, self.login.timeout, self.cancel)
                self._inner = VSpherePort(actions, watched, {}, self._max_parallel, self.cancel)
            return self._inner

    def _vm(self, key: str) -> str:
        self._port()
        if key not in self._ids:
            raise VSphereError(f"{self.where}: no VM with instance UUID {key.removeprefix(UUID)} on this host")
        return self._ids[key]

    def _by_key(self, outcome: Mapping[str, str | None]) -> dict[str, str | None]:
        return {self._keys.get(moid, moid): error for moid, error in outcome.items()}

    def _power(self, moid: str) -> Any:
        port = self._port()
        return port.actions.read(port.actions.vm(moid), ["runtime.powerState"]).get("runtime.powerState")

    def shutdown_guest(self, vm: str) -> None:
        """A VM already off is left so (a down run again after an interruption)."""
        moid = self._vm(vm)
        if self._power(moid) == "poweredOn":
            self._port().shutdown_guest(moid)

    def power_off_vms(self, vms: Sequence[str], timeout: float) -> dict[str, str | None]:
        return self._by_key(self._port().power_off_vms([self._vm(v) for v in vms], timeout))

    def power_on_vms(self, vms: Sequence[str], timeout: float) -> dict[str, str | None]:
        """Those already on count as done (an interrupted up that is run again)."""
        moids = [self._vm(v) for v in vms]
        off = [m for m in moids if self._power(m) != "poweredOn"]
        outcome: dict[str, str | None] = {self._keys[m]: None for m in moids if m not in off}
        if off:
            outcome.update(self._by_key(self._port().power_on_vms(off, timeout)))
        return outcome

    def enter_maintenance(self, host: str, timeout: float) -> None:
        if self.in_maintenance(host):
            return
        self._port().enter_maintenance(self._host, timeout)

    def enter_maintenance_no_action(self, host: str, timeout: float) -> None:
        if self.in_maintenance(host):
            return
        self._port().enter_maintenance_no_action(self._host, timeout)

    def exit_maintenance(self, host: str, timeout: float) -> None:
        self._port().exit_maintenance(self._host, timeout)

    def in_maintenance(self, host: str) -> bool:
        return self._port().in_maintenance(self._host)

    def shutdown_host(self, host: str, timeout: float) -> None:
        self._port().shutdown_host(self._host, timeout)

    def reboot_host(self, host: str, timeout: float) -> None:
        self._port().reboot_host(self._host, timeout)

    def wait(
        self, objects: Sequence[str], condition: str, timeout: float, on_each: Callable[[str], None] | None = None, reread: bool = True
    ) -> set[str]:
        """VMs by key; anything else is the host itself, "connected" once its API answers (within the
        connection's bounded wait). ``timeout`` bounds the VM waits."""
        vms = [o for o in objects if o.startswith(UUID)]
        reached: set[str] = set()
        for host in (o for o in objects if not o.startswith(UUID)):
            if condition == "connected":
                self._port()  # waits for the host to answer, or raises ConnectionFailed
                reached.add(host)
                if on_each is not None:
                    on_each(host)
        if not vms:
            return reached
        told: Callable[[str], None] | None = None
        if on_each is not None:
            tell = on_each
            told = lambda moid: tell(self._keys.get(moid, moid))  # noqa: E731
        found = self._port().wait([self._vm(o) for o in vms], condition, timeout, told, reread)
        return reached | {self._keys.get(m, m) for m in found}

    def _cluster(self) -> Any:
        raise VSphereError(f"{self.where}: cluster settings are changed through vCenter, not through a host")

    def cluster_setting(self, cluster: str, setting: str) -> str | None:
        return self._cluster()  # type: ignore[no-any-return]

    def change_cluster_setting(self, cluster: str, setting: str, value: str, timeout: float) -> None:
        self._cluster()

    def vcls_agents(self, cluster: str) -> dict[str, str]:
        return self._cluster()  # type: ignore[no-any-return]

    def vsan_power(self, cluster: str, target: str, timeout: float) -> None:
        self._cluster()

    def _fix(self) -> Any:
        raise VSphereError(f"{self.where}: fixes work through vCenter, not through a host")

    def set_host_option(self, host: str, key: str, value: str) -> Any:
        return self._fix()

    def reset_cbt(self, vm: str, snapshot: str, description: str, timeout: float) -> tuple[bool, list[str]]:
        return self._fix()  # type: ignore[no-any-return]

    def close(self) -> None:
        with self._lock:
            if self._inner is not None:
                self._inner.close()
            if self._si is not None:
                close_session(self._si, self.where)


def wait_for_vcenter(config: VCenter, timeout: float, cancel: Cancel) -> str | None:
    """Until vCenter's SOAP login and its REST API (tagging) both answer, within ``timeout``: None, or why
    not. A refused login or an untrusted certificate ends the wait at once."""
    deadline = time.monotonic() + timeout
    last = "not tried"
    while True:
        try:
            close_session(open_session(login_for_vcenter(config)), "vCenter")
            with TagClient(config):
                return None
        except (AuthenticationFailed, TLSVerificationFailed) as exc:
            return str(exc)
        except EndpointError as exc:
            last = str(exc)
        if time.monotonic() + RETRY > deadline:
            return f"vCenter did not answer within {timeout:.0f}s ({last})"
        cancel.sleep(RETRY)

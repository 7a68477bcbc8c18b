"""Plain servers (platform = "servers") in the plan (pure) and in the config: their own steps, their checks."""

from __future__ import annotations

from typing import Any

import pytest

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.config.load import parse
from labswitch.errors import ConfigError
from labswitch.plan import Action, Facts, Intent, make_plan, make_proxmox_plan
from labswitch.snapshot import Snapshot
from tests.unit.graph import waits_for
from tests.unit.test_plan import config as vsphere_config

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKmdummykeydummykeydummykeydummykeydummyk"
BMC = {"driver": "redfish", "address": "nas-oob", "user": "root", "password": "p"}


def nas(**kw: Any) -> dict[str, Any]:
    return {"name": "nas", "platform": "servers", "group": "storage", "address": "nas.lab", "bmc": BMC, **kw}


def config(**nas_kw: Any) -> Config:
    base = vsphere_config()
    data = base.model_dump(mode="python", exclude_none=True)
    data["vcenter"]["password"] = "p"
    for s in data["servers"]:
        s["bmc"]["password"] = "p"
    data["groups"]["storage"] = {}
    data["servers"].append(nas(**nas_kw))
    return Config.model_validate(data)


def facts(**power: Power) -> Facts:
    return Facts(frozenset(), frozenset(), {"mgmt01": Power.ON, "esx1": Power.ON, "esx2": Power.ON, "nas": Power.ON, **power})


def test_down_is_its_os_over_ssh_then_the_bmcs_graceful_shutdown_if_that_fails_then_confirmed_off() -> None:
    cfg = config(ssh={"key_file": "~/.ssh/id_ed25519", "host_key": KEY})
    plan = make_plan(Snapshot((), ()), cfg, facts(), Intent.DOWN, ["storage"])
    assert not plan.refusals and plan.servers == ("nas",)
    by_action = {s.action: s for s in plan.steps}
    assert set(by_action) == {Action.OS_SHUTDOWN, Action.BMC_GRACEFUL_SHUTDOWN, Action.CONFIRM_OFF}
    assert by_action[Action.BMC_GRACEFUL_SHUTDOWN].fallback_of == by_action[Action.OS_SHUTDOWN].id
    assert waits_for(plan, by_action[Action.CONFIRM_OFF].id, by_action[Action.OS_SHUTDOWN].id)
    assert by_action[Action.OS_SHUTDOWN].endpoint == "os:nas" and by_action[Action.CONFIRM_OFF].endpoint == "bmc:nas"


def test_without_ssh_the_acpi_button_and_an_off_server_needs_nothing() -> None:
    plan = make_plan(Snapshot((), ()), config(), facts(), Intent.DOWN, ["storage"])
    assert [s.action for s in plan.steps] == [Action.BMC_GRACEFUL_SHUTDOWN, Action.CONFIRM_OFF]
    assert make_plan(Snapshot((), ()), config(), facts(nas=Power.OFF), Intent.DOWN, ["storage"]).steps == ()


def test_up_powers_on_then_waits_for_its_services_even_when_it_was_on() -> None:
    cfg = config(ready=["tcp:2049", "https:443"])
    plan = make_plan(Snapshot((), ()), cfg, facts(nas=Power.OFF), Intent.UP, ["storage"])
    power_on, ready = plan.steps
    assert (power_on.action, ready.action) == (Action.BMC_POWER_ON, Action.WAIT_READY) and ready.after == (power_on.id,)
    on = make_plan(Snapshot((), ()), cfg, facts(), Intent.UP, ["storage"])
    assert [s.action for s in on.steps] == [Action.WAIT_READY]


def test_a_proxmox_lab_plans_them_too() -> None:
    data = {
        "proxmox": {"url": "pve1.lab", "user": "root@pam", "password": "p"},
        "groups": {"storage": {}},
        "servers": [nas(ready="tcp:2049")],
    }
    plan = make_proxmox_plan(Snapshot((), ()), Config.model_validate(data), facts(nas=Power.OFF), Intent.UP, ["storage"])
    assert [s.action for s in plan.steps] == [Action.BMC_POWER_ON, Action.WAIT_READY] and plan.servers == ("nas",)


@pytest.mark.parametrize(
    ("server", "said"),
    [
        (nas(esxi_url="https://x"), 'esxi_url: a plain server (platform = "servers") has no hypervisor'),
        (nas(ready=["nfs:2049"]), '"tcp:PORT", "http:PORT" or "https:PORT"'),
        (nas(ssh={"host_key": KEY}), "give key_file (an OpenSSH private key) or password, one of them"),
        (nas(ssh={"key_file": "k", "host_key": "nope"}), "must be an OpenSSH public key line"),
        ({**nas(ready="tcp:1"), "address": None}, "needs its address"),
        ({"name": "esx9", "esxi": "esx9.lab", "group": "storage", "bmc": BMC, "ready": "tcp:1"}, 'add platform = "servers"'),
    ],
)
def test_config_mistakes_are_one_line_saying_where(server: dict[str, Any], said: str) -> None:
    import tomlkit

    server = {k: v for k, v in server.items() if v is not None}
    doc = {"vcenter": {"url": "vc", "user": "u", "password": "p"}, "groups": {"storage": {}}, "servers": [server]}
    with pytest.raises(ConfigError) as exc:
        parse(tomlkit.dumps(doc).encode(), source="lab.toml", resolve_secrets=False)
    assert said in str(exc.value) and "servers[0]" in str(exc.value) and "\n" not in str(exc.value), str(exc.value)

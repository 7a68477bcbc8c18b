"""Groups that depend on groups (pure): `[groups.payload] after = ["storage"]` on hand-built snapshots."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from labswitch.bmc import Power
from labswitch.config import Config
from labswitch.plan import Action, Intent, make_plan
from labswitch.plan.groups import in_order
from labswitch.snapshot import Snapshot
from tests.unit.graph import waits_for
from tests.unit.test_plan import facts, host, vm

BMC = {"driver": "redfish", "user": "r", "password": "p"}


def config(after: tuple[str, ...] = ("storage",)) -> Config:
    servers = (("mgmt01", "mgmt"), ("nas1", "storage"), ("esx1", "payload"), ("esx2", "payload"))
    return Config.model_validate(
        {
            "vcenter": {"url": "vcsa.lab.local", "user": "u", "password": "p"},
            "groups": {"mgmt": {"always_on": True}, "storage": {}, "payload": {"after": list(after)}},
            "servers": [
                {
                    "name": n,
                    "esxi": f"{n}.lab",
                    "group": g,
                    "bmc": {"driver": "redfish", "address": f"{n}-oob", "user": "r", "password": "p"},
                }
                for n, g in servers
            ],
        }
    )


SNAP = Snapshot(
    (
        host("mgmt01", cluster=None),
        host("nas1", cluster="S", cluster_moid="c-s"),
        host("esx1", cluster_moid="c-1"),
        host("esx2", cluster_moid="c-1"),
    ),
    (vm("vcsa", "mgmt01", guest_ip="10.0.0.5"), vm("nfs", "nas1"), vm("app", "esx1"), vm("web", "esx2")),
)


def planned(intent: Intent, groups: tuple[str, ...], **power: Power) -> Any:
    cfg = config()
    f = facts(bmc_power={"mgmt01": Power.ON, "nas1": Power.ON, "esx1": Power.ON, "esx2": Power.ON, **power})
    return in_order(make_plan(SNAP, cfg, f, intent, groups), cfg, f, SNAP)


def test_a_down_of_both_takes_the_dependent_group_down_whole_before_the_group_it_needs() -> None:
    plan = planned(Intent.DOWN, ("payload", "storage"))
    assert not plan.refusals
    off = [s.id for s in plan.steps if s.action == Action.CONFIRM_OFF and s.server in ("esx1", "esx2")]
    storage = [s for s in plan.steps if s.server == "nas1" and not s.fallback_of]  # a fallback runs after its step
    assert storage and all(waits_for(plan, s.id, o) for s in storage for o in off), "nas1's every step after esx1 and esx2 are off"
    payload = [s for s in plan.steps if s.server in ("esx1", "esx2")]
    assert not any(waits_for(plan, s.id, n.id) for s in payload for n in storage), "payload waits for nothing of storage"


def test_an_up_of_both_brings_the_needed_group_up_and_ready_before_the_dependent_group_powers_on() -> None:
    off = {"nas1": Power.OFF, "esx1": Power.OFF, "esx2": Power.OFF}
    plan = planned(Intent.UP, ("payload", "storage"), **off)
    assert not plan.refusals
    ready = [s.id for s in plan.steps if s.server == "nas1" and s.action == Action.WAIT_CONNECTED]
    on = [s for s in plan.steps if s.action == Action.BMC_POWER_ON and s.server in ("esx1", "esx2")]
    assert ready and on and all(waits_for(plan, s.id, r) for s in on for r in ready)


def test_the_needed_group_alone_is_refused_down_while_the_dependent_is_on_and_the_dependent_alone_up_while_it_is_off() -> None:
    down = planned(Intent.DOWN, ("storage",))
    assert any("payload needs it and is on (esx1, esx2)" in r and "--group payload --group storage" in r for r in down.refusals)
    assert not planned(Intent.DOWN, ("storage",), esx1=Power.OFF, esx2=Power.OFF).refusals, "payload off already: fine"
    up = planned(Intent.UP, ("payload",), nas1=Power.OFF, esx1=Power.OFF, esx2=Power.OFF)
    assert any("needs group storage, which is off (nas1)" in r for r in up.refusals)
    assert not planned(Intent.DOWN, ("payload",)).refusals, "the dependent alone may go down"


@pytest.mark.parametrize(
    ("groups", "says"),
    [
        ({"a": {"after": ["nope"]}}, "no group 'nope'"),
        ({"a": {"after": ["b"]}, "b": {"after": ["a"]}}, "would need itself"),
        ({"a": {"after": ["a"]}}, "would need itself"),
    ],
)
def test_after_names_groups_that_exist_and_no_group_needs_itself(groups: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Config.model_validate({"vcenter": {"url": "v", "user": "u", "password": "p"}, "groups": groups})

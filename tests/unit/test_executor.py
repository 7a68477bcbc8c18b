"""The executor and the step modules against an in-memory fake of the lab (tests/unit/fake_lab.py):
per-host chains, planned fallbacks, skips with reasons, wave barriers, cancellation."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest

from labswitch.bmc import Power
from labswitch.cancel import Cancel
from labswitch.errors import Interrupted
from labswitch.plan import Intent, Plan, make_plan, target_groups
from labswitch.run import Runner, StepResult
from labswitch.snapshot import Snapshot
from tests.unit.fake_lab import FakeDriver, FakeHost, FakeLab, FakePort, FakeVM
from tests.unit.test_plan import config, facts, host, vm

FAST = {"guest_shutdown_timeout": 0.3, "host_off_timeout": 0.3, "bmc_poll_interval": 0.01, "host_connect_timeout": 5}


class Journal:
    """Only what the Runner writes."""

    def __init__(self) -> None:
        self.steps: list[tuple[Any, ...]] = []

    def add_step(self, *args: Any) -> None:
        self.steps.append(args)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def lab_of(vms: dict[str, FakeVM], hosts: dict[str, FakeHost]) -> FakeLab:
    return FakeLab(vms, hosts)


def snapshot(lab: FakeLab, tags: dict[str, tuple[str, ...]] | None = None) -> Snapshot:
    hosts = [host("mgmt01", cluster=None)] + [
        host(h.removeprefix("host-"), connection_state="connected" if fh.connected else "notResponding", in_maintenance=fh.maintenance)
        for h, fh in lab.hosts.items()
    ]
    vms = [
        vm(
            m.removeprefix("vm-"),
            fv.host.removeprefix("host-"),
            power_state="poweredOn" if fv.on else "poweredOff",
            tools_running=fv.tools,
            tags=(tags or {}).get(m, ()),
        )
        for m, fv in lab.vms.items()
    ]
    return Snapshot(tuple(hosts), tuple(vms))


def run(
    lab: FakeLab,
    intent: Intent,
    policy: dict[str, Any] | None = None,
    cancel: Cancel | None = None,
    tags: dict[str, tuple[str, ...]] | None = None,
    **cfg: Any,
) -> tuple[Plan, list[StepResult]]:
    cfg_obj = config(policy={**FAST, **(policy or {})}, **cfg)
    power = {"mgmt01": Power.ON, **{h.removeprefix("host-"): Power.ON if fh.powered else Power.OFF for h, fh in lab.hosts.items()}}
    plan = make_plan(snapshot(lab, tags), cfg_obj, facts(bmc_power=power), intent, target_groups(cfg_obj, [], intent))
    drivers = {s: FakeDriver(lab, s, f"host-{s}") for s in ("esx1", "esx2")}
    cancel = cancel or Cancel()
    runner = Runner(None, cfg_obj, drivers, Journal(), "run-1", lambda *_: None, cancel, port=FakePort(lab, cancel))  # type: ignore[arg-type]
    try:
        return plan, runner.run(plan)
    finally:
        assert len(runner.journal.steps) == len(runner.results)  # type: ignore[attr-defined]


def outcome(results: list[StepResult]) -> dict[tuple[str, str], str]:
    return {(r.action, r.target): r.status for r in results}


def two_hosts(hung: str | None = None) -> FakeLab:
    vms = {f"vm-{n}": FakeVM(f"host-{h}", hung=n == hung) for n, h in (("a1", "esx1"), ("a2", "esx1"), ("b1", "esx2"), ("b2", "esx2"))}
    return lab_of(vms, {"host-esx1": FakeHost(), "host-esx2": FakeHost()})


def test_a_hung_guest_holds_only_its_own_host() -> None:
    lab = two_hosts(hung="a1")
    _, results = run(lab, Intent.DOWN)
    status = outcome(results)
    assert status[("shutdown-guest", "a1")] == "failed" and status[("confirm-off", "esx2")] == "ok"
    assert status[("enter-maintenance", "esx1")] == "skipped" and status[("confirm-off", "esx1")] == "skipped"
    assert not lab.hosts["host-esx2"].powered and lab.hosts["host-esx1"].powered
    # esx2 was shut down before esx1's guest timed out: it did not wait for the other host.
    failed_at = next(r for r in results if r.target == "a1")
    assert results.index(next(r for r in results if (r.action, r.target) == ("confirm-off", "esx2"))) < results.index(failed_at)
    assert "needs" not in failed_at.detail and "left on, host left on" in failed_at.detail


def test_planned_fallbacks_run_only_when_needed() -> None:
    lab = two_hosts(hung="a1")
    lab.hosts["host-esx2"].shutdown_fault = "MethodNotFound"
    plan, results = run(lab, Intent.DOWN, {"hard_power_off": True})
    status = outcome(results)
    assert status[("shutdown-guest", "a1")] == "fallback" and status[("power-off-vm", "a1")] == "ok"
    assert ("power-off-vm", "a2") not in status  # its guest shut down: its fallback never ran
    assert status[("shutdown-host", "esx2")] == "fallback" and status[("bmc-graceful-shutdown", "esx2")] == "ok"
    assert ("bmc-graceful-shutdown", "esx1") not in status
    assert status[("confirm-off", "esx1")] == status[("confirm-off", "esx2")] == "ok"
    assert {(s.action, s.target) for s in plan.steps} >= set(status)  # nothing ran that the plan did not show
    assert lab.done("bmc-graceful-shutdown") == ["esx2"]


def test_up_starts_a_hosts_vms_while_another_boots_and_waves_stay_ordered() -> None:
    vms = {
        "vm-dns": FakeVM("host-esx1", on=False),
        "vm-app1": FakeVM("host-esx1", on=False),
        "vm-app2": FakeVM("host-esx2", on=False),
    }
    hosts = {
        "host-esx1": FakeHost(connected=False, maintenance=True, powered=False),
        "host-esx2": FakeHost(connected=False, maintenance=True, powered=False, boot_seconds=0.5),
    }
    lab = lab_of(vms, hosts)
    tags = {m: ("Lab/StartUp",) for m in vms}
    waves = {"waves": [{"name": "infra", "vms": ["dns"], "wait": "none"}]}
    plan, results = run(lab, Intent.UP, startup=waves, tags=tags)
    assert all(r.ok for r in results), results
    assert lab.when("power-on-vm", "vm-dns") < lab.when("connected", "esx2")  # esx1's wave-1 VM did not wait for esx2
    assert lab.when("power-on-vm", "vm-app1") > lab.when("power-on-vm", "vm-dns")  # wave 2 after wave 1
    gate = next(s for s in plan.steps if s.action == "wave-ready")
    assert gate.after == ("power-on-vm:vm-dns",)
    assert all(fv.on for fv in lab.vms.values())


def test_a_host_that_never_connects_skips_only_its_own_vms() -> None:
    vms = {"vm-a": FakeVM("host-esx1", on=False), "vm-b": FakeVM("host-esx2", on=False)}
    hosts = {
        "host-esx1": FakeHost(connected=False, powered=False),
        "host-esx2": FakeHost(connected=False, powered=False, boot_seconds=60),
    }
    lab = lab_of(vms, hosts)
    _, results = run(lab, Intent.UP, {"host_connect_timeout": 0.3}, tags={m: ("Lab/StartUp",) for m in vms})
    status = outcome(results)
    assert status[("wait-connected", "esx2")] == "failed" and status[("power-on-vm", "b")] == "skipped"
    assert status[("power-on-vm", "a")] == "ok"
    skipped = next(r for r in results if r.target == "b")
    assert "exit-maintenance esx2" in skipped.detail or "wait-connected esx2" in skipped.detail


def test_cancel_stops_new_work_and_raises_interrupted() -> None:
    lab = two_hosts(hung="a1")
    cancel = Cancel()
    threading.Timer(0.1, cancel.set).start()  # while a1's guest shutdown is waited for
    with pytest.raises(Interrupted):
        run(lab, Intent.DOWN, {"guest_shutdown_timeout": 30}, cancel=cancel)
    assert "host-esx1" not in lab.done("enter-maintenance")  # nothing was started for the interrupted host
    assert lab.hosts["host-esx1"].powered


def test_a_step_that_waits_only_for_another_to_settle_runs_when_it_fails() -> None:
    """``settled`` edges (a host's maintenance after its cluster's vCLS step): run whatever the outcome;
    ``after`` edges: skipped when it fails."""
    from labswitch.plan import Status, Step
    from labswitch.run import Executor
    from labswitch.steps import Context

    fails = Step("cluster", "vcls-retreat", "C1", "c1", None)
    soft = Step("maintenance", "enter-maintenance", "esx1", "host-esx1", "esx1", settled=(fails.id,))
    hard = Step("cluster", "vsan-power-off", "C1", "c1", None, after=(fails.id,))
    later = Step("host-shutdown", "shutdown-host", "esx1", "host-esx1", "esx1", after=(soft.id,), settled=(hard.id,))
    plan = Plan(Intent.DOWN, ("payload",), ("esx1",), (fails, soft, hard, later))
    ran: list[str] = []

    def handler(steps: list[Step], ctx: Any, report: Any) -> None:
        for s in steps:
            ran.append(s.id)
            report(s, Status.FAILED if s is fails else Status.OK, "")

    recorded: dict[str, str] = {}
    ctx = Context(None, {}, config().policy, plan, Cancel(), lambda _: None)  # type: ignore[arg-type]
    handlers = dict.fromkeys((s.action for s in plan.steps), handler)
    Executor(plan, handlers, ctx, lambda s, status, d, t: recorded.__setitem__(s.id, status), lambda *_: None, 2).run()
    assert recorded == {fails.id: "failed", soft.id: "ok", hard.id: "skipped", later.id: "ok"}
    assert ran.index(soft.id) > ran.index(fails.id) and ran.index(later.id) > ran.index(soft.id)

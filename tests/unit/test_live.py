"""The live view's state on a hand-built plan and events: what each host row says, and when."""

from __future__ import annotations

from labswitch.plan import Intent, Plan, Step
from labswitch.render.live import RunView
from labswitch.run import StepResult


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def down_plan() -> Plan:
    steps = [
        Step("guest-shutdown", "shutdown-guest", "a-vm1", "vm-1", "a"),
        Step("guest-shutdown", "shutdown-guest", "a-vm2", "vm-2", "a"),
        Step("guest-shutdown", "shutdown-guest", "b-vm1", "vm-3", "b"),
        Step("maintenance", "enter-maintenance", "a", "host-1", "a"),
        Step("maintenance", "enter-maintenance", "b", "host-2", "b"),
        Step("host-shutdown", "shutdown-host", "a", "host-1", "a"),
        Step("host-shutdown", "shutdown-host", "b", "host-2", "b"),
    ]
    return Plan(Intent.DOWN, ("payload",), ("a", "b"), tuple(steps))


def result(action: str, target: str, server: str, status: str = "ok", detail: str = "") -> StepResult:
    return StepResult("", action, target, status, detail, 0.0, server)


def start(view: RunView, *vms: str) -> None:
    for name in vms:
        view.on_start(Step("guest-shutdown", "shutdown-guest", name, None, name.split("-")[0]))


def rows(view: RunView) -> dict[str, tuple[str, int, int]]:
    return {r.server: (r.state, r.vms_done, r.vms_total) for r in view.rows()}


def test_a_host_moves_through_its_chain_and_is_done_only_when_the_bmc_confirms_it_off() -> None:
    clock = Clock()
    view = RunView({"a": "payload", "b": "payload"}, {"shutdown-guest": 10}, clock)
    view.begin(down_plan())
    assert rows(view) == {"a": ("waiting", 0, 2), "b": ("waiting", 0, 1)}
    start(view, "a-vm1", "a-vm2", "b-vm1")
    view.on_result(result("shutdown-guest", "a-vm1", "a"))
    clock.now += 45
    assert rows(view)["a"] == ("a-vm2: shutting down 00:45", 1, 2), "the VM it waits for, by name, with its time"
    clock.now -= 45
    view.on_result(result("shutdown-guest", "a-vm2", "a"))
    view.on_result(result("shutdown-guest", "b-vm1", "b"))
    assert rows(view)["a"] == ("waiting", 2, 2)  # its maintenance has not started
    view.on_start(Step("maintenance", "enter-maintenance", "a", "host-1", "a"))
    assert rows(view)["a"] == ("entering maintenance", 2, 2)
    assert rows(view)["b"] == ("waiting", 1, 1)  # another host's maintenance says nothing of b
    view.on_result(result("enter-maintenance", "a", "a"))
    view.on_start(Step("host-shutdown", "shutdown-host", "a", "host-1", "a"))
    assert rows(view)["a"][0] == "shutting down"
    view.on_result(result("shutdown-host", "a", "a"))
    assert rows(view)["a"][0] == "waiting for off (BMC)"
    clock.now += 7
    view.on_result(result("confirm-off", "a", "a"))
    a = next(r for r in view.rows() if r.server == "a")
    assert a.state == "off (BMC)" and a.finished and not a.failed and a.elapsed == 7.0
    clock.now += 5
    assert next(r for r in view.rows() if r.server == "a").elapsed == 7.0  # a finished host's clock stops


def test_slow_steps_are_named_after_half_their_timeout() -> None:
    clock = Clock()
    view = RunView({}, {"shutdown-guest": 10}, clock)
    view.begin(down_plan())
    start(view, "a-vm1", "a-vm2", "b-vm1")
    view.on_result(result("shutdown-guest", "a-vm1", "a"))
    clock.now += 11
    assert set(view.slow()) == {"a-vm2", "b-vm1"}
    assert next(r for r in view.rows() if r.server == "a").note == "slow: a-vm2"


def test_a_failure_is_shown_and_an_interrupted_run_says_what_was_not_finished() -> None:
    view = RunView({}, {}, Clock())
    view.begin(down_plan())
    start(view, "a-vm1", "a-vm2", "b-vm1")
    view.on_result(result("shutdown-guest", "b-vm1", "b", "failed", "still on after 300s"))
    view.on_result(result("shutdown-host", "b", "b", "skipped", "host left on"))
    b = next(r for r in view.rows() if r.server == "b")
    assert b.failed and b.state == "left on" and "still on after 300s" in b.note and b.alarm
    view.finish()
    assert rows(view)["a"][0] == "not finished (stopping VMs)"


def test_a_host_waiting_for_its_clusters_steps_says_which_is_under_way() -> None:
    retreat = Step("cluster", "vcls-retreat", "C1", "c1", None, after=("shutdown-guest:vm-1",))
    power = Step("cluster", "vsan-power-off", "C1", "c1", None, after=(retreat.id,))
    steps = [
        Step("guest-shutdown", "shutdown-guest", "a-vm1", "vm-1", "a"),
        retreat,
        power,
        Step("host-shutdown", "shutdown-host", "a", "host-1", "a", after=(power.id,)),
    ]
    view = RunView({"a": "payload"}, {}, Clock())
    view.begin(Plan(Intent.DOWN, ("payload",), ("a",), tuple(steps)))
    start(view, "a-vm1")
    view.on_result(result("shutdown-guest", "a-vm1", "a"))
    assert rows(view)["a"][0] == "waiting: vCLS retreat mode (C1)"
    view.on_start(retreat)
    assert rows(view)["a"][0] == "vCLS retreat mode (C1) 00:00", "through the vSAN step it waits for"
    view.on_result(result("vcls-retreat", "C1", ""))
    view.on_start(power)
    assert rows(view)["a"][0] == "vSAN cluster power-off (C1) 00:00"
    assert [r.server for r in view.rows()] == ["a"], "a cluster is no host row"


def test_a_vsan_host_whose_vms_are_off_names_the_clusters_slowest_guest_and_its_clock_ticks() -> None:
    clock = Clock()
    vms = [Step("guest-shutdown", "shutdown-guest", f"{h}-vm1", f"vm-{h}", h) for h in ("a", "b")]
    power = Step("cluster", "vsan-power-off", "C1", "c1", None, after=tuple(v.id for v in vms))
    steps = [*vms, power, *(Step("host-shutdown", "shutdown-host", h, f"host-{h}", h, after=(power.id,)) for h in ("a", "b"))]
    view = RunView({"a": "payload", "b": "payload"}, {}, clock)
    view.begin(Plan(Intent.DOWN, ("payload",), ("a", "b"), tuple(steps)))
    clock.now += 3
    assert next(r for r in view.rows() if r.server == "a").elapsed == 3.0, "a host still waiting to begin has a ticking clock"
    start(view, "a-vm1", "b-vm1")
    view.on_result(result("shutdown-guest", "a-vm1", "a"))
    clock.now += 20
    assert rows(view)["a"][0] == "waiting: vSAN cluster power-off (C1) after b-vm1: shutting down 00:20"


def test_an_interrupted_up_claims_no_host_it_did_not_bring_back() -> None:
    from io import StringIO

    from rich.console import Console

    from labswitch.plan import Action, Status
    from labswitch.render.runs import final_summary, hosts_up

    steps = [
        Step("power-on", Action.BMC_POWER_ON, "a", "host-1", "a"),
        Step("connect", Action.WAIT_CONNECTED, "a", "host-1", "a", after=("bmc-power-on:host-1",)),
        Step("power-on", Action.BMC_POWER_ON, "b", "host-2", "b"),
        Step("connect", Action.WAIT_CONNECTED, "b", "host-2", "b", after=("bmc-power-on:host-2",)),
        Step("start:0", Action.POWER_ON_VM, "a-vm1", "vm-1", "a", after=("wait-connected:host-1",)),
    ]
    plan = Plan(Intent.UP, ("payload",), ("a", "b"), tuple(steps))
    booting = [
        StepResult("", "bmc-power-on", "a", Status.OK, "powered on", 0.1, "a"),
        StepResult("", "bmc-power-on", "b", Status.OK, "", 0.1, "b"),
    ]
    assert hosts_up(plan, booting) == set(), "powered on, not connected yet: not up"
    connected = [*booting, StepResult("", "wait-connected", "a", Status.OK, "connected", 3.0, "a")]
    assert hosts_up(plan, connected) == {"a"}
    out = StringIO()
    final_summary(Console(file=out, width=200), plan, booting, "run-1", 8.0, True, "labswitch up")
    assert "0 of 2 hosts up, 0 of 1 VMs started" in out.getvalue(), out.getvalue()


def test_an_up_whose_hosts_were_already_up_says_they_are() -> None:
    """up --restore right after an up: only VM steps were planned; its hosts are up, not "0 of 4 hosts up"."""
    from io import StringIO

    from rich.console import Console

    from labswitch.plan import Action, Status
    from labswitch.render.runs import final_summary

    steps = (Step("start:0", Action.POWER_ON_VM, "a-vm1", "vm-1", "a"), Step("start:0", Action.POWER_ON_VM, "b-vm1", "vm-2", "b"))
    plan = Plan(Intent.UP, ("payload",), ("a", "b"), steps)
    started = [StepResult("", "power-on-vm", t, Status.OK, "powered on", 0.1, t[0]) for t in ("a-vm1", "b-vm1")]
    out = StringIO()
    final_summary(Console(file=out, width=200), plan, started, "run-1", 1.0, False, "labswitch up")
    assert "2 of 2 hosts up, 2 of 2 VMs started" in out.getvalue(), out.getvalue()


def test_a_server_without_a_bmc_is_told_in_its_own_words() -> None:
    plan = Plan(Intent.DOWN, ("payload",), ("a",), (Step("host-shutdown", "shutdown-host", "a", "host-1", "a"),))
    view = RunView({"a": "payload"}, {}, Clock(), power_by={"a": "host unreachable"})
    view.begin(plan)
    view.on_result(result("shutdown-host", "a", "a"))
    assert rows(view)["a"][0] == "waiting for off (host unreachable)", "Wake-on-LAN: no BMC says it is off"


def test_at_80_columns_a_large_lab_collapses_per_group_and_reads_whole() -> None:
    from io import StringIO

    from rich.console import Console

    from labswitch.render.live import LiveProgress

    steps = [Step("guest-shutdown", "shutdown-guest", f"esx{h}-vm1", f"vm-{h}", f"esx{h}") for h in range(10, 40)]
    plan = Plan(Intent.DOWN, ("payload",), tuple(f"esx{h}" for h in range(10, 40)), tuple(steps))
    clock = Clock()
    view = RunView({f"esx{h}": "payload" for h in range(10, 40)}, {}, clock)
    view.begin(plan)
    start(view, *(f"esx{h}-vm1" for h in range(10, 40)))
    clock.now += 65
    out = StringIO()
    console = Console(file=out, width=80, height=12, force_terminal=False, color_system=None)
    console.print(LiveProgress(console, view, live=False).render())
    text = out.getvalue()
    assert "30 shutting down" in text, text  # by kind: no VM name, no clock
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "…" not in text, text

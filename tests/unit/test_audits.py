"""Each audit rule, and each fix's plan (plan.fix), on hand-built snapshots (pure, no I/O)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labswitch import audits
from labswitch.audits import Severity, cbt_unmap, l1tf, multiwriter, sgx
from labswitch.config import Config
from labswitch.errors import ConfigError
from labswitch.plan import Action, Facts, Intent, fix
from labswitch.snapshot import MULTI_WRITER, Disk, HostInfo, Snapshot, VMInfo

OPTS = {l1tf.MITIGATION: False, l1tf.SUPPRESS: 0}


def host(name: str, **kw: Any) -> HostInfo:
    defaults: dict[str, Any] = {
        "cluster": "C1",
        "connection_state": "connected",
        "in_maintenance": False,
        "power_state": "poweredOn",
        "options": dict(OPTS),
        "cpu_model": "Intel(R) Xeon(R) Gold 6130",
        "sgx_state": "notPresent",
    }
    return HostInfo(moid=f"host-{name}", name=name, **{**defaults, **kw})


def vm(name: str, on: str | None, **kw: Any) -> VMInfo:
    defaults: dict[str, Any] = {"power_state": "poweredOn", "tools_running": True, "hw_version": 13}
    return VMInfo(moid=f"vm-{name}", name=name, host_moid=f"host-{on}" if on else None, **{**defaults, **kw})


def disk(file: str = "[ds] a/a.vmdk", thin: bool = True, eager: bool = False, sharing: str = "sharingNone") -> Disk:
    return Disk("Hard disk 1", file, thin, eager, sharing)


def snap(hosts: list[HostInfo], vms: list[VMInfo] = (), api: str = "7.0.3.0") -> Snapshot:  # type: ignore[assignment]
    return Snapshot(tuple(hosts), tuple(vms), api_version=api)


# -- l1tf ---------------------------------------------------------------------------------
def test_l1tf_each_host_state_has_its_severity() -> None:
    s = snap(
        [
            host("mitigated", options={l1tf.MITIGATION: True, l1tf.SUPPRESS: 1}),
            host("open", options={l1tf.MITIGATION: False, l1tf.SUPPRESS: 0}),
            host("hidden", options={l1tf.MITIGATION: False, l1tf.SUPPRESS: 1}),
            host("old", options={l1tf.SUPPRESS: 0}),
            host("amd", cpu_model="AMD EPYC 7302P"),
            host("gone", connection_state="notResponding", options={}),
        ]
    )
    by_target = {f.target: f for f in l1tf.check(s)}
    assert set(by_target) == {"open", "hidden", "old", "gone"}
    assert by_target["open"].severity is Severity.HIGH and "--mitigate open" in by_target["open"].fix
    assert by_target["hidden"].severity is Severity.CRITICAL and "hidden" in by_target["hidden"].message
    assert by_target["old"].severity is Severity.HIGH and "predates" in by_target["old"].message
    assert by_target["gone"].severity is Severity.INFO


def test_l1tf_options_as_strings_are_read_as_esxi_writes_them() -> None:
    s = snap([host("a", options={l1tf.MITIGATION: "true"}), host("b", options={l1tf.MITIGATION: "FALSE", l1tf.SUPPRESS: "1"})])
    assert [(f.target, f.severity) for f in l1tf.check(s)] == [("b", Severity.CRITICAL)]


def fix_config() -> Config:
    from tests.unit.test_plan import config

    return config()


def fix_facts() -> Facts:
    return Facts(frozenset({"vcsa.lab.local"}), frozenset(), {})


def test_l1tf_fix_plan_defaults_to_flagged_hosts_and_skips_those_already_set() -> None:
    s = snap([host("a"), host("b", options={l1tf.MITIGATION: True, l1tf.SUPPRESS: 0}), host("c")])
    plan = fix.l1tf_plan(s, fix_config(), fix_facts(), [], mitigate=True, reboot=False)
    assert plan.intent is Intent.FIX and plan.servers == ("a", "c")
    assert [(st.target, st.action) for st in plan.steps] == [("a", Action.L1TF_MITIGATE), ("c", Action.L1TF_MITIGATE)]
    plan = fix.l1tf_plan(s, fix_config(), fix_facts(), ["b"], mitigate=True, reboot=False)
    assert plan.steps == () and "already" in plan.notes[0]
    plan = fix.l1tf_plan(s, fix_config(), fix_facts(), ["b"], mitigate=False, reboot=False)
    assert [st.action for st in plan.steps] == [Action.L1TF_SUPPRESS_WARNING] and f"{l1tf.SUPPRESS} = 1" in plan.notes[-1]


def test_l1tf_rolling_reboot_starts_each_host_once_the_previous_one_is_back_whole() -> None:
    s = snap([host("a"), host("b")], [vm("a1", "a"), vm("b1", "b")])
    plan = fix.l1tf_plan(s, fix_config(), fix_facts(), [], mitigate=True, reboot=True)
    by_id = {st.id: st for st in plan.steps}
    options = {st.id for st in plan.steps if st.action is Action.L1TF_MITIGATE}
    roots = [st for st in plan.steps if st.action is Action.SHUTDOWN_GUEST]
    assert [st.target for st in roots] == ["a1", "b1"]
    assert set(roots[0].after) == options  # host a's reboot waits for every option set
    a_steps = {i for i, st in by_id.items() if st.server == "a" and not st.fallback_of and st.action is not Action.L1TF_MITIGATE}
    assert set(roots[1].after) == a_steps  # host b's waits for all of host a's reboot, its VM started again included
    assert "power-on-vm:vm-a1" in roots[1].after


def test_l1tf_fix_refuses_disconnected_and_unknown_hosts() -> None:
    s = snap([host("a", connection_state="disconnected")])
    plan = fix.l1tf_plan(s, fix_config(), fix_facts(), ["a"], mitigate=True, reboot=False)
    assert plan.refusals and not plan.steps
    with pytest.raises(ConfigError, match="'zz': not in vCenter"):
        fix.l1tf_plan(s, fix_config(), fix_facts(), ["zz"], mitigate=True, reboot=False)


# -- cbt-unmap ----------------------------------------------------------------------------
def test_cbt_unmap_needs_cbt_thin_and_hardware_11() -> None:
    s = snap(
        [host("h")],
        [
            vm("hit", "h", cbt=True, disks=(disk("[ds] hit/1.vmdk"), disk("[ds] hit/2.vmdk", thin=False, eager=True))),
            vm("nocbt", "h", cbt=False, disks=(disk(),)),
            vm("thick", "h", cbt=True, disks=(disk(thin=False),)),
            vm("old", "h", cbt=True, hw_version=10, disks=(disk(),)),
            vm("hw11", "h", cbt=True, hw_version=11, disks=(disk("[ds] hw11/1.vmdk"),)),
            vm("tmpl", "h", cbt=True, template=True, disks=(disk(),)),
        ],
    )
    found = cbt_unmap.check(s)
    assert [f.target for f in found] == ["hit / Hard disk 1", "hw11 / Hard disk 1"]
    assert "[ds] hit/1.vmdk" in found[0].message and "fsutil behavior set DisableDeleteNotify 1" in found[0].fix


def test_cbt_reset_plan_refuses_snapshots_unless_told() -> None:
    s = snap([host("h")], [vm("a", "h", cbt=True, has_snapshots=True), vm("b", "h", cbt=False)])
    plan = fix.cbt_plan(s, fix_config(), ["a", "b"], with_snapshots=False)
    assert plan.refusals and "has snapshots" in plan.refusals[0] and not plan.steps
    assert "CBT is off" in plan.notes[0]
    plan = fix.cbt_plan(s, fix_config(), ["a"], with_snapshots=True)
    assert [(st.action, st.target, st.server, st.after) for st in plan.steps] == [(Action.CBT_RESET, "a", "h", ())]
    with pytest.raises(ConfigError, match="not in vCenter"):
        fix.cbt_plan(s, fix_config(), ["nope"], with_snapshots=False)


extents = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 40)), max_size=12)


def covered(ext: list[tuple[int, int]]) -> set[int]:
    return {x for start, length in ext for x in range(start, start + length)}


@given(extents, extents)
def test_intersect_is_exactly_the_changed_and_allocated_bytes(changed: list[tuple[int, int]], allocated: list[tuple[int, int]]) -> None:
    out = cbt_unmap.intersect(changed, allocated)
    assert covered(out) == covered(changed) & covered(allocated)
    # sorted, non-empty, neither overlapping nor touching: the minimal extent list
    assert all(length > 0 for _, length in out)
    assert all(a[0] + a[1] < b[0] for a, b in itertools.pairwise(out))


def test_intersect_example_unmapped_blocks_are_not_copied() -> None:
    changed = [(0, 1 << 30)]  # after UNMAP, CBT reports the whole 1 GiB changed
    allocated = [(0, 4096), (1 << 20, 8192)]
    assert cbt_unmap.intersect(changed, allocated) == [(0, 4096), (1 << 20, 8192)]


# -- multiwriter --------------------------------------------------------------------------
SHARED = "[ds] rac/shared.vmdk"


def rac(hosts_on: int, extra: list[VMInfo] = ()) -> Snapshot:  # type: ignore[assignment]
    hosts = [host(f"h{i}") for i in range(1, 11)]
    vms = [vm(f"rac{i}", f"h{i}", disks=(disk(SHARED, thin=False, eager=True, sharing=MULTI_WRITER),)) for i in range(1, hosts_on + 1)]
    return snap(hosts, vms + list(extra))


def test_multiwriter_flags_more_than_eight_hosts_only() -> None:
    assert multiwriter.check(rac(8)) == []
    found = multiwriter.check(rac(9))
    assert [(f.target, f.severity) for f in found] == [(SHARED, Severity.HIGH)]
    assert "open on 9 hosts" in found[0].message


def test_multiwriter_counts_hosts_not_vms_and_only_powered_on() -> None:
    two_on_h1 = vm("rac9", "h1", disks=(disk(SHARED, thin=False, eager=True, sharing=MULTI_WRITER),))
    off = vm("rac10", "h10", power_state="poweredOff", disks=(disk(SHARED, thin=False, eager=True, sharing=MULTI_WRITER),))
    assert multiwriter.check(rac(8, [two_on_h1, off])) == []


def test_multiwriter_disk_type_sharing_mode_and_unsupported_states() -> None:
    vms = [
        vm("a", "h1", disks=(disk(SHARED, thin=True, sharing=MULTI_WRITER),)),
        vm("b", "h2", cbt=True, has_snapshots=True, disks=(disk(SHARED, thin=False, eager=False, sharing=MULTI_WRITER),)),
        vm("c", "h3", power_state="suspended", disks=(disk(SHARED, thin=False, eager=True, sharing="sharingNone"),)),
        vm("d", "h4", cbt=True, disks=(disk("[ds] d/own.vmdk"),)),  # no shared disk: not this check's business
    ]
    found = {(f.target, f.severity, f.message.split(":")[0]) for f in multiwriter.check(snap([host("h1"), host("h2"), host("h3")], vms))}
    messages = {t: m for t, _, m in found}
    assert {t for t, _, _ in found} == {"a / Hard disk 1", "b / Hard disk 1", "c / Hard disk 1", "b", "c"}
    assert "thin" in messages["a / Hard disk 1"] and "lazy-zeroed" in messages["b / Hard disk 1"]
    assert "without multi-writer" in messages["c / Hard disk 1"]
    assert "snapshots, changed block tracking" in messages["b"] and "suspended" in messages["c"]


@pytest.mark.parametrize(("open_hosts", "target", "after", "ok"), [(7, "h10", 8, True), (8, "h10", 9, False), (8, "h1", 8, True)])
def test_placement_counts_the_target_host(open_hosts: int, target: str, after: int, ok: bool) -> None:
    newcomer = vm("new", None, power_state="poweredOff", disks=(disk(SHARED, thin=False, eager=True, sharing=MULTI_WRITER),))
    answer = multiwriter.placement(rac(open_hosts, [newcomer]), "new", target)
    assert [(d.file, d.hosts_after, d.ok) for d in answer.disks] == [(SHARED, after, ok)]
    assert answer.ok is ok


def test_placement_of_a_running_vm_does_not_count_where_it_leaves() -> None:
    # rac1..rac9 on h1..h9 (9 hosts): moving rac9 onto h1 brings the file back to 8 hosts
    answer = multiwriter.placement(rac(9), "rac9", "h1")
    assert (answer.disks[0].hosts_now, answer.disks[0].hosts_after, answer.ok) == (9, 8, True)


# -- sgx ----------------------------------------------------------------------------------
def test_sgx_vsphere_states() -> None:
    s = snap(
        [host("en", sgx_state="enabled"), host("bios", sgx_state="disabledBIOS"), host("none")],
        [vm("good", "en", sgx_epc_mb=64), vm("bad", "bios", sgx_epc_mb=32), vm("plain", "none")],
    )
    found = {f.target: f.severity for f in sgx.check(s)}
    assert found == {"en": Severity.INFO, "bios": Severity.LOW, "good": Severity.INFO, "bad": Severity.HIGH}


def test_sgx_on_an_api_that_does_not_report_it() -> None:
    found = sgx.check(snap([host("a", sgx_state=None)], api="6.7.3"))
    assert [(f.target, f.severity) for f in found] == [("vCenter", Severity.INFO)]


def regs(leaf1_ecx: int = 0, ebx7: int = 0, ecx7: int = 0, eax12: int = 0, edx12: int = 0) -> dict[tuple[int, int], tuple[int, ...]]:
    return {(1, 0): (0, 0, leaf1_ecx, 0), (7, 0): (0, ebx7, ecx7, 0), (0x12, 0): (eax12, 0, 0, edx12)}


@pytest.mark.parametrize(
    ("leaves", "outcome"),
    [
        (regs(ebx7=1 << 2, eax12=1, edx12=0x241F), "enabled"),
        (regs(ebx7=1 << 2), "disabled-in-bios"),
        (regs(leaf1_ecx=1 << 31), "masked-by-hypervisor"),
        (regs(), "not-in-cpu"),
    ],
)
def test_sgx_decode_outcomes(leaves: Any, outcome: str) -> None:
    assert sgx.decode(leaves, "test").outcome == outcome


# The README example of ayeks/SGX-hardware's test-sgx, abridged to the leaves it decodes.
TEST_SGX_OUTPUT = """\
eax: 906ed ebx: 10800 ecx: feda3203 edx: f8bfbff
stepping 13
Extended feature bits (EAX=07H, ECX=0H)
eax: 0 ebx: 9c6fbd ecx: 40000000 edx: 400
sgx available: 1
sgx launch control: 1

CPUID Leaf 12H, Sub-Leaf 0 of Intel SGX Capabilities (EAX=12H,ECX=0)
eax: 1 ebx: 0 ecx: 0 edx: 241f
sgx 1 supported: 1
sgx 2 supported: 0
MaxEnclaveSize_Not64: 1f
MaxEnclaveSize_64: 24

CPUID Leaf 12H, Sub-Leaf 2 of Intel SGX Capabilities (EAX=12H,ECX=2)
eax: c0200001 ebx: 1 ecx: 1a00001 edx: 0
size of EPC section in Processor Reserved Memory, 26 M
CPUID Leaf 12H, Sub-Leaf 3 of Intel SGX Capabilities (EAX=12H,ECX=3)
eax: c1e00001 ebx: 1 ecx: 200001 edx: 0
size of EPC section in Processor Reserved Memory, 2 M
"""


def test_sgx_decode_of_a_test_sgx_dump_matches_what_test_sgx_printed() -> None:
    result = sgx.decode(sgx.parse_dump(TEST_SGX_OUTPUT), "dump")
    assert result.outcome == "enabled"
    assert (result.sgx_available, result.launch_control, result.sgx1, result.sgx2) == (True, True, True, False)
    assert (result.max_enclave_size_not64, result.max_enclave_size_64) == (0x1F, 0x24)
    assert result.epc_mb == 26 + 2  # the two EPC sections test-sgx printed
    assert result.hypervisor is True  # leaf 1 ECX feda3203 has bit 31 set: that machine ran under a hypervisor (e.g. Hyper-V root)


def test_sgx_from_flags_says_what_flags_cannot_tell() -> None:
    assert sgx.from_flags({"fpu", "sgx", "sgx_lc"}).outcome == "enabled"
    assert sgx.from_flags({"fpu"}).outcome == "absent-or-disabled"
    assert sgx.from_flags({"fpu", "hypervisor"}).outcome == "absent-or-masked"


# -- the registry -------------------------------------------------------------------------
def test_run_sorts_most_severe_first_and_rejects_unknown_checks() -> None:
    s = snap([host("a"), host("b", options={l1tf.MITIGATION: False, l1tf.SUPPRESS: 1})])
    assert [f.severity for f in audits.run(s, [])] == [Severity.CRITICAL, Severity.HIGH]
    with pytest.raises(ConfigError, match="no such check"):
        audits.run(s, ["l1ft"])


def test_cpu_flags_unreadable_is_a_labswitch_error(tmp_path: Any) -> None:
    from labswitch import cpuid
    from labswitch.errors import LabswitchError

    with pytest.raises(LabswitchError, match="can be read here"):
        cpuid.cpu_flags(tmp_path / "no-cpuinfo")
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu sgx sgx_lc\n")
    assert cpuid.cpu_flags(tmp_path / "cpuinfo") == {"fpu", "sgx", "sgx_lc"}

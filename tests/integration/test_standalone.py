"""A lab with no vCenter: two standalone ESXi hosts (labsim --no-vcenter), cycled through each host's own API;
every effect read back through pyVmomi on the hosts themselves and Redfish, never from labswitch's own report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyVmomi import vim

from tests.integration.test_down_up import FAST, Run, configure, run
from tests.integration.test_labsim_esxi import the_host, vms
from tests.labsim import Lab, answers, bmc_power

SERVERS = ("esx11", "esx12")
LAB = (*FAST, "--no-vcenter", "--mgmt-hosts", "0", "--clusters", "1", "--hosts-per-cluster", "2", "--vms-per-host", "3")
# Each host's autostart order, as an admin sets it in the host client: (VM, order, start delay in seconds).
AUTOSTART = {"esx11": [("esx11-vm03", 1, 1), ("esx11-vm01", 2, 0)], "esx12": [("esx12-vm02", 1, 1)]}


def set_autostart(lab: Lab) -> None:
    for server, entries in AUTOSTART.items():
        with lab.host_api(server) as host:
            own = vms(host)
            info = [
                vim.host.AutoStartManager.AutoPowerInfo(
                    key=own[name],
                    startOrder=order,
                    startDelay=delay,
                    waitForHeartbeat="no",
                    startAction="powerOn",
                    stopDelay=0,
                    stopAction="systemDefault",
                )
                for name, order, delay in entries
            ]
            the_host(host).configManager.autoStartManager.ReconfigureAutostart(vim.host.AutoStartManager.Config(powerInfo=info))


def power(lab: Lab) -> dict[str, Any]:
    """VM name -> (power state, boot time), read through each host's own API."""
    out = {}
    for server in SERVERS:
        with lab.host_api(server) as host:
            out.update({name: (vm.runtime.powerState, vm.runtime.bootTime) for name, vm in vms(host).items()})
    return out


def test_a_lab_without_vcenter_cycles_through_its_hosts_in_their_autostart_order(
    cli: Run, lab_factory: Callable[..., Lab], state_dir: Path
) -> None:
    lab = lab_factory(*LAB)
    set_autostart(lab)
    config = configure(lab, "startup_from_autostart = true\n")
    assert "[vcenter]" not in config.read_text()

    status = run(cli, lab, state_dir, config, "status", "--json")
    assert status.code == 0, status.stderr
    assert {h["name"]: h["connection_state"] for h in status.json()["hosts"]} == {"esx11": "connected", "esx12": "connected"}

    plan = run(cli, lab, state_dir, config, "plan", "down", "--json")
    assert plan.code == 0, plan.stderr
    endpoints = {s["endpoint"].split(":")[0] for s in plan.json()["steps"]}
    assert endpoints - {"labswitch"} == {"esxi", "bmc"}, "no step goes through a vCenter (labswitch: its own order barriers)"

    down = run(cli, lab, state_dir, config, "down", "--yes")
    assert down.code == 0, down.stderr
    assert [bmc_power(lab, s) for s in SERVERS] == ["Off", "Off"]
    assert not any(answers(lab.esxi_url(s)) for s in SERVERS)

    up = run(cli, lab, state_dir, config, "up", "--yes")
    assert up.code == 0, up.stderr
    after = power(lab)
    on = {name for name, (state, _) in after.items() if state == "poweredOn"}
    assert on == {"esx11-vm03", "esx11-vm01", "esx12-vm02"}, "exactly the VMs in the hosts' autostart orders"
    first = max(after[n][1] for n in ("esx11-vm03", "esx12-vm02"))
    assert (after["esx11-vm01"][1] - first).total_seconds() >= 0.9, "order 2 starts after order 1 and its start delay"
    for server in SERVERS:
        with lab.host_api(server) as host:
            assert not the_host(host).runtime.inMaintenanceMode

    assert run(cli, lab, state_dir, config, "down", "--yes").code == 0
    restore = run(cli, lab, state_dir, config, "up", "--restore", "--yes")
    assert restore.code == 0, restore.stderr
    assert {name for name, (state, _) in power(lab).items() if state == "poweredOn"} == on, "--restore: what ran before the down"


def test_bad_input_without_vcenter(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*LAB)
    config = configure(lab)
    text = config.read_text()
    neither = config.with_name("neither.toml")
    neither.write_text(text[: text.index("[esxi]")] + text[text.index("[policy]") :])
    result = run(cli, lab, state_dir, neither, "status")
    assert result.code == 2 and "no [vcenter], [esxi] or [proxmox]" in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
        result.stderr
    )

    fix = run(cli, lab, state_dir, config, "fix", "l1tf", "--mitigate", "--dry-run")
    assert fix.code == 2 and "works through vCenter" in fix.stderr and len(fix.stderr.strip().splitlines()) == 1, fix.stderr

    wrong = Lab(lab.proc, lab.url, lab.thumbprint, {**lab.env, "LABSIM_ESXI_PASSWORD": "wrong"}, lab.config, lab.cert)
    down = run(cli, wrong, state_dir, config, "down", "--yes")
    assert down.code == 1, down.stderr
    assert "login refused for user 'root'; check esxi.user and esxi.password" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1 and "Traceback" not in down.stderr
    assert {state for state, _ in power(lab).values()} == {"poweredOn"}, "nothing changed"
    assert [bmc_power(lab, s) for s in SERVERS] == ["On", "On"]


def test_a_host_with_its_own_password_and_certificate_pin(cli: Run, lab_factory: Callable[..., Lab], state_dir: Path) -> None:
    lab = lab_factory(*LAB, "--esxi-passwords", "esx12=esx12-own-root")
    lab.env["ESX12_ROOT"] = "esx12-own-root"
    pin = f'{{ thumbprint = "{lab.thumbprint}" }}'
    # [esxi] pins a certificate no host has: each host is trusted only through its own esxi_tls (self-signed hosts differ)
    config = configure(lab, replace=((f"tls = {pin}\n\n[policy]", f'tls = {{ thumbprint = "{"ab" * 32}" }}\n\n[policy]'),))
    text = config.read_text()
    for server, own in (("esx11", ""), ("esx12", 'esxi_password = { env = "ESX12_ROOT" }\n')):
        text = text.replace(f'name = "{server}"\n', f'name = "{server}"\n{own}esxi_tls = {pin}\n', 1)
    config.write_text(text)

    status = run(cli, lab, state_dir, config, "status", "--json")
    assert status.code == 0, status.stderr
    assert {h["name"]: h["connection_state"] for h in status.json()["hosts"]} == {"esx11": "connected", "esx12": "connected"}
    assert "esx12-own-root" not in status.stdout + status.stderr

    lab.env["ESX12_ROOT"] = "not-its-password"
    refused = run(cli, lab, state_dir, config, "down", "--yes")
    assert refused.code == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "host esx12" in refused.stderr and "check esxi.user and servers.esxi_password of esx12" in refused.stderr
    assert [bmc_power(lab, s) for s in SERVERS] == ["On", "On"], "nothing changed"
    unpinned = config.with_name("unpinned.toml")
    unpinned.write_text(config.read_text().replace(f'name = "esx11"\nesxi_tls = {pin}\n', 'name = "esx11"\n'))
    untrusted = run(cli, lab, state_dir, unpinned, "status")
    assert untrusted.code == 1 and "host esx11" in untrusted.stderr, untrusted.stderr
    assert "does not match the pinned tls.thumbprint" in untrusted.stderr, "without its own pin, [esxi]'s applies"

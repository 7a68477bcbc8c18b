"""`labswitch bmc ...` and `labswitch energy` against labsim, read back through Redfish."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result, wait_until
from tests.labsim import Lab, bmc_power

Run = Callable[..., Result]
POWER = "/redfish/v1/Chassis/System.Embedded.1/Power"


def run(cli: Run, lab: Lab, tmp_path: Path, *args: str, config: Path | None = None) -> Result:
    return cli("--config", str(config or lab.config), *args, env={**lab.env, "XDG_STATE_HOME": str(tmp_path / "state")})


def test_bmc_status_on_off_cycle(cli: Run, lab_factory: Callable[..., Lab], tmp_path: Path) -> None:
    lab = lab_factory("--host-shutdown-delay", "300ms", "--host-boot-delay", "300ms")
    status = run(cli, lab, tmp_path, "bmc", "status", "--json")
    assert status.code == 0 and {"server": "esx11", "power": "On"} in status.json()
    on = run(cli, lab, tmp_path, "bmc", "on", "esx11")
    assert on.code == 0 and "esx11: already on" in on.stdout
    off = run(cli, lab, tmp_path, "bmc", "off", "esx11", "--force", "--json")
    assert off.code == 0 and off.json() == [{"server": "esx11", "ok": True, "changed": True, "detail": "powered off (ForceOff)"}]
    assert bmc_power(lab, "esx11") == "Off"
    assert run(cli, lab, tmp_path, "bmc", "on", "esx11").code == 0
    assert bmc_power(lab, "esx11") == "On"
    assert run(cli, lab, tmp_path, "bmc", "shutdown", "esx12").code == 0
    wait_until(lambda: bmc_power(lab, "esx12") == "Off", 10, "esx12 off after a graceful shutdown")
    assert run(cli, lab, tmp_path, "bmc", "cycle", "esx12").code == 0
    assert bmc_power(lab, "esx12") == "On"


def test_bmc_info_and_watts(cli: Run, lab: Lab, tmp_path: Path) -> None:
    info = run(cli, lab, tmp_path, "bmc", "info", "esx11", "--json").json()[0]
    system = lab.redfish("esx11").json()
    assert (info["model"], info["service_tag"], info["bios_version"]) == (system["Model"], system["SKU"], system["BiosVersion"])
    watts = run(cli, lab, tmp_path, "bmc", "watts", "--json").json()
    truth = {r["server"]: lab.redfish(r["server"], path=POWER).json()["PowerControl"][0]["PowerConsumedWatts"] for r in watts}
    assert {r["server"]: r["watts"] for r in watts} == truth


def test_bmc_bad_input_spares_the_other_servers(cli: Run, lab: Lab, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    config = tmp_path / "c.toml"
    config.write_text(lab.config.read_text().replace(lab.bmc_url("esx12"), f"https://127.0.0.1:{closed}"))
    result = run(cli, lab, tmp_path, "bmc", "status", "--json", config=config)
    assert result.code == 1
    rows = {r["server"]: r for r in json.loads(result.stdout)}
    assert rows["esx12"]["power"] == "Unknown" and "server esx12" in rows["esx12"]["error"]
    assert all(r["power"] == "On" for name, r in rows.items() if name != "esx12")
    assert [line for line in result.stderr.splitlines() if "esx12" in line and "cannot connect" in line]
    assert "Traceback" not in result.stderr
    unknown = run(cli, lab, tmp_path, "bmc", "on", "nope")
    assert unknown.code == 2 and "server nope: not in the config" in unknown.stderr


def test_energy_reports_labsim_watts_and_a_consistent_cost(cli: Run, lab: Lab, tmp_path: Path) -> None:
    config = tmp_path / "e.toml"
    config.write_text(lab.config.read_text() + '\n[energy]\nprice_per_kwh = 0.5\ncurrency = "EUR"\n')
    result = run(cli, lab, tmp_path, "energy", "--json", "--plot", str(tmp_path / "energy.png"), config=config)
    assert result.code == 0, result.stderr
    data = result.json()
    truth = {s["server"]: lab.redfish(s["server"], path=POWER).json()["PowerControl"][0]["PowerConsumedWatts"] for s in data["servers"]}
    assert {s["server"]: s["watts"] for s in data["servers"]} == truth
    assert data["total_watts"] == sum(truth.values())
    # never sampled (no `serve`): the draw when on is energy.server_watts, not the reading now, and said so
    expected = len(truth) * 80 * 24 * 365 / 12 / 1000 * 0.5
    assert abs(data["monthly_cost_always_on"] - expected) < 0.01
    assert data["kwh"] == 0 and "nothing counted yet" in result.stderr, "a lab with no run and no sample counts nothing"
    assert data["currency"] == "EUR"
    assert (tmp_path / "energy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bmc_commands_against_sushy_tools(cli: Run, tmp_path: Path) -> None:
    from tests import peers

    with peers.sushy_emulator(tmp_path / "sushy") as peer:
        config = tmp_path / "sushy.toml"
        config.write_text(
            f'[vcenter]\nurl = "vc.invalid"\nuser = "u"\npassword = {{ env = "UNUSED_VC" }}\n\n[groups.lab]\n\n'
            f'[[servers]]\nname = "sushy1"\nesxi = "sushy1.lab"\ngroup = "lab"\n'
            f'bmc = {{ driver = "redfish", address = "{peer.url}", user = "{peer.user}", password = {{ env = "SUSHY_PW" }}, '
            f'tls = {{ thumbprint = "{peer.thumbprint}" }} }}\n'
        )
        env = {"UNUSED_VC": "x", "SUSHY_PW": peer.password}
        system = f"{peer.url}/redfish/v1/Systems/lab-1"

        def truth() -> str:
            import requests

            return str(requests.get(system, auth=(peer.user, peer.password), verify=str(peer.cert), timeout=10).json()["PowerState"])

        status = cli("--config", str(config), "bmc", "status", "--json", env=env)
        assert status.code == 0 and status.json() == [{"server": "sushy1", "power": truth()}]
        on = cli("--config", str(config), "bmc", "on", "--json", env=env)
        assert on.code == 0 and on.json()[0]["ok"] is True
        wait_until(lambda: truth() == "On", 20, "sushy-tools system on (its fake driver applies changes 0-11 s later)")
        off = cli("--config", str(config), "bmc", "off", "sushy1", "--force", env=env)
        assert off.code == 0 and "sushy1: powered off (ForceOff)" in off.stdout
        wait_until(lambda: truth() == "Off", 20, "sushy-tools system off")
        info = cli("--config", str(config), "bmc", "info", "--json", env=env)
        assert info.code == 0 and info.json()[0]["power"] == "Off"
        watts = cli("--config", str(config), "bmc", "watts", "--json", env=env)
        assert watts.code == 0 and watts.json()[0]["watts"] is None
        assert "reports no power draw" in watts.json()[0]["error"]

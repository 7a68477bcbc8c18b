"""`labswitch vcsa check|repair` over SSH against the hand-written appliance fake in
tests/appliance.py (both login shells), effects read back from the fake's state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.appliance import HISTORY, FakeAppliance, appliance_ssh
from tests.conftest import Result


@pytest.fixture(params=["appliancesh", "bash"])
def appliance(request: pytest.FixtureRequest) -> Iterator[FakeAppliance]:
    with appliance_ssh(FakeAppliance(login_shell=request.param)) as fake:
        yield fake


def config_for(tmp_path: Path, fake: FakeAppliance, host_key: str | None = None) -> Path:
    path = tmp_path / "labswitch.toml"
    path.write_text(
        '[vcenter]\nurl = "vcsa.lab.local"\nuser = "administrator@vsphere.local"\npassword = { env = "VC_PW" }\n\n'
        f'[vcsa]\naddress = "127.0.0.1:{fake.port}"\npassword = {{ env = "VCSA_PW" }}\nhost_key = "{host_key or fake.host_key}"\n'
        "timeout = 10\n"
    )
    return path


def test_check_reports_stopped_core_services_from_either_shell(
    tmp_path: Path, appliance: FakeAppliance, cli: Callable[..., Result]
) -> None:
    config = config_for(tmp_path, appliance)
    result = cli("--config", str(config), "vcsa", "check", "--json", env={"VC_PW": "x", "VCSA_PW": appliance.password})
    assert result.code == 1, result.stderr  # unhealthy
    report = result.json()
    assert report["login_shell"] == appliance.login_shell
    assert set(report["core_stopped"]) == {"vsphere-ui", "vmware-vpxd"}
    assert report["backup_history_present"] is True
    assert appliance.password not in result.stdout + result.stderr


def test_repair_dry_run_changes_nothing(tmp_path: Path, appliance: FakeAppliance, cli: Callable[..., Result]) -> None:
    config = config_for(tmp_path, appliance)
    args = ["--config", str(config), "vcsa", "repair", "--clear-backup-history", "--dry-run", "--json"]
    result = cli(*args, env={"VC_PW": "x", "VCSA_PW": appliance.password})
    assert result.code == 0, result.stderr
    assert [s["command"].split()[0] for s in result.json()["steps"]] == ["mv", "service-control", "service-control"]
    assert HISTORY in appliance.files
    assert not [c for c in appliance.commands if c.startswith(("mv", "service-control --stop", "service-control --start"))]


def test_repair_moves_the_history_aside_then_restarts_and_is_healthy(
    tmp_path: Path, appliance: FakeAppliance, cli: Callable[..., Result]
) -> None:
    config = config_for(tmp_path, appliance)
    env = {"VC_PW": "x", "VCSA_PW": appliance.password}
    without = cli("--config", str(config), "vcsa", "repair", "--json", env=env)
    assert without.code == 1  # the stuck history keeps a service down
    result = cli("--config", str(config), "vcsa", "repair", "--clear-backup-history", "--json", env=env)
    assert result.code == 0, result.stdout + result.stderr
    moved = result.json()["backup_history_moved_to"]
    assert moved.startswith("/var/tmp/backupRestore-history.json.") and moved in appliance.files and HISTORY not in appliance.files
    order = [c for c in appliance.commands if c.startswith(("mv", "service-control --stop", "service-control --start"))]
    assert order[-3:] == [f"mv -n {HISTORY} {moved}", "service-control --stop --all", "service-control --start --all"]
    assert result.json()["after"]["healthy"] is True
    assert appliance.stopped == {"vmware-imagebuilder", "vmware-netdumper"}


def test_enables_a_disabled_appliance_shell(tmp_path: Path, cli: Callable[..., Result]) -> None:
    with appliance_ssh(FakeAppliance(shell_enabled=False)) as fake:
        result = cli("--config", str(config_for(tmp_path, fake)), "vcsa", "check", "--json", env={"VC_PW": "x", "VCSA_PW": fake.password})
        assert result.json()["login_shell"] == "appliancesh" and fake.shell_enabled


def test_bad_host_key_password_and_missing_table_are_one_line(tmp_path: Path, cli: Callable[..., Result]) -> None:
    with appliance_ssh(FakeAppliance()) as fake:
        other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        result = cli("--config", str(config_for(tmp_path, fake, other)), "vcsa", "check", env={"VC_PW": "x", "VCSA_PW": fake.password})
        assert result.code == 1 and "host key not trusted" in result.stderr and result.stderr.count("\n") == 1
        wrong = cli("--config", str(config_for(tmp_path, fake)), "vcsa", "check", env={"VC_PW": "x", "VCSA_PW": "nope"})
        assert wrong.code == 1 and "login refused" in wrong.stderr and "nope" not in wrong.stderr
        assert fake.commands == []
    bare = tmp_path / "bare.toml"
    bare.write_text('[vcenter]\nurl = "vcsa"\nuser = "u"\npassword = "p"\n')
    result = cli("--config", str(bare), "vcsa", "check")
    assert result.code == 2 and "no [vcsa] table" in result.stderr

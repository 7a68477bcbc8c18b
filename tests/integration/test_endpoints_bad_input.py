"""Wrong credentials, untrusted certificates, unreachable endpoints, bad config: one line, documented exit code."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.conftest import Result
from tests.labsim import Lab
from tests.peers import free_port

Run = Callable[..., Result]


def edit(lab: Lab, tmp_path: Path, old: str, new: str, count: int = -1) -> Path:
    text = lab.config.read_text()
    assert old in text
    path = tmp_path / "edited.toml"
    path.write_text(text.replace(old, new, count))
    return path


def assert_one_line(result: Result, code: int, *fragments: str, secrets: tuple[str, ...] = ()) -> None:
    assert result.code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    error_lines = [line for line in lines if line.startswith("labswitch: error: ")]
    assert len(error_lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0]
    for secret in secrets:
        assert secret not in result.stderr and secret not in result.stdout


def test_wrong_vcenter_password(cli: Run, lab: Lab) -> None:
    env = {**lab.env, "LABSIM_VCENTER_PASSWORD": "wrong-s3cret"}
    result = cli("--config", str(lab.config), "status", "--json", env=env)
    assert_one_line(result, 1, "login refused", "administrator@vsphere.local", "vcenter.password", secrets=("wrong-s3cret",))
    assert result.stdout == ""


def test_verbose_shows_the_root_cause_without_the_secret(cli: Run, lab: Lab, tmp_path: Path) -> None:
    """The one line stays one line; -v adds the chain under it (the vendor's fault, the socket's error), with
    the wrong password nowhere in it."""
    env = {**lab.env, "LABSIM_VCENTER_PASSWORD": "wrong-s3cret"}
    result = cli("-v", "--config", str(lab.config), "status", env=env)
    assert_one_line(result, 1, "login refused", secrets=("wrong-s3cret",))
    assert "caused by: pyVmomi.VmomiSupport.vim.fault.InvalidLogin" in result.stderr, result.stderr
    plain = cli("--config", str(lab.config), "status", env=env)
    assert "caused by" not in plain.stderr
    unreachable = edit(lab, tmp_path, lab.url, f"https://127.0.0.1:{free_port()}/sdk", 1)
    result = cli("-v", "--config", str(unreachable), "status", env=lab.env)
    assert_one_line(result, 1, "cannot reach")
    assert "caused by: ConnectionRefusedError" in result.stderr, result.stderr


def test_wrong_thumbprint_is_refused(cli: Run, lab: Lab, tmp_path: Path) -> None:
    config = edit(lab, tmp_path, lab.thumbprint, "0" * 64, 1)
    assert_one_line(cli("--config", str(config), "status", env=lab.env), 1, "does not match the pinned tls.thumbprint")


def test_default_tls_refuses_a_self_signed_vcenter(cli: Run, lab: Lab, tmp_path: Path) -> None:
    config = edit(lab, tmp_path, f'tls = {{ thumbprint = "{lab.thumbprint}" }}\n', "", 1)
    assert_one_line(cli("--config", str(config), "status", env=lab.env), 1, "certificate not trusted", "vcenter.tls")


def test_ca_file_verifies(cli: Run, lab: Lab, tmp_path: Path) -> None:
    config = edit(lab, tmp_path, f'{{ thumbprint = "{lab.thumbprint}" }}', f'{{ ca_file = "{lab.cert}" }}')
    result = cli("--config", str(config), "status", "--json", env=lab.env)
    assert result.code == 0, result.stderr
    assert all(h["bmc_power"] == "On" for h in result.json()["hosts"])


def test_insecure_and_pins_survive_requests_ca_bundle(cli: Run, lab: Lab, tmp_path: Path) -> None:
    # REQUESTS_CA_BUNDLE overrides a requests Session's verify=False: labswitch passes verify per request.
    bogus = tmp_path / "bundle.pem"
    bogus.write_text("")
    env = {**lab.env, "REQUESTS_CA_BUNDLE": str(bogus), "CURL_CA_BUNDLE": str(bogus)}
    pinned = cli("--config", str(lab.config), "status", "--json", env=env)
    assert pinned.code == 0, pinned.stderr
    assert all(h["bmc_power"] == "On" for h in pinned.json()["hosts"])
    config = edit(lab, tmp_path, f'{{ thumbprint = "{lab.thumbprint}" }}', "{ insecure = true }")
    insecure = cli("--config", str(config), "status", "--json", env=env)
    assert insecure.code == 0, insecure.stderr
    assert all(h["bmc_power"] == "On" for h in insecure.json()["hosts"])
    assert "TLS verification is off" in insecure.stderr


def test_unreachable_vcenter(cli: Run, lab: Lab, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    config = edit(lab, tmp_path, lab.url, f"https://127.0.0.1:{closed}/sdk", 1)
    assert_one_line(cli("--config", str(config), "status", env=lab.env), 1, "cannot reach", str(closed))


def test_wrong_bmc_password_names_the_server_and_spares_the_others(cli: Run, lab: Lab, tmp_path: Path) -> None:
    text = lab.config.read_text()
    head, _, tail = text.partition('name = "esx12"')
    tail = tail.replace('password = { env = "LABSIM_BMC_PASSWORD" }', 'password = { env = "WRONG_BMC" }', 1)
    config = tmp_path / "c.toml"
    config.write_text(head + 'name = "esx12"' + tail)
    result = cli("--config", str(config), "status", "--json", env={**lab.env, "WRONG_BMC": "nope-s3cret"})
    assert result.code == 1, "a BMC not read: status says what it read, and exits 1"
    power = {h["name"]: h for h in result.json()["hosts"]}
    assert power["esx12"]["bmc_power"] == "Unknown"
    assert "server esx12" in power["esx12"]["bmc_error"] and "login refused" in power["esx12"]["bmc_error"]
    assert all(h["bmc_power"] == "On" for name, h in power.items() if name != "esx12")
    assert "nope-s3cret" not in result.stdout + result.stderr


def test_bad_config_exits_2_and_contacts_nothing(cli: Run, lab: Lab, tmp_path: Path) -> None:
    lab.soap_calls(reset=True)
    config = edit(lab, tmp_path, '{ env = "LABSIM_VCENTER_PASSWORD" }', '{ env = "LABSWITCH_UNSET_VAR" }', 1)
    assert_one_line(
        cli("--config", str(config), "status", env=lab.env), 2, str(config), "vcenter.password", "LABSWITCH_UNSET_VAR is not set"
    )
    assert lab.soap_calls() == {}


def test_config_from_environment_variable(cli: Run, lab: Lab) -> None:
    result = cli("status", "--json", env={**lab.env, "LABSWITCH_CONFIG": str(lab.config)})
    assert result.code == 0, result.stderr
    assert result.json()["hosts"]


def test_usage_error_exits_2(cli: Run) -> None:
    result = cli("status", "--no-such-flag")
    assert result.code == 2
    assert "No such option" in result.stderr


def test_no_tag_category_at_all_is_an_empty_list(cli: Run, lab: Lab) -> None:
    # govmomi's simulator answers the category list of a vCenter without categories with null.
    base = lab.url.removesuffix("/sdk")
    http = requests.Session()
    http.trust_env = False
    http.verify = str(lab.cert)
    http.headers["vmware-api-session-id"] = http.post(
        f"{base}/rest/com/vmware/cis/session", auth=("administrator@vsphere.local", lab.env["LABSIM_VCENTER_PASSWORD"])
    ).json()["value"]
    for tag in http.get(f"{base}/rest/com/vmware/cis/tagging/tag").json()["value"]:
        assert http.delete(f"{base}/rest/com/vmware/cis/tagging/tag/id:{tag}").status_code == 200
    for category in http.get(f"{base}/rest/com/vmware/cis/tagging/category").json()["value"]:
        assert http.delete(f"{base}/rest/com/vmware/cis/tagging/category/id:{category}").status_code == 200
    assert http.get(f"{base}/rest/com/vmware/cis/tagging/category").json()["value"] is None
    status = cli("--config", str(lab.config), "status", "--json", env=lab.env)
    assert status.code == 0, status.stderr
    assert all(vm["tags"] == [] for vm in status.json()["vms"])
    plan = cli("--config", str(lab.config), "plan", "up", "--json", env=lab.env)  # up reads tags to choose VMs
    assert plan.code == 0, plan.stderr


def test_a_silent_bmc_is_reported_within_bmc_timeout(cli: Run, lab: Lab, tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections, never answers
    config = edit(lab, tmp_path, f'"{lab.bmc_url("esx12")}"', f'"https://127.0.0.1:{silent.getsockname()[1]}"', 1)
    config.write_text(config.read_text().replace("[policy]\n", "[policy]\nbmc_timeout = 4\n"))
    start = time.monotonic()
    result = cli("--config", str(config), "status", "--json", env=lab.env)
    took = time.monotonic() - start
    silent.close()
    assert result.code == 1, result.stderr  # a BMC unread: status says what it read, and exits 1
    esx12 = next(h for h in result.json()["hosts"] if h["name"] == "esx12")
    assert esx12["bmc_power"] == "Unknown" and "no answer within 4s (policy.bmc_timeout)" in esx12["bmc_error"]
    # One budget for the whole operation: sushy's three tries of 4 s each and its pauses took 14 s.
    assert took < 4 + 5, f"status took {took:.1f}s"


def test_a_wrong_bmc_password_everywhere_is_one_line_not_a_flood(cli: Run, lab: Lab) -> None:
    env = {**lab.env, "LABSIM_BMC_PASSWORD": "wrong-s3cret"}
    status = cli("--config", str(lab.config), "status", env=env)
    lines = status.stderr.strip().splitlines()
    assert status.code == 1 and len(lines) <= 3 and all(len(line) <= 200 for line in lines), status.stderr
    assert "BMC of 5 servers (esx11, esx12, esx21, … mgmt01): login refused" in status.stderr and "bmc.password" in status.stderr
    assert "Authentication error" not in status.stderr, "sushy's own log records stay out (-vv shows them)"
    down = cli("--config", str(lab.config), "down", "--yes", env=env)
    lines = down.stderr.strip().splitlines()
    assert down.code == 3 and len(lines) <= 3 and all(len(line) <= 300 for line in lines), down.stderr
    assert down.stderr.count("--skip-unreachable") == 1 and "wrong-s3cret" not in down.stderr + status.stderr

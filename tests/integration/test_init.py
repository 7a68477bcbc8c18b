"""`labswitch init` against labsim, `host network` through the CLI, and the deploy files linted."""

from __future__ import annotations

import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from labswitch.config import load
from tests.conftest import Result
from tests.labsim import REPO, Lab


def init(cli: Callable[..., Result], lab: Lab, out: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
    full_env = {**lab.env, "LABSWITCH_VCENTER_PASSWORD": lab.env["LABSIM_VCENTER_PASSWORD"], **(env or {})}
    return cli("init", "--vcenter", lab.url, "--thumbprint", lab.thumbprint, "--out", str(out), *extra, env=full_env)


def test_init_writes_a_config_that_loads_and_works_without_edits(
    lab: Lab, cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "labswitch.toml"
    result = init(cli, lab, out, "--bmc-pattern", "{host}-idrac.{domain}")
    assert result.code == 0, result.stderr
    text = out.read_text()
    assert text.startswith("# labswitch configuration, written by `labswitch init`")
    assert out.stat().st_mode & 0o777 == 0o600, "a config names its secrets: its owner's only"
    assert lab.env["LABSIM_VCENTER_PASSWORD"] not in text  # secrets are references only
    env = {"LABSWITCH_VCENTER_PASSWORD": lab.env["LABSIM_VCENTER_PASSWORD"], "LABSWITCH_BMC_PASSWORD": "unused"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = load(out)
    assert {name: g.always_on for name, g in config.groups.items()} == {"always_on": True, "cluster1": False, "cluster2": False}
    assert {s.name: (s.group, s.bmc.address) for s in config.servers} == {
        "mgmt01": ("always_on", "mgmt01-idrac.lab.local"),
        "esx11": ("cluster1", "esx11-idrac.lab.local"),
        "esx12": ("cluster1", "esx12-idrac.lab.local"),
        "esx21": ("cluster2", "esx21-idrac.lab.local"),
        "esx22": ("cluster2", "esx22-idrac.lab.local"),
    }
    assert config.vcenter.vm == "vcsa" and config.vcenter.tls.thumbprint == lab.thumbprint
    # Against the live lab with no edits: vCenter is read; the made-up BMC names are reported (exit 1: unread).
    status = cli("--config", str(out), "status", "--json", env=env)
    assert status.code == 1 and "BMC of 5 servers" in status.stderr, status.stderr
    assert {h["esxi"]: h["group"] for h in status.json()["hosts"]}["esx21.lab.local"] == "cluster2"
    # A dry run of down plans against the written groups and refuses: the BMCs cannot be reached.
    assert cli("--config", str(out), "plan", "down", env=env).code == 3


def test_init_never_overwrites_without_force(lab: Lab, cli: Callable[..., Result], tmp_path: Path) -> None:
    out = tmp_path / "labswitch.toml"
    out.write_text("# mine\n")
    refused = init(cli, lab, out)
    assert refused.code == 2 and "--force" in refused.stderr and out.read_text() == "# mine\n"
    assert init(cli, lab, out, "--force").code == 0 and "[vcenter]" in out.read_text()


def test_init_bad_input_is_one_line(lab: Lab, cli: Callable[..., Result], tmp_path: Path) -> None:
    out = tmp_path / "x.toml"
    untrusted = cli("init", "--vcenter", lab.url, "--out", str(out), env={"LABSWITCH_VCENTER_PASSWORD": "x"})
    assert untrusted.code == 1 and f"--thumbprint {lab.thumbprint}" in untrusted.stderr and untrusted.stderr.count("\n") == 1
    wrong = init(cli, lab, out, env={"LABSWITCH_VCENTER_PASSWORD": "wrong-password"})
    assert wrong.code == 1 and "login refused" in wrong.stderr and "wrong-password" not in wrong.stderr
    assert init(cli, lab, out, "--bmc-pattern", "{nope}-oob").code == 2
    missing = cli("init", "--vcenter", lab.url, "--out", str(out), "--password-env", "NO_SUCH_VAR_XYZ")
    assert missing.code == 2 and "$NO_SUCH_VAR_XYZ is not set" in missing.stderr
    assert not out.exists()


def test_host_network_writes_mode_644_and_rejects_bad_input(cli: Callable[..., Result], tmp_path: Path) -> None:
    out = tmp_path / "10-static-eth0.network"
    args = ["host", "network", "--interface", "eth0", "--address", "192.168.4.7/24", "--gateway", "192.168.4.1"]
    assert cli(*args, "--dns", "192.168.4.1", "--out", str(out)).code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644 and "Gateway=192.168.4.1" in out.read_text()
    bad = cli("host", "network", "--interface", "eth0", "--address", "10.0.0.5/8", "--gateway", "192.168.4.1")
    assert bad.code == 2 and bad.stderr.startswith("labswitch: error: --gateway 192.168.4.1: not in 10.0.0.0/8") and bad.stdout == ""


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(REPO / ".venv/bin/hadolint"))
    proc = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (REPO / "Dockerfile").read_text()
    assert "USER 10001" in text and 'VOLUME ["/config", "/state"]' in text and "PASSWORD=" not in text


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (make deps installs it)")
def test_deploy_script_is_shellcheck_clean_and_dry_runs(tmp_path: Path) -> None:
    script = REPO / "deploy" / "container-host.sh"
    assert subprocess.run(["shellcheck", str(script)], capture_output=True, text=True).returncode == 0
    network = tmp_path / "10-static-eth0.network"
    network.write_text("[Match]\nName=eth0\n")
    proc = subprocess.run([str(script), "--network-file", str(network), "--user", "labops", "--dry-run"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "would run: install -m 644 -D" in proc.stdout and "nothing changed" in proc.stdout
    assert not Path("/etc/systemd/network/10-static-eth0.network").exists() or "ok:" in proc.stdout
    bad = subprocess.run([str(script), "--network-file", str(network), "--user", "root", "--dry-run"], capture_output=True, text=True)
    assert bad.returncode == 2 and "must not be root" in bad.stderr


def test_version_needs_no_command_and_no_config(cli: Callable[..., Result]) -> None:
    from labswitch import __version__

    result = cli("--version")
    assert result.code == 0 and result.stdout == f"labswitch {__version__}\n"


def test_init_esxi_writes_a_config_for_a_lab_without_vcenter(
    lab_factory: Callable[..., Lab], cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = lab_factory("--no-vcenter", "--mgmt-hosts", "0", "--clusters", "1", "--hosts-per-cluster", "2", "--vms-per-host", "2")
    hosts = [lab.esxi_url(s).removeprefix("https://") for s in ("esx11", "esx12")]
    out = tmp_path / "standalone.toml"
    env = {"LABSWITCH_ESXI_PASSWORD": lab.env["LABSIM_ESXI_PASSWORD"]}
    untrusted = cli("init", "--esxi", hosts[0], "--out", str(out), env=env)
    assert untrusted.code == 1 and f"--thumbprint {lab.thumbprint}" in untrusted.stderr and untrusted.stderr.count("\n") == 1
    result = cli("init", "--esxi", ",".join(hosts), "--thumbprint", lab.thumbprint, "--out", str(out), env=env)
    assert result.code == 0, result.stderr
    assert "2 standalone hosts, 4 VMs, no vCenter" in result.stdout
    text = out.read_text()
    assert "[vcenter]" not in text and "[esxi]" in text and lab.env["LABSIM_ESXI_PASSWORD"] not in text
    for key, value in {**env, "LABSWITCH_BMC_PASSWORD": "unused"}.items():
        monkeypatch.setenv(key, value)
    config = load(out)
    assert config.vcenter is None and config.policy.startup_from_autostart
    assert [s.esxi for s in config.servers] == hosts and {s.group for s in config.servers} == {"lab"}
    status = cli("--config", str(out), "status", "--json", env={**env, "LABSWITCH_BMC_PASSWORD": "unused"})
    assert status.code == 1 and "BMC of 2 servers" in status.stderr, "the made-up BMC addresses are unread: said, exit 1"
    assert {h["connection_state"] for h in status.json()["hosts"]} == {"connected"}
    neither = cli("init", "--out", str(tmp_path / "n.toml"))
    assert neither.code == 2 and "give --vcenter ADDRESS, --esxi HOST for each standalone host" in neither.stderr

    # self-signed hosts each have their own certificate: one pin per host, written to each server's esxi_tls
    both = ["--esxi", hosts[0], "--esxi", hosts[1]]
    untrusted = cli("init", *both, "--out", str(tmp_path / "p.toml"), env=env)
    assert untrusted.code == 1 and any(f"--thumbprint {h}={lab.thumbprint}" in untrusted.stderr for h in hosts), untrusted.stderr
    pins = [arg for h in hosts for arg in ("--thumbprint", f"{h}={lab.thumbprint}")]
    pinned = cli("init", *both, *pins, "--out", str(tmp_path / "p.toml"), env=env)
    assert pinned.code == 0, pinned.stderr
    config = load(tmp_path / "p.toml")
    assert config.esxi is not None and config.esxi.tls.thumbprint is None
    assert [s.esxi_tls.thumbprint if s.esxi_tls else None for s in config.servers] == [lab.thumbprint, lab.thumbprint]
    status = cli("--config", str(tmp_path / "p.toml"), "status", "--json", env={**env, "LABSWITCH_BMC_PASSWORD": "unused"})
    assert status.code == 1 and {h["connection_state"] for h in status.json()["hosts"]} == {"connected"}, status.stderr
    stray = cli("init", *both, "--thumbprint", f"esx99={lab.thumbprint}", "--out", str(tmp_path / "s.toml"), env=env)
    assert stray.code == 2 and "--thumbprint esx99=...: not one of the --esxi hosts" in stray.stderr


def test_init_pins_each_bmc_on_first_use_and_status_trusts_them(lab: Lab, cli: Callable[..., Result], tmp_path: Path) -> None:
    import hashlib
    import ssl
    from urllib.parse import urlsplit

    servers = ("mgmt01", "esx11", "esx12", "esx21", "esx22")
    out = tmp_path / "labswitch.toml"
    given = [a for s in servers for a in ("--bmc", f"{s}={lab.bmc_url(s)}")]
    result = init(cli, lab, out, *given, "--trust-on-first-use")
    assert result.code == 0, result.stderr
    assert result.stderr.count("trusted on first use, SHA-256") == len(servers), "each pin is said, to be compared"
    config = load(out, resolve_secrets=False)
    for server in config.servers:
        parts = urlsplit(lab.bmc_url(server.name))
        served = ssl.get_server_certificate((parts.hostname or "", parts.port or 443))
        assert server.bmc.tls.thumbprint == hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest(), server.name
        assert server.bmc.tls.insecure is False
    env = {"LABSWITCH_VCENTER_PASSWORD": lab.env["LABSIM_VCENTER_PASSWORD"], "LABSWITCH_BMC_PASSWORD": lab.env["LABSIM_BMC_PASSWORD"]}
    status = cli("--config", str(out), "status", "--json", env=env)
    assert status.code == 0, status.stderr
    assert {h["name"]: h["bmc_power"] for h in status.json()["hosts"]} == dict.fromkeys(servers, "On")
    bad = cli("init", "--vcenter", lab.url, "--bmc", "esx11", "--out", str(tmp_path / "x.toml"), env=env)
    assert bad.code == 2 and "--bmc esx11: give NAME=ADDRESS" in bad.stderr

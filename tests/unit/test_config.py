"""Config loading: valid files, and every bad input as one line naming file and key path."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from labswitch.config import load, parse
from labswitch.errors import ConfigError, SecretError

THUMB = "ab" * 32

GOOD = f"""
[vcenter]
url = "vc.lab.local"
user = "administrator@vsphere.local"
password = {{ env = "VC_PASS" }}
tls = {{ thumbprint = "{":".join(THUMB[i : i + 2].upper() for i in range(0, 64, 2))}" }}

[policy]
max_parallel = 8

[groups.mgmt]
always_on = true

[groups.payload]

[[servers]]
name = "esx21"
esxi = "esx21.lab.local"
group = "payload"
bmc = {{ driver = "redfish", address = "esx21-oob:8443", user = "root", password = {{ file = "SECRET_FILE" }} }}
"""


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VC_PASS", "vc-s3cret")
    f = tmp_path / "bmc.secret"
    f.write_text("bmc-s3cret\n")
    return f


def good(secret_file: Path) -> str:
    return GOOD.replace("SECRET_FILE", str(secret_file))


def test_valid_config_resolves_secrets_and_normalises(secrets: Path) -> None:
    cfg = parse(good(secrets).encode(), source="lab.toml")
    assert cfg.vcenter.https_url == "https://vc.lab.local/sdk"
    assert cfg.vcenter.tls.thumbprint == THUMB  # colons and case folded
    assert cfg.vcenter.password.get_secret_value() == "vc-s3cret"  # type: ignore[union-attr]
    assert cfg.servers[0].bmc.password.get_secret_value() == "bmc-s3cret"  # type: ignore[union-attr]  # newline stripped
    assert cfg.servers[0].bmc.base_url == "https://esx21-oob:8443"
    assert cfg.servers[0].bmc.endpoint("ssh", 22) == ("esx21-oob", 8443)
    assert cfg.groups["mgmt"].always_on and not cfg.groups["payload"].always_on
    assert cfg.policy.max_parallel == 8 and cfg.policy.startup_tag == "StartUp"


def test_secrets_never_in_repr(secrets: Path) -> None:
    cfg = parse(good(secrets).encode(), source="lab.toml")
    text = repr(cfg) + str(cfg) + cfg.model_dump_json()
    assert "vc-s3cret" not in text and "bmc-s3cret" not in text


def test_literal_password_is_accepted_with_a_warning(secrets: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = good(secrets).replace('password = { env = "VC_PASS" }', 'password = "plain-s3cret"')
    with caplog.at_level(logging.WARNING):
        cfg = parse(text.encode(), source="lab.toml")
    assert cfg.vcenter.password.get_secret_value() == "plain-s3cret"  # type: ignore[union-attr]
    assert "vcenter.password is written in the file" in caplog.text
    assert "plain-s3cret" not in caplog.text


BAD = [
    # (replace this, with that, expected fragments of the one line)
    ("[groups.mgmt]", "[groups.mgmt", ["lab.toml", "TOML syntax error", "line 11"]),
    ("max_parallel = 8", "max_paralel = 8", ["policy.max_paralel", "unknown key", "did you mean 'max_parallel'"]),
    ("max_parallel = 8", 'max_parallel = "eight"', ["policy.max_parallel", "valid integer", "'eight'"]),
    ("max_parallel = 8", "max_parallel = 0", ["policy.max_parallel", "greater than or equal to 1"]),
    ('group = "payload"', 'group = "paylod"', ["servers[0].group", "unknown group 'paylod'", "[groups.paylod]"]),
    (
        'driver = "redfish"',
        'driver = "redfsh"',
        ["servers[0].bmc.driver", "one of ipmi, racadm, redfish, shelly, tasmota, wol", "'redfsh'"],
    ),
    ('address = "esx21-oob:8443"', 'address = "esx21-oob:port"', ["servers[0].bmc.address", "malformed port"]),
    ('address = "esx21-oob:8443"', 'address = "ftp://x"', ["servers[0].bmc.address", "unsupported URL scheme"]),
    ('{ env = "VC_PASS" }', '{ env = "LABSWITCH_TEST_UNSET" }', ["vcenter.password", "LABSWITCH_TEST_UNSET is not set"]),
    ('{ env = "VC_PASS" }', '{ envv = "VC_PASS" }', ["vcenter.password", '{ env = "VAR" }']),
    ('{ env = "VC_PASS" }', '{ keyring = "noslash" }', ["vcenter.password"]),
    (
        f'thumbprint = "{":".join(THUMB[i : i + 2].upper() for i in range(0, 64, 2))}"',
        'thumbprint = "zz"',
        ["vcenter.tls.thumbprint", "64 hex digits"],
    ),
    (f'thumbprint = "{":".join(THUMB[i : i + 2].upper() for i in range(0, 64, 2))}"', f'thumbprint = "{"a" * 40}"', ["SHA-1", "SHA-256"]),
    (f'thumbprint = "{":".join(THUMB[i : i + 2].upper() for i in range(0, 64, 2))}"', 'insecure = true, ca_file = "x"', ["choose one"]),
]


@pytest.mark.parametrize(("old", "new", "expected"), BAD, ids=[b[2][0] + "-" + str(i) for i, b in enumerate(BAD)])
def test_bad_input_is_one_clear_line(secrets: Path, old: str, new: str, expected: list[str]) -> None:
    text = good(secrets)
    assert old in text
    with pytest.raises(ConfigError) as err:
        parse(text.replace(old, new, 1).encode(), source="lab.toml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("lab.toml: ")
    for fragment in expected:
        assert fragment in message
    assert "vc-s3cret" not in message and "bmc-s3cret" not in message


def test_server_without_bmc(secrets: Path) -> None:
    text = good(secrets).split("bmc = ")[0]
    with pytest.raises(ConfigError, match=r"servers\[0\]\.bmc: missing; every server needs a BMC"):
        parse(text.encode(), source="lab.toml")


def test_unreadable_secret_file(secrets: Path) -> None:
    text = good(secrets.parent / "absent.secret")
    with pytest.raises(SecretError, match=r"servers\[0\]\.bmc\.password: cannot read secret file .*absent\.secret"):
        parse(text.encode(), source="lab.toml")


def test_keyring_without_backend_is_a_config_error(secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    text = good(secrets).replace('{ env = "VC_PASS" }', '{ keyring = "vcenter/administrator" }')
    with pytest.raises(SecretError, match=r"vcenter\.password: keyring unavailable"):
        parse(text.encode(), source="lab.toml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.toml: no such file; create one"):
        load(tmp_path / "absent.toml")


def test_duplicate_server_names(secrets: Path) -> None:
    text = good(secrets)
    server = text[text.index("[[servers]]") :]
    with pytest.raises(ConfigError, match=r"servers\[1\]: 'esx21' is already used by servers\[0\]"):
        parse((text + server).encode(), source="lab.toml")


def test_a_server_without_a_bmc_and_its_bad_input(secrets: Path) -> None:
    base = good(secrets)
    line = next(x for x in base.splitlines() if x.startswith("bmc = "))
    wol = base.replace(line, 'bmc = { driver = "wol", mac = "3C-EC-EF-12-34-56", broadcast = "192.168.4.255" }')
    cfg = parse(wol.encode(), source="lab.toml")
    assert cfg.servers[0].bmc.mac == "3c:ec:ef:12:34:56"  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as err:
        parse(base.replace(line, 'bmc = { driver = "wol", mac = "00:11:22:33:44" }').encode(), source="lab.toml")
    assert str(err.value) == "lab.toml: servers[0].bmc.mac: must be a MAC address such as 3c:ec:ef:12:34:56 (got '00:11:22:33:44')"
    plug = 'meter = { driver = "shelly", address = "http://plug07", password = { env = "PLUG_PASS" } }'
    metered = parse(base.replace(line, line + "\n" + plug).encode(), source="lab.toml", resolve_secrets=False)
    assert metered.servers[0].meter is not None and metered.servers[0].meter.base_url == "http://plug07"


def test_the_service_secrets_are_needed_only_by_serve(secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        good(secrets)
        + '\n[serve]\ntoken = { env = "LS_TOKEN_UNSET" }\n\n[mqtt]\nurl = "mqtt://ha@broker"\npassword = { env = "LS_MQTT_UNSET" }\n'
    )
    monkeypatch.delenv("LS_TOKEN_UNSET", raising=False)
    cfg = parse(text.encode(), source="lab.toml")  # down, up, status...: LABSWITCH_TOKEN and the MQTT password need not be set
    assert cfg.vcenter is not None and cfg.vcenter.password.get_secret_value() == "vc-s3cret"  # type: ignore[union-attr]
    with pytest.raises(SecretError, match=r"mqtt.password: environment variable LS_MQTT_UNSET is not set"):
        parse(text.encode(), source="lab.toml", service=True)


def test_serve_schedules_and_idle_settings(secrets: Path) -> None:
    text = good(secrets).replace("[policy]\n", '[policy]\nidle_down_after = "3h"\n')
    text += '\n[energy]\nsample_interval = "5m"\n\n[[serve.schedules]]\naction = "up"\nat = "Mon..Fri 07:30"\ngroups = ["payload"]\n'
    cfg = parse(text.encode(), source="lab.toml")
    assert cfg.policy.idle_down_after == 3 * 3600 and cfg.energy.sample_interval == 300
    assert [(s.action, s.at, s.groups, s.restore) for s in cfg.serve.schedules] == [("up", "Mon..Fri 07:30", ["payload"], False)]
    with pytest.raises(ConfigError, match=r"serve.schedules\[0\].at: 'Mon..Fri 7': give DAYS HH:MM"):
        parse(text.replace("Mon..Fri 07:30", "Mon..Fri 7").encode(), source="lab.toml")


def test_every_timeout_takes_a_duration_or_seconds() -> None:
    from labswitch.config.models import Policy

    policy = Policy.model_validate(
        {"guest_shutdown_timeout": "5m", "host_off_timeout": "1h30m", "bmc_timeout": 12, "host_connect_timeout": "90s"}
    )
    assert (policy.guest_shutdown_timeout, policy.host_off_timeout, policy.bmc_timeout, policy.host_connect_timeout) == (300, 5400, 12, 90)

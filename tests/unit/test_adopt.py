"""Schedules (unit files rendered and validated by systemd-analyze) and host network rendering."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from labswitch import hostnet, schedule
from labswitch.errors import ConfigError

PROGRAM = ["/usr/bin/env", "labswitch"]


@pytest.mark.parametrize(
    ("at", "calendar", "cron"),
    [
        ("Mon..Fri 18:00", "Mon..Fri *-*-* 18:00:00", "0 18 * * 1-5"),
        ("Sat,Sun 09:30", "Sat..Sun *-*-* 09:30:00", "30 9 * * 6-7"),
        ("07:05", "Mon..Sun *-*-* 07:05:00", "5 7 * * *"),
        ("Fri..Mon 02:00", "Mon,Fri..Sun *-*-* 02:00:00", "0 2 * * 1,5-7"),
        ("mon,wed,fri 6:00", "Mon,Wed,Fri *-*-* 06:00:00", "0 6 * * 1,3,5"),
    ],
)
def test_calendar_and_cron_forms(at: str, calendar: str, cron: str) -> None:
    assert schedule.on_calendar(at) == calendar
    s = schedule.make("up", at, Path("lab.toml"), [], False, None, PROGRAM)
    assert schedule.cron_line(s).startswith(cron + " /usr/bin/env labswitch --config ")


@pytest.mark.parametrize("at", ["Mon..Fry 18:00", "25:00", "Mon 18", "every day", "Mon..Fri..Sun 10:00"])
def test_bad_times_are_one_clear_error(at: str) -> None:
    with pytest.raises(ConfigError, match="--at"):
        schedule.on_calendar(at)


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed; the units are checked by parsing only"
)
def test_units_are_valid_for_systemd(tmp_path: Path) -> None:
    s = schedule.make("down", "Mon..Fri 19:00", tmp_path / "lab.toml", ["payload"], False, None, ["/bin/true"])
    env = tmp_path / "secrets.env"
    env.write_text("LABSWITCH_VCENTER_PASSWORD=s3cr3t-value\n")
    notes = schedule.install(s, env, tmp_path / "units", enable=False)
    assert "not enabled" in notes[0]
    unit = tmp_path / "units" / "labswitch-down-mon-fri-19-00"
    proc = subprocess.run(["systemd-analyze", "verify", f"{unit}.service", f"{unit}.timer"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    calendar = subprocess.run(["systemd-analyze", "calendar", schedule.on_calendar("Mon..Fri 19:00")], capture_output=True, text=True)
    assert calendar.returncode == 0 and "Normalized form: Mon..Fri *-*-* 19:00:00" in calendar.stdout
    service = configparser.ConfigParser(strict=False)
    service.read_string(Path(f"{unit}.service").read_text().replace("# labswitch schedule\n", ""))
    assert service["Service"]["ExecStart"].endswith("down --yes --group payload")
    assert service["Service"]["EnvironmentFile"] == str(env)
    assert "s3cr3t-value" not in Path(f"{unit}.service").read_text()  # the unit names the file, never its values


def test_list_and_remove_touch_only_labswitch_schedules(tmp_path: Path) -> None:
    units = tmp_path / "units"
    for at in ("Mon..Fri 07:30", "Mon..Fri 19:00"):
        schedule.install(schedule.make("up", at, Path("lab.toml"), [], False, None, PROGRAM), None, units, enable=False)
    (units / "labswitch-mine.timer").write_text("[Timer]\nOnCalendar=daily\n")  # not ours: no mark
    assert [n for n, _, _ in schedule.installed(units)] == ["up-mon-fri-07-30", "up-mon-fri-19-00"]
    schedule.remove("up-mon-fri-07-30", units, enable=False)
    assert [n for n, _, _ in schedule.installed(units)] == ["up-mon-fri-19-00"]
    assert (units / "labswitch-mine.timer").exists() and not (units / "labswitch-up-mon-fri-07-30.service").exists()
    with pytest.raises(ConfigError, match="not installed"):
        schedule.remove("mine", units, enable=False)


def test_restore_only_with_up_and_names_checked() -> None:
    with pytest.raises(ConfigError, match="--restore goes with up"):
        schedule.make("down", "07:00", Path("l.toml"), [], True, None, PROGRAM)
    with pytest.raises(ConfigError, match="--name"):
        schedule.make("up", "07:00", Path("l.toml"), [], False, "Bad Name", PROGRAM)
    with pytest.raises(ConfigError, match="up or down"):
        schedule.make("sideways", "07:00", Path("l.toml"), [], False, None, PROGRAM)


# -- host network -----------------------------------------------------------------------
def test_network_file_renders_every_setting() -> None:
    net = hostnet.parse("eth0", "192.168.4.7/24", "192.168.4.1", ["192.168.4.1", "1.1.1.1"], ["lab.local"], ["pool.ntp.org"])
    parsed = configparser.ConfigParser(strict=False)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    text = hostnet.render(net)
    parsed.read_string("\n".join(line for line in text.splitlines() if not line.startswith("#")).replace("DNS=1.1.1.1", "DNS2=1.1.1.1"))
    assert dict(parsed["Match"]) == {"Name": "eth0"}
    assert dict(parsed["Network"]) == {
        "DHCP": "no",
        "Address": "192.168.4.7/24",
        "Gateway": "192.168.4.1",
        "DNS": "192.168.4.1",
        "DNS2": "1.1.1.1",
        "Domains": "lab.local",
        "NTP": "pool.ntp.org",
    }
    assert net.filename == "10-static-eth0.network"
    v6 = hostnet.render(hostnet.parse("ens192", "fd00::7/64", "fd00::1", [], [], []))
    assert "Address=fd00::7/64" in v6 and "Gateway=fd00::1" in v6


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"address": "192.168.4.7"}, "give the prefix length"),
        ({"address": "192.168.4.300/24"}, "not an IP address"),
        ({"address": "192.168.4.0/24"}, "network address"),
        ({"address": "192.168.4.255/24"}, "broadcast address"),
        ({"gateway": "192.168.5.1"}, "not in 192.168.4.0/24"),
        ({"gateway": "192.168.4.7"}, "the host's own address"),
        ({"gateway": "fd00::1"}, "not in 192.168.4.0/24"),
        ({"dns": ["dns.google"]}, "not an IP address"),
        ({"interface": "eth0/1"}, "not an interface name"),
        ({"interface": "averyveryverylongname"}, "not an interface name"),
        ({"domains": ["bad domain"]}, "not a DNS domain"),
        ({"ntp": ["no such!"]}, "not a host name"),
    ],
)
def test_bad_network_values_are_refused(kw: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "interface": "eth0",
        "address": "192.168.4.7/24",
        "gateway": "192.168.4.1",
        "dns": [],
        "domains": [],
        "ntp": [],
        **kw,
    }
    with pytest.raises(ConfigError, match=message):
        hostnet.parse(**args)  # type: ignore[arg-type]

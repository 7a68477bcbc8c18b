"""Schedules: systemd user timers (or cron lines) that run `labswitch up|down` by the clock.

Rendering and calendar parsing are PURE; installing writes unit files and asks systemctl.
Each schedule is a pair ``labswitch-<name>.service`` + ``.timer`` in the user unit
directory, marked so `list` and `remove` touch nothing else.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labswitch.errors import ConfigError

MARK = "# labswitch schedule"
ACTIONS = ("up", "down")
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_AT = re.compile(r"^(?:(?P<days>[A-Za-z.,]+)\s+)?(?P<hour>\d{1,2}):(?P<minute>\d{2})$")


@dataclass(frozen=True)
class Schedule:
    name: str  # the unit name without "labswitch-" and suffix
    action: str  # up | down
    at: str  # the user's form, e.g. "Mon..Fri 18:00"
    command: tuple[str, ...]  # argv run by the service

    @property
    def unit(self) -> str:
        return f"labswitch-{self.name}"


def unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def parse_at(at: str) -> tuple[list[int], int, int]:
    """'Mon..Fri 18:00', 'Sat,Sun 09:30', '07:00' -> (weekday numbers 0=Mon, hour, minute)."""
    m = _AT.match(at.strip())
    if not m:
        raise ConfigError(f"--at {at!r}: give DAYS HH:MM, e.g. 'Mon..Fri 18:00', 'Sat,Sun 09:30' or '07:00' (every day)")
    hour, minute = int(m["hour"]), int(m["minute"])
    if hour > 23 or minute > 59:
        raise ConfigError(f"--at {at!r}: {hour:02d}:{minute:02d} is not a time of day")
    days: list[int] = []
    for part in (m["days"] or "Mon..Sun").split(","):
        ends = part.split("..")
        try:
            idx = [DAYS.index(e[:1].upper() + e[1:3].lower()) if len(e) == 3 else -1 for e in ends]
        except ValueError:
            idx = [-1]
        if -1 in idx or len(ends) > 2:
            raise ConfigError(f"--at {at!r}: {part!r} is not a day or range (Mon, Tue, ... Sun; 'Mon..Fri'; 'Sat,Sun')")
        first, last = idx[0], idx[-1]
        days += list(range(first, last + 1)) if first <= last else list(range(first, 7)) + list(range(0, last + 1))
    return sorted(set(days)), hour, minute


def next_run(at: str, after: dt.datetime) -> dt.datetime:
    """The first moment strictly after ``after`` that matches 'DAYS HH:MM', in ``after``'s terms (PURE; naive
    local time keeps a wall-clock time across daylight-saving changes)."""
    days, hour, minute = parse_at(at)
    day = after.replace(hour=hour, minute=minute, second=0, microsecond=0)
    for _ in range(8):
        if day > after and day.weekday() in days:
            return day
        day = (day + dt.timedelta(days=1)).replace(hour=hour, minute=minute)
    raise AssertionError(f"no day matches {at!r}")  # parse_at gives at least one day


def on_calendar(at: str) -> str:
    """The systemd OnCalendar= form of --at."""
    days, hour, minute = parse_at(at)
    return f"{_days(days, '..', ',', DAYS)} *-*-* {hour:02d}:{minute:02d}:00"


def cron_line(schedule: Schedule) -> str:
    days, hour, minute = parse_at(schedule.at)
    cron_days = "*" if len(days) == 7 else _days(days, "-", ",", ["1", "2", "3", "4", "5", "6", "7"])  # 7: Sunday
    return f"{minute} {hour} * * {cron_days} {shlex.join(schedule.command)}  # labswitch-{schedule.name}"


def _days(days: list[int], dash: str, comma: str, names: Sequence[str]) -> str:
    runs: list[list[int]] = []
    for d in days:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return comma.join(names[r[0]] if len(r) == 1 else f"{names[r[0]]}{dash}{names[r[-1]]}" for r in runs)


def default_name(action: str, at: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", f"{action}-{at}".lower().replace("..", "-")).strip("-")


def make(action: str, at: str, config: Path, groups: Sequence[str], restore: bool, name: str | None, program: Sequence[str]) -> Schedule:
    if action not in ACTIONS:
        raise ConfigError(f"schedule add {action}: the action is up or down")
    on_calendar(at)  # validates
    if name is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,40}", name):
        raise ConfigError(f"--name {name!r}: lower-case letters, digits and '-', up to 41 characters")
    command = [*program, "--config", str(config.resolve()), action, "--yes"]
    for g in groups:
        command += ["--group", g]
    if restore:
        if action != "up":
            raise ConfigError("--restore goes with up")
        command.append("--restore")
    return Schedule(name or default_name(action, at), action, at, tuple(command))


def render_service(s: Schedule, env_file: Path | None) -> str:
    lines = [
        MARK,
        "[Unit]",
        f"Description=labswitch {s.action} ({s.at})",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={shlex.join(s.command)}",
    ]
    if env_file is not None:
        lines.append(f"EnvironmentFile={env_file.resolve()}")  # the secrets' env references, kept out of the unit
    return "\n".join(lines) + "\n"


def render_timer(s: Schedule) -> str:
    return (
        "\n".join(
            [
                MARK,
                f"# at: {s.at}",
                "[Unit]",
                f"Description=labswitch {s.action} at {s.at}",
                "",
                "[Timer]",
                f"OnCalendar={on_calendar(s.at)}",
                "Persistent=false",  # a switch missed while this machine was off does not run at its next boot
                f"Unit={s.unit}.service",
                "",
                "[Install]",
                "WantedBy=timers.target",
            ]
        )
        + "\n"
    )


def install(s: Schedule, env_file: Path | None, directory: Path, enable: bool) -> list[str]:
    """Write the units; enable the timer when asked. Returns notes for the user."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{s.unit}.service").write_text(render_service(s, env_file))
    (directory / f"{s.unit}.timer").write_text(render_timer(s))
    if not enable:
        return [f"not enabled (--no-enable); enable it with: systemctl --user enable --now {s.unit}.timer"]
    return _systemctl(["daemon-reload"], ["enable", "--now", f"{s.unit}.timer"], what=f"enable {s.unit}.timer")


def installed(directory: Path) -> list[tuple[str, str, str]]:
    """(name, at, command) of every labswitch schedule in ``directory``."""
    out = []
    for timer in sorted(directory.glob("labswitch-*.timer")):
        text = timer.read_text()
        if not text.startswith(MARK):
            continue
        at = next((line.removeprefix("# at: ") for line in text.splitlines() if line.startswith("# at: ")), "?")
        service = timer.with_suffix(".service")
        lines = service.read_text().splitlines() if service.exists() else []
        command = next((line.removeprefix("ExecStart=") for line in lines if line.startswith("ExecStart=")), "?")
        out.append((timer.stem.removeprefix("labswitch-"), at, command))
    return out


def remove(name: str, directory: Path, enable: bool) -> list[str]:
    unit = f"labswitch-{name}"
    timer = directory / f"{unit}.timer"
    if not timer.exists() or not timer.read_text().startswith(MARK):
        known = ", ".join(n for n, _, _ in installed(directory)) or "none"
        raise ConfigError(f"schedule {name!r}: not installed (schedules: {known}); see labswitch schedule list")
    notes = _systemctl(["disable", "--now", f"{unit}.timer"], what=f"disable {unit}.timer") if enable else []
    timer.unlink()
    (directory / f"{unit}.service").unlink(missing_ok=True)
    return notes


def _systemctl(*commands: list[str], what: str) -> list[str]:
    if shutil.which("systemctl") is None:
        return [f"systemctl not found: {what} by hand on the machine that runs the schedule"]
    for args in commands:
        proc = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            return [f"systemctl --user {' '.join(args)}: {reason}; the unit files are written, {what} once a user session runs"]
    return []

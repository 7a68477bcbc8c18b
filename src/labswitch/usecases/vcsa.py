"""`labswitch vcsa check|repair`: the appliance's health over SSH, and the known repair:
move the stuck backup history aside (kept, never deleted), restart every service, check again."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass

from labswitch.config import Appliance, Config
from labswitch.errors import ConfigError, VSphereError
from labswitch.vcsa import HISTORY, ApplianceShell, Health, health


@dataclass(frozen=True)
class RepairOutcome:
    before: Health
    after: Health | None  # None on --dry-run
    steps: tuple[tuple[str, str], ...]  # (command, result) done, or planned on --dry-run
    moved_to: str | None = None

    @property
    def ok(self) -> bool:
        return self.after is not None and self.after.healthy


def _appliance(config: Config) -> Appliance:
    if config.vcsa is None:
        raise ConfigError('no [vcsa] table in the config; add [vcsa] with address = "vcsa.lab.local" and password = { env = "..." }')
    return config.vcsa


def check(config: Config) -> Health:
    async def go() -> Health:
        async with ApplianceShell(_appliance(config)) as shell:
            return await health(shell)

    return asyncio.run(go())


def repair(config: Config, clear_backup_history: bool, dry_run: bool) -> RepairOutcome:
    appliance = _appliance(config)

    async def go() -> RepairOutcome:
        async with ApplianceShell(appliance) as shell:
            before = await health(shell)
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
            target = f"/var/tmp/backupRestore-history.json.{stamp}"
            plan: list[str] = []
            if clear_backup_history and before.backup_history:
                plan.append(f"mv -n {HISTORY} {target}")
            plan += ["service-control --stop --all", "service-control --start --all"]
            if dry_run:
                return RepairOutcome(before, None, tuple((c, "would run") for c in plan))
            done: list[tuple[str, str]] = []
            moved = None
            for command in plan:
                rc, out = await shell.run(command, timeout=appliance.service_timeout)
                if command.startswith("mv "):
                    gone, _ = await shell.run(f"test ! -e {HISTORY} && test -e {target}")
                    if rc != 0 or gone != 0:
                        raise VSphereError(
                            f"{shell.where}: moving {HISTORY} aside failed (exit {rc}): {out.strip()[:200]}; nothing restarted"
                        )
                    moved = target
                if rc != 0:
                    done.append((command, f"failed (exit {rc}): {out.strip().splitlines()[-1] if out.strip() else ''}"))
                    break
                done.append((command, "ok"))
            after = await health(shell)
            return RepairOutcome(before, after, tuple(done), moved)

    return asyncio.run(go())

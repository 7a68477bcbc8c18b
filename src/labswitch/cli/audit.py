"""labswitch audit [CHECK ...] | labswitch check placement VM --host HOST"""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from labswitch import render
from labswitch.audits import CHECKS, Finding, Severity
from labswitch.cli import Json, State, app
from labswitch.errors import EXIT_FAILED, ConfigError
from labswitch.usecases import audit as usecase

FIELDS = ["check", "severity", "target", "message", "fix"]


def _severity(value: str | None) -> Severity | None:
    if value is None:
        return None
    try:
        return Severity[value.upper()]
    except KeyError:
        raise typer.BadParameter(f"{value!r}: one of {', '.join(str(s) for s in Severity)}") from None


@app.command("audit")
def audit_command(
    ctx: typer.Context,
    checks: Annotated[
        list[str] | None, typer.Argument(help=f"Checks to run (default: all): {', '.join(CHECKS)}.", show_default=False)
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help='Print JSON on stdout: {"findings": [...]}.')] = False,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Also write the findings as CSV to FILE ('-' for stdout).")] = None,
    fail_on: Annotated[
        str | None,
        typer.Option("--fail-on", help="Exit 1 when a finding is at least this severe: info, low, medium, high, critical."),
    ] = None,
) -> None:
    """Audit the whole inventory for known vSphere pitfalls, in one bulk read; changes nothing.

    Checks: l1tf (CVE-2018-3646 host options), cbt-unmap (KB 59608 backup growth),
    multiwriter (KB 1034165: 8-host limit, EZT, unsupported states), sgx (as vSphere reports it).
    Each finding says the risk, the evidence and the fix.

    Examples:

      labswitch audit

      labswitch audit l1tf multiwriter --fail-on high

      labswitch audit --json | jq '.findings[] | select(.severity == "high")'
    """
    threshold = _severity(fail_on)
    state: State = ctx.obj
    report = usecase.audit(state.config(), checks or [])
    if csv_file is not None:
        _write_csv(report.findings, csv_file)
    if json_out:
        render.emit_json({"findings": [_as_json(f) for f in report.findings]})
    elif csv_file != Path("-"):
        _show(report)
    if threshold is not None and any(f.severity >= threshold for f in report.findings):
        raise typer.Exit(EXIT_FAILED)


def _as_json(f: Finding) -> dict[str, str]:
    return {**asdict(f), "severity": str(f.severity)}


def _write_csv(findings: tuple[Finding, ...], path: Path) -> None:
    try:
        out = sys.stdout if path == Path("-") else path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--csv {path}: cannot write: {exc.strerror}; give a writable path") from exc
    try:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(_as_json(f) for f in findings)
    finally:
        if out is not sys.stdout:
            out.close()


def _show(report: usecase.AuditReport) -> None:
    render.stdout.print(
        f"audit {', '.join(report.checks)}: {len(report.findings)} findings on {report.hosts} hosts and {report.vms} VMs", markup=False
    )
    for severity in sorted(Severity, reverse=True):
        found = [f for f in report.findings if f.severity is severity]
        if found:
            render.stdout.print()
            render.table(
                f"{str(severity).upper()} ({len(found)})",
                ["CHECK", "TARGET", "FINDING", "FIX"],
                ((f.check, f.target, f.message, f.fix) for f in found),
            )


check_app = typer.Typer(help="Answer a question before you act (placement of VMs with shared disks).", no_args_is_help=True)
app.add_typer(check_app, name="check")


@check_app.command("placement")
def placement_command(
    ctx: typer.Context,
    vm: Annotated[str, typer.Argument(help="The VM to power on or vMotion.")],
    host: Annotated[str, typer.Option("--host", help="The host it would run on.")],
    json_out: Json = False,
) -> None:
    """Would running VM on HOST take any of its multi-writer VMDKs past 8 hosts (KB 1034165)?

    Exit 0 when it fits, 1 when a shared disk would be open on more than 8 hosts.

    Example:

      labswitch check placement oracle-rac3 --host esx14.lab.local
    """
    state: State = ctx.obj
    answer = usecase.placement(state.config(), vm, host)
    if json_out:
        render.emit_json({"vm": answer.vm, "host": answer.host, "ok": answer.ok, "limit": 8, "disks": [asdict(d) for d in answer.disks]})
    else:
        if not answer.disks:
            render.stdout.print(f"{answer.vm} on {answer.host}: fits; the VM has no multi-writer disks", markup=False)
        for d in answer.disks:
            verdict = "fits" if d.ok else "EXCEEDS the limit"
            render.stdout.print(
                f"{answer.vm} on {answer.host}: {d.file}: open on {d.hosts_now} hosts now, {d.hosts_after} after (limit 8): {verdict}",
                markup=False,
            )
    if not answer.ok:
        raise typer.Exit(EXIT_FAILED)

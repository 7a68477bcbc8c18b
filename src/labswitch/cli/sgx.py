"""labswitch sgx local | decode FILE"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from labswitch import cpuid, render
from labswitch.audits import sgx
from labswitch.cli import Json, app
from labswitch.errors import ConfigError

sgx_app = typer.Typer(
    help="Intel SGX on this machine's CPU, or in a saved test-sgx dump (for hosts: labswitch audit sgx).", no_args_is_help=True
)
app.add_typer(sgx_app, name="sgx")


@sgx_app.command("local")
def local_command(json_out: Json = False) -> None:
    """SGX on the machine labswitch runs on, as test-sgx reports it.

    Raw CPUID from /dev/cpu/0/cpuid where readable (root, cpuid module); /proc/cpuinfo flags otherwise.
    """
    leaves = cpuid.read_leaves()
    result = sgx.decode(leaves, "cpuid") if leaves else sgx.from_flags(cpuid.cpu_flags())
    _show(result, json_out)


@sgx_app.command("decode")
def decode_command(
    file: Annotated[Path, typer.Argument(help="Saved output of test-sgx (its 'eax: .. ebx: .. ecx: .. edx: ..' lines).")],
    json_out: Json = False,
) -> None:
    """Explain a saved test-sgx register dump, e.g. one taken on an ESXi host's VM or another server.

    Example:

      ssh server ./test-sgx > server.txt && labswitch sgx decode server.txt
    """
    try:
        text = file.read_text(errors="replace")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from exc
    leaves = sgx.parse_dump(text)
    if (7, 0) not in leaves:
        raise ConfigError(
            f"{file}: no CPUID leaf 7 registers found; expected test-sgx output "
            "('Extended feature bits (EAX=07H, ECX=0H)' then 'eax: .. ebx: .. ecx: .. edx: ..')"
        )
    _show(sgx.decode(leaves, f"dump {file}"), json_out)


def _show(result: sgx.CpuSgx, json_out: bool) -> None:
    if json_out:
        render.emit_json(asdict(result))
        return

    def flag(value: bool | None) -> str:
        return "?" if value is None else str(int(value))

    out = render.stdout
    out.print(f"SGX: {result.outcome} ({result.source})", markup=False)
    out.print(f"  {result.explanation}", markup=False)
    out.print(
        f"  sgx available: {flag(result.sgx_available)}  sgx launch control: {flag(result.launch_control)}  "
        f"sgx 1 supported: {flag(result.sgx1)}  sgx 2 supported: {flag(result.sgx2)}  hypervisor: {flag(result.hypervisor)}",
        markup=False,
    )
    if result.max_enclave_size_not64 is not None:
        out.print(
            f"  MaxEnclaveSize_Not64: {result.max_enclave_size_not64:x}  MaxEnclaveSize_64: {result.max_enclave_size_64:x}"
            + (f"  EPC: {result.epc_mb} MB" if result.epc_mb else ""),
            markup=False,
        )

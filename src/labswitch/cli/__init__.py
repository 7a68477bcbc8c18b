"""The `labswitch` command: parse, load config, call one use case, render. No logic here."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from labswitch import __version__
from labswitch.config import DEFAULT_PATH, Config, load
from labswitch.errors import EXIT_FAILED, EXIT_INTERRUPTED, ConfigError, LabswitchError

app = typer.Typer(
    name="labswitch",
    help="Switch a VMware vSphere lab on and off on demand, and keep it healthy.",
    no_args_is_help=True,
    rich_markup_mode="markdown",  # paragraphs reflow to the terminal's width (rich mode keeps the source's line breaks)
    pretty_exceptions_enable=False,  # Rich tracebacks show locals: secrets must never be printed
    context_settings={"help_option_names": ["-h", "--help"]},
)

log = logging.getLogger("labswitch")

# The options every command spells the same way.
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (logs and progress stay on stderr).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (required when not on a terminal).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")]


def require_confirmable(what: str, yes: bool) -> None:
    """A change needs --yes off a terminal, where nobody can answer the question (exit 2 before anything is contacted)."""
    if not yes and not sys.stdin.isatty():
        raise ConfigError(f"{what}: not on a terminal, so nothing can be confirmed; pass --yes (or --dry-run to see the plan)")


class State:
    def __init__(self, config_path: Path, verbose: int) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None

    def config(self, service: bool = False) -> Config:
        """The configuration, loaded once (ConfigError on bad input, before any connection); ``service``:
        with the secrets only `labswitch serve` needs."""
        if self._config is None:
            self._config = load(self.config_path, service=service)
        return self._config


def _version(value: bool) -> None:
    """Eager: runs while the options are parsed, before a missing command is an error."""
    if value:
        typer.echo(f"labswitch {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        Path,
        typer.Option("--config", "-c", envvar="LABSWITCH_CONFIG", help="Configuration file (TOML).", show_default=True),
    ] = DEFAULT_PATH,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, metavar="", help="More detail on stderr (-vv for debug).")] = 0,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours (also: the NO_COLOR environment variable).")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_version)] = False,
) -> None:
    """Switch a VMware vSphere lab on and off on demand, and keep it healthy.

    Exit codes: 0 success, 1 an operation failed (also: another run is in progress, a
    confirmation declined), 2 usage or configuration error, 3 refused by a safety check,
    130 interrupted (journaled; the same command finishes the run).
    """
    if no_color:
        from labswitch.render import no_color as disable_color

        disable_color()
    _setup_logging(verbose, service=ctx.invoked_subcommand == "serve")
    ctx.obj = State(config, verbose)


def _setup_logging(verbose: int, service: bool = False) -> None:
    """Warnings and errors on stderr (-v: info, -vv: debug). `serve` runs for days: its lines carry the time,
    and its activity (each run it starts and how it ended) is always shown."""
    from rich.logging import RichHandler

    from labswitch.render import stderr

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler: logging.Handler
    if service and not stderr.is_terminal:  # journald, docker logs, a file: one plain line per event, never wrapped
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    else:
        handler = RichHandler(
            console=stderr,
            show_time=verbose > 1 or service,
            show_path=False,
            markup=False,
            rich_tracebacks=False,
            log_time_format="%Y-%m-%d %H:%M:%S",
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    if verbose < 2:  # libraries' own records (sushy logs each 401 and retry) only with -vv: labswitch says it once
        handler.addFilter(lambda record: record.name == "labswitch" or record.name.startswith("labswitch."))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party request logs can carry credentials in headers or bodies: keep them quiet, even with -vv.
    for noisy in ("sushy", "urllib3", "requests", "pyVmomi", "asyncssh", "pyghmi"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if service:
        logging.getLogger("labswitch.serve").setLevel(min(level, logging.INFO))


# Which module registers each command: a run imports only its own (asyncssh, the audits and
# the appliance checks cost a third of a second that `down` and `up` do not need).
COMMANDS = {
    "plan": "power",
    "down": "power",
    "up": "power",
    "status": "status",
    "audit": "audit",
    "check": "audit",
    "bmc": "bmc",
    "ups": "ups",
    "serve": "serve",
    "energy": "energy",
    "fix": "fix",
    "history": "history",
    "host": "host",
    "init": "init",
    "schedule": "schedule",
    "sgx": "sgx",
    "vcsa": "vcsa",
}
_VALUED = {"--config", "-c"}  # the global options that take a value


def _register(argv: list[str]) -> None:
    """Import the module of the command on the line, or every one (help, completion, a typo)."""
    import importlib

    wanted = None
    args = iter(argv)
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif not arg.startswith("-"):
            wanted = COMMANDS.get(arg)
            break
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    for module in [wanted] if wanted and not completing else sorted(set(COMMANDS.values())):
        importlib.import_module(f"labswitch.cli.{module}")


def main() -> None:
    """Entry point. Typer handles usage errors (exit 2); LabswitchError becomes one line and its exit code."""
    _register(sys.argv[1:])
    try:
        app()
    except LabswitchError as exc:
        print(f"labswitch: error: {exc}", file=sys.stderr)
        if _verbose():
            for cause in causes(exc):
                print(f"  caused by: {cause}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # outside a run (a run handles Ctrl-C itself): nothing was changed
        print("labswitch: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # a bug: one line, the traceback only with -v
        if _verbose():
            raise
        print(f"labswitch: internal error: {type(exc).__name__}; run again with -v and report it", file=sys.stderr)
        sys.exit(EXIT_FAILED)


def _verbose() -> bool:
    return any(a == "--verbose" or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in sys.argv[1:]) or bool(
        os.environ.get("LABSWITCH_DEBUG")
    )


def causes(exc: BaseException, limit: int = 5) -> list[str]:
    """The chain under an error (``raise ... from exc``), root last: each cause's type and its one line, with
    every secret this process resolved, and any ``password=`` in a URL, replaced by ``***``."""
    from labswitch.config.secrets import redact

    out: list[str] = []
    cause = exc.__cause__
    while cause is not None and len(out) < limit:
        kind = type(cause)
        name = kind.__name__ if kind.__module__ in ("builtins", "labswitch.errors") else f"{kind.__module__}.{kind.__qualname__}"
        msg = getattr(cause, "msg", None)  # a vSphere fault's message (its str() is the whole object)
        text = " ".join((msg if isinstance(msg, str) and msg.strip() else str(cause)).split())[:300]
        out.append(redact(f"{name}: {text}" if text else name))
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return out

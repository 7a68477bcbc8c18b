"""The documented exception tree. Each class carries its exit code (the CLI) and its HTTP status
(`labswitch serve`'s API): the adapters read them from the type, never from the message.

Every message is one line: what failed, where, and what to do next. Messages
never contain a secret. Third-party errors are translated at the adapter
boundary (``raise ... from exc``) so nothing above the adapters sees them, and
the cause is kept: ``-v`` prints the chain (``caused by: ...``) under the line.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_INTERRUPTED = 130


class LabswitchError(Exception):
    """Base of every error labswitch raises on purpose; exit code 1; HTTP 500."""

    exit_code = EXIT_FAILED
    http_status = 500


class ConfigError(LabswitchError):
    """The configuration file or a flag is wrong; nothing was contacted; exit code 2; HTTP 400."""

    exit_code = EXIT_USAGE
    http_status = 400


class UnknownName(ConfigError):
    """A group, server, VM or host named in a flag or a request does not exist; exit code 2; HTTP 404."""

    http_status = 404


class SecretError(ConfigError):
    """A secret reference (env, file, keyring) could not be resolved; exit code 2."""


class EndpointError(LabswitchError):
    """vCenter or a BMC could not be used; exit code 1; HTTP 502."""

    http_status = 502


class ConnectionFailed(EndpointError):
    """An endpoint did not answer: refused, unreachable, timed out."""


class TLSVerificationFailed(EndpointError):
    """An endpoint's certificate is not trusted or does not match the pinned thumbprint."""


class AuthenticationFailed(EndpointError):
    """An endpoint refused the configured user and password."""


class VSphereError(EndpointError):
    """vCenter answered a call with a fault."""


class ProxmoxError(EndpointError):
    """A Proxmox VE API answered a call with an error."""


class BMCError(EndpointError):
    """A BMC answered a request with an error."""


class NotSupported(BMCError):
    """The BMC driver or the BMC cannot do this operation."""


class SafetyRefusal(LabswitchError):
    """A safety check refused the operation before any change; exit code 3; HTTP 409."""

    exit_code = EXIT_REFUSED
    http_status = 409


class RunInProgress(LabswitchError):
    """Another run holds the run lock (one run at a time, CLI and service alike); exit code 1; HTTP 409."""

    http_status = 409


class Interrupted(LabswitchError):
    """The run was stopped (Ctrl-C, SIGTERM) and journaled as interrupted; the same command finishes it; exit code 130;
    HTTP 409."""

    exit_code = EXIT_INTERRUPTED
    http_status = 409


def shown(value: object, limit: int = 64) -> str:
    """A value a user gave, for a message: as it is when short and printable, else quoted and cut at ``limit``
    characters (an error never echoes input unbounded, nor breaks its one line)."""
    text = str(value)
    if len(text) <= limit and text.isprintable():
        return text
    return repr(text[:limit]) + (f"… ({len(text)} characters)" if len(text) > limit else "")

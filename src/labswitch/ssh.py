"""SSH connections (asyncssh) with host keys checked and failures as labswitch errors:
shared by the racadm driver and the vCenter appliance commands."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from labswitch.errors import AuthenticationFailed, ConnectionFailed, TLSVerificationFailed

# cryptography 46+ deprecates DSA, and asyncssh's import says so on stderr: a library's notice, not the user's concern
# (labswitch never offers a DSA key; an ssh-dss host key pinned in the config still loads while cryptography allows it).
warnings.filterwarnings("ignore", message="DSA is deprecated", module="asyncssh")
import asyncssh  # noqa: E402 - after the filter above

SSHError = asyncssh.Error  # what an SSH session raises (a connection lost, a channel closed)


def known_hosts(host_key: str | None, known_hosts_file: str | None, where: str, key_setting: str) -> object:
    """asyncssh's known_hosts argument: the pinned key, else an OpenSSH known_hosts file (never 'trust anything')."""
    if host_key:
        return ([asyncssh.import_public_key(host_key)], [], [])
    path = Path(known_hosts_file or "~/.ssh/known_hosts").expanduser()
    if not path.exists():
        raise TLSVerificationFailed(f"{where}: no known_hosts file at {path}; pin {key_setting} or set its known_hosts")
    return str(path)


async def connect(
    host: str,
    port: int,
    user: str,
    password: str,
    trust: object,
    timeout: float,
    where: str,
    settings: str,
    key_file: str | None = None,
) -> Any:
    """An open asyncssh connection, by password or by the private key in ``key_file``; ``settings`` names the
    config keys to fix (e.g. "bmc.user and bmc.password")."""
    keys: list[Any] | None = None
    if key_file is not None:
        path = Path(key_file).expanduser()
        try:
            keys = [asyncssh.read_private_key(str(path))]
        except (OSError, asyncssh.KeyImportError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise AuthenticationFailed(f"{where}: cannot read the private key {path}: {reason}; check {settings}") from exc
    try:
        return await asyncssh.connect(
            host,
            port,
            username=user,
            password=password or None,
            known_hosts=trust,
            client_keys=keys,
            agent_path=None,
            connect_timeout=timeout,
        )
    except asyncssh.PermissionDenied as exc:
        raise AuthenticationFailed(f"{where}: login refused for user {user!r}; check {settings}") from exc
    except asyncssh.HostKeyNotVerifiable as exc:
        raise TLSVerificationFailed(
            f"{where}: host key not trusted; add it to known_hosts (ssh-keyscan -p {port} {host}) or pin its host_key"
        ) from exc
    except (OSError, asyncssh.Error) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
        raise ConnectionFailed(f"{where}: cannot connect: {reason}; check the address and that SSH is enabled") from exc

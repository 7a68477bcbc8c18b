"""Plain servers (platform = "servers"): their OS's own shutdown over SSH, and whether their services answer.

A plain server is powered on and confirmed off by its BMC like every server; what is its own is how its OS is asked
to stop (``ssh``: a configured command, default ``systemctl poweroff``, the host key pinned or in known_hosts) and how
it is known to be up (``ready``: each check answers, "tcp:2049" for NFS, "tcp:3260" iSCSI, "https:443")."""

from __future__ import annotations

import asyncio
import socket
import warnings
from concurrent.futures import ThreadPoolExecutor

import requests
import urllib3

from labswitch import ssh
from labswitch.config import Server
from labswitch.config.secrets import plain
from labswitch.errors import EndpointError

CHECK_TIMEOUT = 3.0  # one ready check's connection


def poweroff(server: Server) -> str:
    """Run the server's ssh.command; what was done, in a few words. The session ending as the OS goes down counts as
    done. EndpointError (one line): the login refused, the host key not trusted, the command failing."""
    return asyncio.run(_poweroff(server))


async def _poweroff(server: Server) -> str:
    conf, address = server.ssh, server.address
    assert conf is not None and address is not None
    where = f"server {server.name} SSH {address}:{conf.port}"
    trust = ssh.known_hosts(conf.host_key, conf.known_hosts, where, "its ssh.host_key")
    settings = "ssh.user and ssh.key_file" if conf.key_file else "ssh.user and ssh.password"
    conn = await ssh.connect(address, conf.port, conf.user, plain(conf.password), trust, conf.timeout, where, settings, conf.key_file)
    try:
        result = await asyncio.wait_for(conn.run(conf.command, check=False), conf.timeout)
    except TimeoutError:
        return f"{conf.command!r} sent over SSH (still running after {conf.timeout:g}s)"
    except (OSError, ssh.SSHError):  # the session cut as the OS goes down: what a poweroff does
        return f"{conf.command!r} sent over SSH (the session ended as the OS went down)"
    finally:
        conn.close()
    if result.exit_status not in (0, None) or result.exit_signal:
        first = (str(result.stderr or result.stdout or "").strip().splitlines() or [f"exit status {result.exit_status}"])[0]
        raise EndpointError(f"{where}: {conf.command!r} failed: {first[:200]}")
    return f"{conf.command!r} run over SSH"


def not_answering(server: Server) -> list[str]:
    """The server's ready checks that do not answer now (all of them in parallel; [] : ready)."""
    with ThreadPoolExecutor(max_workers=max(1, len(server.ready))) as pool:
        answered = list(pool.map(lambda check: answers(server, check), server.ready))
    return [check for check, ok in zip(server.ready, answered, strict=True) if not ok]


def answers(server: Server, check: str) -> bool:
    """One check: a TCP connection accepted; over http or https, any HTTP answer (a 401, a redirect: the service runs)."""
    kind, _, rest = check.partition(":")
    host, _, port = rest.rpartition(":")
    address = host or server.address or server.name
    if kind == "tcp":
        try:
            with socket.create_connection((address, int(port)), timeout=CHECK_TIMEOUT):
                return True
        except OSError:
            return False
    # Nothing secret is sent, so the certificate is not what is checked here (a NAS's own self-signed one is the rule).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            requests.get(f"{kind}://{address}:{port}/", timeout=CHECK_TIMEOUT, verify=False, allow_redirects=False)
        return True
    except requests.RequestException:
        return False

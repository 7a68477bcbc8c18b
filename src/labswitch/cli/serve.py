"""labswitch serve"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from labswitch import render
from labswitch.cli import State, app
from labswitch.errors import ConfigError


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen {value}: HOST:PORT expected, e.g. 127.0.0.1:8330")
    return host.strip("[]"), int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


serve_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
app.add_typer(serve_app, name="serve")


@serve_app.command("passwd")
def passwd_command(ctx: typer.Context) -> None:
    """Set the web page's login password: its bcrypt hash is written to \\[serve] password_hash in the config.

    Asked twice at a terminal (not echoed); otherwise read from the first line of stdin.

    Example:

      labswitch serve passwd
    """
    import sys

    import bcrypt
    import tomlkit

    from labswitch.config.load import write_private

    state: State = ctx.obj
    path = state.config_path
    if sys.stdin.isatty():
        password = typer.prompt("New password for the page", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise ConfigError("serve passwd: at least 8 characters, please")
    try:
        doc = tomlkit.parse(path.read_text())
    except (OSError, tomlkit.exceptions.TOMLKitError) as exc:
        raise ConfigError(f"{path}: cannot read it to add the password ({exc}); check --config") from exc
    table = doc.get("serve")
    if table is None:
        table = tomlkit.table()
        doc["serve"] = table
    table["password_hash"] = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    try:
        write_private(path, tomlkit.dumps(doc))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror}); check its permissions") from exc
    render.stdout.print(f"{path}: [serve] password_hash set; restart labswitch serve", markup=False)


@serve_app.callback()
def serve_command(
    ctx: typer.Context,
    listen: Annotated[str | None, typer.Option("--listen", help="HOST:PORT to listen on (default: serve.listen, 127.0.0.1:8330).")] = None,
    tls_cert: Annotated[str | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate (PEM).")] = None,
    tls_key: Annotated[str | None, typer.Option("--tls-key", help="The certificate's private key (PEM).")] = None,
) -> None:
    """Serve the lab's switch: a web page, a REST API (OpenAPI page at /docs with \\[serve] api_docs), Prometheus /metrics and, with
    \\[mqtt], Home Assistant over MQTT. `labswitch serve passwd` sets the page's password.

    Every /api request carries \\[serve] token as a bearer token; runs started here take the same run
    lock as the CLI (a second run: 409 with the run id in progress). Listens on loopback unless told
    otherwise; a non-loopback address without TLS is warned about (a reverse proxy with TLS is the
    usual way out). SIGTERM stops it: a run in progress is journaled as interrupted and resumable.

    By itself it samples every server's draw into the journal every energy.sample_interval (for
    `labswitch energy` and the metrics), takes an idle group down after policy.idle_down_after (off by
    default), and runs [[serve.schedules]] by the clock; with [ups], it watches the UPS too.

    Example:

      export LABSWITCH_TOKEN=$(openssl rand -hex 24)   # \\[serve] token = { env = "LABSWITCH_TOKEN" }

      labswitch serve --listen 127.0.0.1:8330

      curl -H "Authorization: Bearer $LABSWITCH_TOKEN" http://127.0.0.1:8330/api/status
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from labswitch.usecases.service import Service
    from labswitch.web import create_app

    state: State = ctx.obj
    config = state.config(service=True)
    if config.serve.token is None:
        raise ConfigError('serve: no [serve] token; add token = { env = "LABSWITCH_TOKEN" } (every API request carries it)')
    host, port = parse_listen(listen or config.serve.listen)
    cert, key = tls_cert or config.serve.tls_cert, tls_key or config.serve.tls_key
    if bool(cert) != bool(key):
        raise ConfigError("serve: give both --tls-cert and --tls-key (or serve.tls_cert and serve.tls_key), or neither")
    if not cert and not _loopback(host):
        render.note(
            f"serving plain HTTP on {host}: the token crosses the network in clear; use --tls-cert/--tls-key or a reverse proxy with TLS"
        )
    if config.mqtt is not None and config.mqtt.client_cert:
        import ssl

        from labswitch.web.mqtt import client_certificate

        client_certificate(ssl.create_default_context(), config.mqtt)  # one line here if it does not load, before anything starts
    service = Service(config)
    scheme = "https" if cert else "http"
    docs = ", OpenAPI at /docs" if config.serve.api_docs else ""
    render.stderr.print(f"labswitch serve: {scheme}://{host}:{port} (API at /api{docs}, metrics at /metrics)", markup=False)
    try:
        proxies = config.serve.trusted_proxies  # their X-Forwarded-For/-Proto are believed; nobody else's
        uvicorn.run(
            create_app(config, service, state.config_path),
            host=host,
            port=port,
            ssl_certfile=cert,
            ssl_keyfile=key,
            log_level="warning",
            proxy_headers=bool(proxies),
            forwarded_allow_ips=",".join(proxies) if proxies else None,
            server_header=False,
            limit_concurrency=256,  # connections and requests at once; beyond: 503, never unbounded memory
            timeout_keep_alive=5,
            timeout_graceful_shutdown=5,  # the page's open event streams end with the service, not hold it
        )
    finally:
        service.stop()

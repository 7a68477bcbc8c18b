"""Read a TOML file into a validated Config, or raise one ConfigError line."""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from labswitch.config import models
from labswitch.config.secrets import resolve
from labswitch.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_PATH = Path("labswitch.toml")


def load(path: Path, *, resolve_secrets: bool = True, service: bool = False) -> models.Config:
    """The configuration at ``path``, validated, with secrets resolved: the service's own ([serve] token,
    [mqtt] password) only with ``service`` (`labswitch serve`), so the CLI never needs them set.

    Raises ConfigError (and nothing else) with one line naming the file, the key
    path, what is wrong and how to fix it.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file; create one with 'labswitch init' or pass --config PATH") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from exc
    return parse(raw, source=str(path), resolve_secrets=resolve_secrets, service=service)


def parse(raw: bytes, *, source: str, resolve_secrets: bool = True, service: bool = False) -> models.Config:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: TOML syntax error: {exc}") from exc
    try:
        config = models.Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from exc
    return _resolve_secrets(config, source, service) if resolve_secrets else config


def _resolve_secrets(config: models.Config, source: str, service: bool) -> models.Config:
    def secret(ref: Any, where: str) -> SecretStr:
        if isinstance(ref, SecretStr):
            log.warning("%s: %s is written in the file; prefer { env = ... }, { file = ... } or { keyring = ... }", source, where)
        return resolve(ref, f"{source}: {where}")

    def with_password(table: Any, where: str) -> Any:
        if table is None or getattr(table, "password", None) is None:
            return table  # Wake-on-LAN has none; a plug may have none
        return table.model_copy(update={"password": secret(table.password, f"{where}.password")})

    servers = [
        s.model_copy(
            update={
                "bmc": with_password(s.bmc, f"servers[{i}].bmc"),
                "meter": with_password(s.meter, f"servers[{i}].meter"),
                "ssh": with_password(s.ssh, f"servers[{i}].ssh"),
                "esxi_password": secret(s.esxi_password, f"servers[{i}].esxi_password") if s.esxi_password is not None else None,
            }
        )
        for i, s in enumerate(config.servers)
    ]
    update: dict[str, Any] = {"servers": servers}
    if config.vcenter is not None:
        update["vcenter"] = config.vcenter.model_copy(update={"password": secret(config.vcenter.password, "vcenter.password")})
    if config.vcsa is not None:
        update["vcsa"] = config.vcsa.model_copy(update={"password": secret(config.vcsa.password, "vcsa.password")})
    if service and config.mqtt is not None and config.mqtt.password is not None:
        update["mqtt"] = config.mqtt.model_copy(update={"password": secret(config.mqtt.password, "mqtt.password")})
    if service:
        tokens = {k: secret(v, f"serve.{k}") for k in ("token", "metrics_token") if (v := getattr(config.serve, k)) is not None}
        update["serve"] = config.serve.model_copy(update=tokens)
    if config.ups is not None and config.ups.password is not None:
        update["ups"] = config.ups.model_copy(update={"password": secret(config.ups.password, "ups.password")})
    if config.esxi is not None:
        update["esxi"] = config.esxi.model_copy(update={"password": secret(config.esxi.password, "esxi.password")})
    if config.proxmox is not None:
        pve = config.proxmox
        update["proxmox"] = pve.model_copy(
            update={
                "password": secret(pve.password, "proxmox.password") if pve.password is not None else None,
                "token_secret": secret(pve.token_secret, "proxmox.token_secret") if pve.token_secret is not None else None,
            }
        )
    return config.model_copy(update=update)


def _describe(exc: ValidationError) -> str:
    # A typo shows as an unknown key and as the missing key it meant: name the typo.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    where = _key_path(first["loc"])
    kind, msg = first["type"], first["msg"]
    if kind == "extra_forbidden":
        key = str(first["loc"][-1])
        close = difflib.get_close_matches(key, _known_keys(), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else "; remove it or check the README for the key names"
        text = f"{where}: unknown key{hint}"
    elif kind == "missing":
        text = f"{where}: missing; every server needs a BMC table" if where.endswith(".bmc") else f"{where}: missing; add it"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):  # bmc.driver names the kind of table
        drivers = ", ".join(sorted(DRIVERS))
        got = (first.get("ctx") or {}).get("tag")
        text = f"{where}.driver: unknown driver {got!r}; one of {drivers}" if got else f"{where}.driver: missing; one of {drivers}"
    else:
        msg = msg.removeprefix("Value error, ")
        got = first.get("input")
        shown = "" if isinstance(got, (dict, list)) or "password" in where or got is None else f" (got {got!r})"
        text = f"{where}: {msg}{shown}" if where else f"{msg}"
    more = len(errors) - 1
    return text + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


DRIVERS = ("redfish", "racadm", "ipmi", "wol", "shelly", "tasmota")  # bmc.driver: the tags of the bmc tables


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in DRIVERS and path.endswith((".bmc", ".meter")):
            continue  # the union's tag, not a key
        elif part in ("function-after[_parse_secret(), ...]",) or part.startswith(("function-", "union[", "lax-", "json-or-python")):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


def _known_keys() -> set[str]:
    keys: set[str] = set()
    for obj in vars(models).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == models.__name__:
            keys.update(obj.model_fields)
    return keys | {"env", "file", "keyring"}


def write_private(path: Path, text: str) -> None:
    """Write a config file readable by its owner only (0600): it names secrets and holds the page's password hash.
    An existing file is narrowed to 0600 too. OSError as the caller's to report."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)

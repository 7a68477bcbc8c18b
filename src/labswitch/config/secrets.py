"""Secret references: ``{ env = "VAR" }``, ``{ file = "PATH" }``, ``{ keyring = "service/user" }``.

A reference is resolved when the configuration is loaded (so a missing secret
is a configuration error before anything is contacted) into a pydantic
``SecretStr``, which never shows its value in repr, logs or tracebacks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from labswitch.errors import SecretError


class _Ref(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvSecret(_Ref):
    """The value of an environment variable."""

    env: Annotated[str, Field(min_length=1)]

    def resolve(self, where: str) -> SecretStr:
        value = os.environ.get(self.env)
        if value is None or value == "":
            raise SecretError(f"{where}: environment variable {self.env} is not set; export it or change the reference")
        return SecretStr(value)

    def describe(self) -> str:
        return f"env:{self.env}"


class FileSecret(_Ref):
    """The contents of a file (trailing newline stripped), as Docker and systemd credentials provide."""

    file: Annotated[str, Field(min_length=1)]

    def resolve(self, where: str) -> SecretStr:
        path = Path(self.file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SecretError(f"{where}: cannot read secret file {path}: {reason}; check the path and its permissions") from exc
        if not value:
            raise SecretError(f"{where}: secret file {path} is empty; write the secret into it")
        return SecretStr(value)

    def describe(self) -> str:
        return f"file:{self.file}"


class KeyringSecret(_Ref):
    """A password in the system keyring, named ``service/user``."""

    keyring: Annotated[str, Field(pattern=r"^[^/]+/.+$")]

    def resolve(self, where: str) -> SecretStr:
        import keyring  # imported late: backends probe the desktop session on import
        from keyring.errors import KeyringError

        service, _, user = self.keyring.partition("/")
        try:
            value = keyring.get_password(service, user)
        except KeyringError as exc:
            raise SecretError(f"{where}: keyring unavailable ({type(exc).__name__}); use an env or file reference") from exc
        if value is None:
            raise SecretError(f"{where}: no keyring entry {self.keyring}; add it with: keyring set {service} {user}")
        return SecretStr(value)

    def describe(self) -> str:
        return f"keyring:{self.keyring}"


SecretRef = EnvSecret | FileSecret | KeyringSecret | SecretStr
"""A secret as written in the config: a reference, or a literal string (accepted with a warning)."""


_RESOLVED: set[str] = set()  # every secret value this process resolved: never printed (``redact``)
_IN_URL = re.compile(r"(?i)\b(password|passwd|pass|token|secret|key)=[^&\s'\"]+")


def resolve(ref: SecretRef, where: str) -> SecretStr:
    """The secret's value, or a SecretError naming ``where`` (a key path)."""
    secret = ref if isinstance(ref, SecretStr) else ref.resolve(where)
    if value := secret.get_secret_value():
        _RESOLVED.add(value)
    return secret


def plain(secret: SecretRef | None) -> str:
    """The text of a secret the config resolved on load ("" for none given). A reference still unresolved here is a
    bug in labswitch, raised as such rather than sent as an empty password."""
    if secret is None:
        return ""
    if not isinstance(secret, SecretStr):
        raise TypeError(f"a {type(secret).__name__} was used before the config resolved it")
    return secret.get_secret_value()


def redact(text: str) -> str:
    """``text`` (a third party's message: a URL, a vendor error) with every resolved secret and every
    ``password=...``-like query parameter replaced by ``***``."""
    for value in sorted(_RESOLVED, key=len, reverse=True):
        text = text.replace(value, "***")
    return _IN_URL.sub(lambda m: f"{m.group(1)}=***", text)

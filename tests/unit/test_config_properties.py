"""Property: whatever the bytes or TOML structure, the loader raises ConfigError and nothing else."""

from __future__ import annotations

from typing import Any

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labswitch.config import parse
from labswitch.errors import ConfigError

KEYS = [
    "vcenter",
    "url",
    "user",
    "password",
    "tls",
    "thumbprint",
    "ca_file",
    "insecure",
    "policy",
    "groups",
    "servers",
    "name",
    "esxi",
    "group",
    "bmc",
    "driver",
    "address",
    "env",
    "file",
    "keyring",
    "always_on",
    "max_parallel",
    "energy",
    "x",
]

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=20),
    st.booleans(),
    st.floats(allow_nan=False),
    st.sampled_from(["redfish", "racadm", "ipmi", "https://h", "h:1", "a" * 64, "payload"]),
)
toml_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(KEYS), children, max_size=4),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=6)


def check(raw: bytes) -> None:
    try:
        parse(raw, source="fuzz.toml", resolve_secrets=True)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(documents)
def test_structured_documents_only_raise_config_error(doc: dict[str, Any]) -> None:
    check(tomli_w.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_only_raise_config_error(raw: bytes) -> None:
    check(raw)

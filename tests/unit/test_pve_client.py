"""The Proxmox VE client's reading of what went wrong (pure): a TLS handshake cut short is a connection error (the next
node is tried); only a certificate that is not trusted is a trust error; a pin's mismatch names the fingerprint seen."""

from __future__ import annotations

import ssl

import requests

from labswitch.proxmox.client import _got_fingerprint, _untrusted
from labswitch.proxmox.pins import Pins, normalised


def test_a_handshake_cut_short_is_no_trust_error_and_an_untrusted_certificate_is() -> None:
    eof = requests.exceptions.SSLError(ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:992)"))
    reset = requests.exceptions.SSLError("('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))")
    assert not _untrusted(eof) and not _untrusted(reset)
    assert not _untrusted(requests.ConnectionError("refused"))
    bad = requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate")
    pinned = requests.exceptions.SSLError('Fingerprints did not match. Expected "ab", got "CD:EF"')
    assert _untrusted(bad) and _untrusted(pinned)
    assert _got_fingerprint(pinned) == "cdef"


def test_pins_are_kept_per_node_and_written_only_when_they_change(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "pins.json"
    pins = Pins(path)
    fp = ":".join(["AB"] * 32)
    pins.learn({"pve2": fp, "pve3": "not a fingerprint"}, "pve1")
    assert pins.get("pve2") is not None and pins.get("pve2")[0] == normalised(fp) and pins.get("pve3") is None  # type: ignore[index]
    written = path.stat().st_mtime_ns
    pins.learn({"pve2": fp}, "pve1")
    assert path.stat().st_mtime_ns == written, "nothing new: not written again"
    assert Pins(path).get("pve2") == pins.get("pve2"), "read back by the next run"


def test_cephs_services_are_up_with_every_monitor_in_quorum_and_every_osd_up_whatever_the_placement_groups() -> None:
    from labswitch.proxmox.port import _services

    base = {"monmap": {"mons": [{"name": "pve1"}, {"name": "pve2"}]}, "quorum_names": ["pve1", "pve2"]}
    up = {**base, "osdmap": {"num_osds": 3, "num_up_osds": 3}, "health": {"checks": {"OSDMAP_FLAGS": {}, "PG_DEGRADED": {}}}}
    assert _services(up) == "ready", "PGs are ceph-ready's, after the flags (norecover may hold them back)"
    assert _services({**up, "quorum_names": ["pve1"]}) == "monitors out of quorum: pve2"
    assert _services({**up, "osdmap": {"osdmap": {"num_osds": 3, "num_up_osds": 2}}}) == "1 of 3 OSDs down"

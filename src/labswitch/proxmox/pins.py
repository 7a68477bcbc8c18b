"""Each Proxmox VE node's own certificate fingerprint, learned through a trusted connection and kept beside the lab.

Every PVE node serves its own certificate (/etc/pve/nodes/<node>/pve-ssl.pem, signed by the cluster CA
/etc/pve/pve-root-ca.pem), so one pinned thumbprint trusts one node. With ``[proxmox] tls = { thumbprint = ... }``
labswitch pins the node ``url`` names, reads every node's ``ssl_fingerprint`` from ``GET /nodes`` through that
trusted, authenticated connection (pve-manager PVE/API2/Nodes.pm's index), and pins each node in turn when it talks
to it. The fingerprints are kept in the state directory (one file per lab), refreshed whenever a trusted node
answers, so that an up can reach the other nodes while the pinned one is still off."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path


def normalised(fingerprint: str) -> str:
    """PVE's "AB:CD:..." as the config's thumbprints are written: 64 lower-case hex digits."""
    return fingerprint.replace(":", "").strip().lower()


class Pins:
    """node -> its certificate's SHA-256 (normalised), with where and when it was read."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._known: dict[str, dict[str, str]] = {}
        if path is not None and path.exists():
            try:
                self._known = dict(json.loads(path.read_text()).get("nodes", {}))
            except (OSError, ValueError):
                self._known = {}  # unreadable: learned again from the pinned node

    def get(self, node: str) -> tuple[str, str] | None:
        """(fingerprint, "read from pve1 at 2026-12-07 10:00") or None."""
        with self._lock:
            entry = self._known.get(node)
        return (entry["fingerprint"], f"read from {entry['from']} at {entry['at']}") if entry else None

    def learn(self, fingerprints: Mapping[str, str], source: str) -> None:
        """What a trusted node said of every node's certificate; written when it changed anything."""
        at = time.strftime("%Y-%m-%d %H:%M")
        with self._lock:
            changed = False
            for node, fingerprint in fingerprints.items():
                value = normalised(fingerprint)
                if len(value) != 64:
                    continue
                if self._known.get(node, {}).get("fingerprint") != value:
                    self._known[node] = {"fingerprint": value, "from": source, "at": at}
                    changed = True
            if changed and self.path is not None:
                self._write()

    def _write(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"nodes": self._known}, indent=1, sort_keys=True))
        os.replace(temporary, self.path)

#!/usr/bin/env bash
# Prepare the always-on container host that runs labswitch (Photon OS or any systemd host).
# Idempotent: every step checks first and changes only what differs; a second run changes nothing.
#
#   sudo deploy/container-host.sh --network-file 10-static-eth0.network --user labops [--dry-run]
#
# Steps: the static address (a systemd-networkd .network file, mode 644, from
# `labswitch host network`), ICMP echo allowed in iptables and the rules saved, docker
# enabled at boot, a non-root operator in the docker group.
set -euo pipefail

usage() {
  echo "usage: $0 --network-file FILE --user NAME [--dry-run]" >&2
  exit 2
}

network_file="" operator="" dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --network-file) network_file=${2:-}; shift 2 || usage ;;
    --user) operator=${2:-}; shift 2 || usage ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage ;;
    *) echo "$0: unknown argument: $1" >&2; usage ;;
  esac
done
if [ -z "$network_file" ] || [ -z "$operator" ]; then usage; fi
[ -r "$network_file" ] || { echo "$0: $network_file: cannot read it; render it with: labswitch host network ... --out FILE" >&2; exit 2; }
case "$operator" in
  root) echo "$0: --user root: the operator must not be root" >&2; exit 2 ;;
  *[!a-z0-9_-]*|-*|"") echo "$0: --user $operator: not a valid user name (lower case letters, digits, '-', '_')" >&2; exit 2 ;;
esac
if [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "$0: run as root (sudo), or pass --dry-run to see what would change" >&2
  exit 2
fi

# step CMD...: run it, or only say it on --dry-run.
step() {
  if [ "$dry_run" -eq 1 ]; then
    echo "would run: $*"
  else
    echo "run: $*"
    "$@"
  fi
}

# 1. Static address through systemd-networkd.
target="/etc/systemd/network/$(basename "$network_file")"
if [ -f "$target" ] && cmp -s "$network_file" "$target" && [ "$(stat -c %a "$target")" = 644 ]; then
  echo "ok: $target is up to date"
else
  step install -m 644 -D "$network_file" "$target"
  step systemctl restart systemd-networkd
fi
if systemctl is-enabled --quiet systemd-networkd 2>/dev/null; then
  echo "ok: systemd-networkd enabled"
else
  step systemctl enable systemd-networkd
fi

# 2. Ping allowed, and the rules saved where the distribution restores them at boot.
if iptables -C INPUT -p icmp --icmp-type echo-request -j ACCEPT 2>/dev/null; then
  echo "ok: ICMP echo allowed"
else
  step iptables -A INPUT -p icmp --icmp-type echo-request -j ACCEPT
  if [ -d /etc/systemd/scripts ]; then         # Photon OS restores /etc/systemd/scripts/ip4save
    rules=/etc/systemd/scripts/ip4save
  else                                          # Debian/Ubuntu: iptables-persistent
    rules=/etc/iptables/rules.v4
  fi
  if [ "$dry_run" -eq 1 ]; then
    echo "would run: iptables-save > $rules"
  else
    mkdir -p "$(dirname "$rules")"
    iptables-save >"$rules"
    echo "run: iptables-save > $rules"
  fi
fi

# 3. Docker at boot.
if systemctl is-enabled --quiet docker 2>/dev/null && systemctl is-active --quiet docker 2>/dev/null; then
  echo "ok: docker enabled and running"
else
  step systemctl enable --now docker
fi

# 4. A non-root operator in the docker group.
if ! id "$operator" >/dev/null 2>&1; then
  step useradd -m -s /bin/bash -G docker "$operator"
elif id -nG "$operator" | tr ' ' '\n' | grep -qx docker; then
  echo "ok: $operator is in the docker group"
else
  step usermod -aG docker "$operator"
fi
if [ "$dry_run" -eq 1 ]; then echo "done (dry run: nothing changed)"; else echo "done"; fi

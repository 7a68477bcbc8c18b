#!/usr/bin/env bash
# The Proxmox VE demo: start labsim --proxmox (a 3-node cluster with HA and Ceph, each node's BMC
# iDRAC-shaped, each node with its own certificate signed by the cluster CA), then run labswitch's cycle
# against it with a least-privilege API token (docs/proxmox.md). Run through `make demo-proxmox`.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=.demo-proxmox
labsim=${LABSIM_BIN:-labsim/bin/labsim}
mkdir -p "$demo"
rm -f "$demo/labsim.out"
least="VM.Audit,VM.PowerMgmt,Sys.Audit,Sys.PowerMgmt,Sys.Modify,Sys.Console"  # the token's only privileges
"$labsim" --proxmox --pve-ceph --pve-ha --pve-guests 4 --host-boot-delay 3s --host-shutdown-delay 1s --guest-shutdown-delay 1s \
  --pve-auth token --pve-token-acl "$least" --write-config "$demo/labswitch.toml" --secrets-file "$demo/secrets.env" >"$demo/labsim.out" 2>"$demo/labsim.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  grep -q '^READY ' "$demo/labsim.out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "labsim exited:"; cat "$demo/labsim.log"; exit 1; }
  sleep 0.1
done
cat "$demo/labsim.log"
set -a
# shellcheck disable=SC1091
. "$demo/secrets.env"
set +a
config=$demo/labswitch.toml
export XDG_STATE_HOME="$PWD/$demo/state"
rm -rf "$demo/state"

run() {
  echo
  echo "\$ labswitch --config $config $*"
  labswitch --config "$config" "$@"
}

sed -n '/^\[proxmox\]/,/^$/p' "$config"   # an API token, the cluster CA (pve-root-ca.pem): every node's certificate
run status                 # nodes, guests, quorum, HA, Ceph's flags
run plan down --brief      # HA ignored, Ceph flagged, guests in reverse start order, nodes after every guest (Ceph)
run down --yes             # confirmed off by each node's BMC
run status                 # the cluster's API is gone with its nodes: the BMCs say Off; what the down changed, pending
run plan up --brief
run up --yes               # BMC power-on, back in the cluster, Ceph's flags cleared and its PGs active, HA, waves
run up --restore --yes     # and now every guest that ran before the down
run history
run audit || true          # vSphere's checks: one line says so

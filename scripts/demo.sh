#!/usr/bin/env bash
# The demo: start labsim (a simulated vCenter with iDRAC-shaped BMCs), then run
# labswitch against it. Run through `make demo`, which builds both first.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=.demo
labsim=${LABSIM_BIN:-labsim/bin/labsim}
mkdir -p "$demo"
rm -f "$demo/labsim.out"

# vSphere 8.0 U2: vCLS in every cluster, Cluster1 on vSAN, HA on everywhere.
"$labsim" --vsphere 8.0.2 --vsan-clusters 1 --ha \
  --clusters 3 --hosts-per-cluster 4 --vms-per-host 10 --mgmt-hosts 1 --vcenter-vm-on mgmt \
  --guest-shutdown-delay 2s --host-shutdown-delay 2s --host-boot-delay 4s \
  --cbt-fraction 0.05 --sgx-hosts esx11=enabled,esx12=disabledBIOS --vsgx-vms esx12-vm01=32 \
  --write-config "$demo/labswitch.toml" --secrets-file "$demo/secrets.env" >"$demo/labsim.out" 2>"$demo/labsim.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 300); do
  grep -q '^READY ' "$demo/labsim.out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "labsim exited:"; cat "$demo/labsim.log"; exit 1; }
  sleep 0.1
done
grep -q '^READY ' "$demo/labsim.out" || { echo "labsim did not become ready in 30 s"; exit 1; }

echo "labsim: $(cat "$demo/labsim.log")"
echo "labsim: $(grep '^READY ' "$demo/labsim.out")"
echo "config: $demo/labswitch.toml (secrets as env references; values in $demo/secrets.env)"
set -a
# shellcheck disable=SC1091
. "$demo/secrets.env"
set +a

run() {
  echo
  echo "\$ labswitch --config $demo/labswitch.toml $*"
  labswitch --config "$demo/labswitch.toml" "$@"
}

export XDG_STATE_HOME="$PWD/$demo/state"   # the demo's journal stays in .demo/
rm -rf "$demo/state"

run status
run plan down
if [ -t 0 ]; then
  run down            # at a terminal: the plan in brief, the question (answer y), live progress
else
  run down --yes
fi
run status
run up --yes
run status
run history
run audit cbt-unmap sgx
run fix l1tf --mitigate --dry-run
run fix l1tf --mitigate esx11.lab.local --yes
run audit l1tf --csv -

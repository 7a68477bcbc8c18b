#!/usr/bin/env bash
# The demo: start labsim (a simulated vCenter with iDRAC-shaped BMCs), then run
# labswitch against it. Run through `make demo`, which builds both first.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=.demo
labsim=${LABSIM_BIN:-labsim/bin/labsim}

# start_lab DIR LABSIM-FLAGS...: a labsim in the background, its config and secrets in DIR, loaded.
pid=""
start_lab() {
  local dir=$1
  shift
  mkdir -p "$dir"
  rm -f "$dir/labsim.out"
  "$labsim" "$@" --write-config "$dir/labswitch.toml" --secrets-file "$dir/secrets.env" >"$dir/labsim.out" 2>"$dir/labsim.log" &
  pid=$!
  for _ in $(seq 1 300); do
    grep -q '^READY ' "$dir/labsim.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "labsim exited:"; cat "$dir/labsim.log"; exit 1; }
    sleep 0.1
  done
  grep -q '^READY ' "$dir/labsim.out" || { echo "labsim did not become ready in 30 s"; exit 1; }
  cat "$dir/labsim.log"
  echo "labsim: $(grep '^READY ' "$dir/labsim.out")"
  echo "config: $dir/labswitch.toml (secrets as env references; values in $dir/secrets.env)"
  set -a
  # shellcheck disable=SC1091
  . "$dir/secrets.env"
  set +a
}
stop_lab() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap stop_lab EXIT

# vSphere 8.0 U3: embedded vCLS in every cluster, Cluster1 on vSAN, HA on everywhere; esx34 has no BMC (Wake-on-LAN),
# esx33's iDRAC reports no watts (a Shelly plug measures it). nas01 is a plain storage server (platform = "servers")
# that payload needs: it goes down after every payload host, and comes up and answers on its NFS port before them.
start_lab "$demo" --vsphere 8.0.3 --vsan-clusters 1 --ha --wol-hosts esx34 --meter-hosts esx33 --storage 1 \
  --clusters 3 --hosts-per-cluster 4 --vms-per-host 10 --mgmt-hosts 1 --vcenter-vm-on mgmt \
  --guest-shutdown-delay 2s --host-shutdown-delay 2s --host-boot-delay 4s \
  --cbt-fraction 0.05 --sgx-hosts esx11=enabled,esx12=disabledBIOS --vsgx-vms esx12-vm01=32

run() {
  echo
  echo "\$ labswitch --config $config $*"
  labswitch --config "$config" "$@"
}
config=$demo/labswitch.toml

export XDG_STATE_HOME="$PWD/$demo/state"   # the demo's journal stays in .demo/
rm -rf "$demo/state"

run status
run bmc watts
run plan down --brief   # the summary; without --brief, every one of its 168 steps
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

# The whole lab: three hosts, one cluster, vCenter (and the DNS VM it needs) inside it; no always-on box.
stop_lab
echo
echo "== a lab whose vCenter runs inside the cluster it switches off =="
whole=$demo/whole
start_lab "$whole" --vsphere 8.0.3 --ha --clusters 1 --hosts-per-cluster 3 --vms-per-host 4 --mgmt-hosts 0 \
  --vcenter-vm-on payload --dns-vm --vcenter-boot-delay 5s --guest-shutdown-delay 2s --host-shutdown-delay 2s --host-boot-delay 4s
sed -i 's/^\[policy\]$/[policy]\nvcenter_dependencies = ["dns*"]/' "$whole/labswitch.toml"
config=$whole/labswitch.toml
export XDG_STATE_HOME="$PWD/$whole/state"
rm -rf "$whole/state"
run status
run plan down --whole-lab
run down --whole-lab --yes
run status          # vCenter is off: the BMCs and the journal say where everything is
run plan up
run up --yes
run status

# labswitch serve on the same lab: the page, the API, the metrics; a one-time password for the page.
port=18330
login=$(python3 -c 'import secrets; print(secrets.token_urlsafe(9))')
export LABSWITCH_TOKEN
LABSWITCH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
printf '\n[serve]\ntoken = { env = "LABSWITCH_TOKEN" }\nlisten = "127.0.0.1:%s"\n' "$port" >>"$config"
printf '\n[energy]\nsample_interval = "2s"   # the default is 5 minutes\n' >>"$config"
echo "$login" | labswitch --config "$config" serve passwd >/dev/null
labswitch --config "$config" serve 2>"$whole/serve.log" &
serve=$!
trap 'kill "$serve" 2>/dev/null || true; stop_lab' EXIT
get() {  # GET a URL of the service (python3: the venv's, which has requests); $2: the bearer token
  python3 -c 'import sys, requests; r = requests.get(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]} if sys.argv[2] else {}, timeout=60); r.raise_for_status(); print(r.text)' "$1" "${2:-}"
}
for _ in $(seq 1 100); do get "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo
echo "labswitch serve: http://127.0.0.1:$port  (page login: $login; API: Authorization: Bearer $LABSWITCH_TOKEN)"
echo "GET /api/lock:"
get "http://127.0.0.1:$port/api/lock" "$LABSWITCH_TOKEN"
echo "GET /metrics (watts, from serve's first read of the lab):"
for _ in $(seq 1 300); do get "http://127.0.0.1:$port/metrics" | grep -q '^labswitch_lab_read_age_seconds' && break; sleep 0.1; done
get "http://127.0.0.1:$port/metrics" | grep '^labswitch_server_power_watts'
samples() { python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(DISTINCT at) FROM energy_samples").fetchone()[0])' "$XDG_STATE_HOME/labswitch/journal.sqlite3" 2>/dev/null || echo 0; }
for _ in $(seq 1 100); do [ "$(samples)" -ge 3 ] && break; sleep 0.1; done
run energy --days 1   # measured: serve's samples of the last seconds; estimated: the rest of the day
if [ -t 0 ]; then
  read -r -p "open the page, then press Enter to stop the demo " _
fi

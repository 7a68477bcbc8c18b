package main

import (
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"
)

// faults are switched on and off while labsim runs, for the fault matrix:
//
//	POST   /labsim/faults?bmc=esx12&mode=hang              the BMC accepts connections and never answers
//	POST   /labsim/faults?bmc=esx12&mode=error             the BMC answers every request with a 500
//	POST   /labsim/faults?vm=NAME&mode=ignore-shutdown     the guest accepts a shutdown and never stops
//	POST   /labsim/faults?host=esx12&mode=stuck            the server boots but its host never reconnects
//	POST   /labsim/faults?task=enterMaintenanceMode&mode=hang   such tasks stay running until the fault is off
//	POST   /labsim/faults?feed=vcenter&mode=drop           every WaitForUpdatesEx has its connection cut
//	POST   /labsim/faults?vcenter=vpxd&mode=restart        SOAP down until mode=none, then every earlier session gone
//	POST   /labsim/faults?api=pve2&mode=hang               --proxmox: the node's API accepts and never answers (api=all: every node)
//	POST   /labsim/faults?api=pve2&mode=eof                --proxmox: the node's API closes each connection in the TLS handshake
//	POST   /labsim/faults?host=pve2&mode=stuck             --proxmox: the node boots but never rejoins the cluster
//	POST   /labsim/faults?ceph=lab&mode=stuck              --proxmox: the placement groups stay peering
//	POST   /labsim/faults?quorum=lab&mode=lost             --proxmox: the cluster loses quorum (every write: "no quorum?")
//	POST   /labsim/faults?KIND=NAME&mode=none              that fault off
//	GET    /labsim/faults                                  what is on ({"bmc:esx12": "hang"})
//	DELETE /labsim/faults                                  everything off
//
// A hung request is held until the fault is cleared or its client gives up.
type faults struct {
	mu       sync.Mutex
	set      map[string]string
	cleared  func(key string) // called (outside the lock) when a fault goes off: what it held back happens then
	switched func(key string) // called (outside the lock) when a fault goes on
}

// faultModes: each kind of object and the faults it can have.
var faultModes = map[string]map[string]bool{
	"bmc":     {"hang": true, "error": true},
	"vm":      {"ignore-shutdown": true},
	"host":    {"stuck": true},
	"task":    {"hang": true},              // by the task's name: enterMaintenanceMode, exitMaintenanceMode, reconfigureCluster, ...
	"feed":    {"drop": true},              // feed=vcenter: the change feed (WaitForUpdatesEx)
	"vcenter": {"restart": true},           // vcenter=vpxd: down while on; its sessions gone after (restart.go)
	"api":     {"hang": true, "eof": true}, // --proxmox: a node's API port (api=NODE, or api=all)
	"ceph":    {"stuck": true},             // --proxmox: ceph=CLUSTER: placement groups never active
	"quorum":  {"lost": true},              // --proxmox: quorum=CLUSTER: corosync without quorum (writes refused)
}

// labFaults is the lab's, for code that has no Lab at hand (runTask).
var labFaults = &faults{}

func (f *faults) get(key string) string {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.set[key]
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var off, on []string
	defer func() {
		for _, key := range off {
			if f.cleared != nil {
				f.cleared(key)
			}
		}
		for _, key := range on {
			if f.switched != nil {
				f.switched(key)
			}
		}
	}()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.set == nil {
		f.set = map[string]string{}
	}
	switch r.Method {
	case http.MethodDelete:
		for key := range f.set {
			off = append(off, key)
		}
		f.set = map[string]string{}
	case http.MethodPost:
		key, mode, ok := "", r.URL.Query().Get("mode"), false
		for kind, modes := range faultModes {
			if name := r.URL.Query().Get(kind); name != "" && (modes[mode] || mode == "none") {
				key, ok = kind+":"+name, true
			}
		}
		if !ok {
			http.Error(w, "POST /labsim/faults?KIND=NAME&mode=MODE: bmc hang|error, vm ignore-shutdown, host stuck, task hang, feed drop, api hang|eof, ceph stuck, quorum lost; or mode=none", http.StatusBadRequest)
			return
		}
		if mode == "none" {
			if _, on := f.set[key]; on {
				off = append(off, key)
			}
			delete(f.set, key)
		} else {
			f.set[key] = mode
			on = append(on, key)
		}
	}
	keys := make([]string, 0, len(f.set))
	for k := range f.set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]string{}
	for _, k := range keys {
		out[k] = f.set[k]
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// bmcFault applies a BMC's fault to one request: true when the request was answered (or dropped) by it.
func (f *faults) bmcFault(server string, w http.ResponseWriter, r *http.Request) bool {
	switch f.get("bmc:" + server) {
	case "hang":
		for f.get("bmc:"+server) == "hang" {
			select {
			case <-r.Context().Done():
				return true // the client gave up
			case <-time.After(50 * time.Millisecond):
			}
		}
		return f.bmcFault(server, w, r) // cleared, or switched to another fault meanwhile
	case "error":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"code":"Base.1.12.InternalError","message":"The request failed due to an internal service error."}}`))
		return true
	}
	return false
}

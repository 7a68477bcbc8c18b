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
//	POST   /labsim/faults?bmc=esx12&mode=hang    the BMC accepts connections and never answers
//	POST   /labsim/faults?bmc=esx12&mode=error   the BMC answers every request with a 500
//	POST   /labsim/faults?bmc=esx12&mode=none    the BMC answers again
//	GET    /labsim/faults                        what is on ({"bmc:esx12": "hang"})
//	DELETE /labsim/faults                        everything off
//
// A hung request is held until the fault is cleared or its client gives up.
type faults struct {
	mu  sync.Mutex
	set map[string]string
}

var faultModes = map[string]bool{"hang": true, "error": true, "none": true}

func (f *faults) get(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.set[key]
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.set == nil {
		f.set = map[string]string{}
	}
	switch r.Method {
	case http.MethodDelete:
		f.set = map[string]string{}
	case http.MethodPost:
		server, mode := r.URL.Query().Get("bmc"), r.URL.Query().Get("mode")
		if server == "" || !faultModes[mode] {
			http.Error(w, "POST /labsim/faults?bmc=SERVER&mode=hang|error|none", http.StatusBadRequest)
			return
		}
		if mode == "none" {
			delete(f.set, "bmc:"+server)
		} else {
			f.set["bmc:"+server] = mode
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

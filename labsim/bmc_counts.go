package main

import (
	"encoding/json"
	"net"
	"net/http"
	"sync"
)

// bmcCounts is what clients cost one BMC: TCP connections opened, Redfish sessions
// created, and power reads (GETs of the system resource). An iDRAC has few session
// slots and a slow TLS handshake: a client that polls should keep one connection and
// one session. GET /labsim/bmc-counts returns every BMC's counts; DELETE returns and
// resets them.
type bmcCounts struct {
	mu          sync.Mutex
	Connections int `json:"connections"`
	Sessions    int `json:"sessions"`
	Reads       int `json:"reads"`
}

func (c *bmcCounts) add(field *int) {
	c.mu.Lock()
	*field++
	c.mu.Unlock()
}

// connState counts a new TCP connection (an http.Server's ConnState hook).
func (c *bmcCounts) connState(_ net.Conn, state http.ConnState) {
	if state == http.StateNew {
		c.add(&c.Connections)
	}
}

func (l *Lab) serveBMCCounts(w http.ResponseWriter, r *http.Request) {
	out := map[string]map[string]int{}
	for _, s := range l.servers {
		if s.bmc == nil {
			continue
		}
		c := &s.bmc.counts
		c.mu.Lock()
		out[s.Name] = map[string]int{"connections": c.Connections, "sessions": c.Sessions, "reads": c.Reads}
		if r.Method == http.MethodDelete {
			c.Connections, c.Sessions, c.Reads = 0, 0, 0
		}
		c.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

package main

// Guest CPU load (summary.quickStats.overallCpuUsage, MHz), for idle
// detection: a powered-on VM reads --idle-cpu-mhz unless --busy-vms names it
// (then --busy-cpu-mhz) or a test set its load at run time with
// POST /labsim/cpu?vm=NAME&mhz=N; a VM that is off reads 0. GET /labsim/cpu
// lists the loads set (VM name -> MHz while on).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type cpuLoads struct {
	lab  *Lab
	mu   sync.Mutex
	load map[string]int32 // VM name -> MHz while powered on
}

func newCPULoads(l *Lab) (*cpuLoads, error) {
	c := &cpuLoads{lab: l, load: map[string]int32{}}
	known := map[string]bool{}
	for _, t := range l.vms {
		known[t.name] = true
	}
	for _, name := range strings.Split(l.opts.busyVMs, ",") {
		if name = strings.TrimSpace(name); name != "" {
			if !known[name] {
				return nil, fmt.Errorf("--busy-vms: no VM named %q", name)
			}
			c.load[name] = int32(l.opts.busyCPUMHz)
		}
	}
	return c, nil
}

func (c *cpuLoads) of(name string) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if mhz, ok := c.load[name]; ok {
		return mhz
	}
	return int32(c.lab.opts.idleCPUMHz)
}

// apply writes a VM's load as vCenter would report it now: its load while on, 0 while off.
func (c *cpuLoads) apply(ref types.ManagedObjectReference) {
	t, ok := c.lab.traits(ref)
	if !ok {
		return
	}
	mhz := int32(0)
	if vmPower(ref) == types.VirtualMachinePowerStatePoweredOn {
		mhz = c.of(t.name)
	}
	if obj := simulator.Map.Get(ref); obj != nil {
		simulator.Map.WithLock(obj, func() {
			simulator.Map.Update(obj, []types.PropertyChange{{Name: "summary.quickStats.overallCpuUsage", Val: mhz}})
		})
	}
}

func (c *cpuLoads) applyAll() {
	for _, ref := range c.lab.vmRefsSorted() {
		c.apply(ref)
	}
}

func (c *cpuLoads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPost {
		name := r.URL.Query().Get("vm")
		mhz, err := strconv.Atoi(r.URL.Query().Get("mhz"))
		if name == "" || err != nil || mhz < 0 {
			http.Error(w, "POST /labsim/cpu?vm=NAME&mhz=N", http.StatusBadRequest)
			return
		}
		found := false
		for _, ref := range c.lab.vmRefsSorted() {
			if t, ok := c.lab.traits(ref); ok && t.name == name {
				c.mu.Lock()
				c.load[name] = int32(mhz)
				c.mu.Unlock()
				c.apply(ref)
				found = true
			}
		}
		if !found {
			http.Error(w, "no VM named "+name, http.StatusNotFound)
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = json.NewEncoder(w).Encode(c.load)
}

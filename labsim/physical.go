package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"time"

	"github.com/vmware/govmomi/vim25/types"
)

// Physical times, per VM and per server: the configured delays plus a seeded
// uniform extra in [0, jitter) (--guest-shutdown-jitter, --host-boot-jitter).
// GET /labsim/physical publishes them, so a benchmark can compute the physical
// limit of a power cycle without trusting labswitch's own report.

func jitter(rng *rand.Rand, base, spread time.Duration) time.Duration {
	if spread <= 0 {
		return base
	}
	return base + time.Duration(rng.Int63n(int64(spread)))
}

// assignPhysical draws every delay once, from its own seeded source (the
// choices of which VMs are tagged, toolless or hung stay as they were); the
// guests --slow-guests names take the time it gives them instead (one Windows
// VM installing updates).
func (l *Lab) assignPhysical() error {
	rng := rand.New(rand.NewSource(l.opts.seed + 7919))
	for _, s := range l.servers {
		s.bootDelay = jitter(rng, l.opts.hostBootDelay, l.opts.hostBootJitter)
	}
	for _, ref := range l.vmRefsSorted() {
		l.vms[ref].shutdownDelay = jitter(rng, l.opts.guestShutdownDelay, l.opts.guestShutdownJitter)
	}
	slow, err := pairs(l.opts.slowGuests)
	if err != nil {
		return fmt.Errorf("--slow-guests: %w", err)
	}
	for name, text := range slow {
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("--slow-guests %s: %w", name, err)
		}
		found := false
		for _, t := range l.vms {
			if t.name == name {
				t.shutdownDelay, found = d, true
			}
		}
		if !found {
			return fmt.Errorf("--slow-guests: no VM named %q", name)
		}
	}
	return nil
}

func (l *Lab) vmRefsSorted() []types.ManagedObjectReference {
	refs := make([]types.ManagedObjectReference, 0, len(l.vms))
	for _, s := range l.servers { // servers in order, their VMs in creation order: a stable draw
		for _, ref := range l.vmCreation {
			if l.vms[ref].server == s {
				refs = append(refs, ref)
			}
		}
	}
	return refs
}

func (l *Lab) guestDelay(ref types.ManagedObjectReference) time.Duration {
	if t, ok := l.traits(ref); ok && t.shutdownDelay > 0 {
		return t.shutdownDelay
	}
	return l.opts.guestShutdownDelay
}

type physicalHost struct {
	Power        string             `json:"power"`
	PowerChanged float64            `json:"power_changed"` // unix seconds of the last power change; 0: none yet
	Group        string             `json:"group"`
	Cluster      string             `json:"cluster"`
	BootSeconds  float64            `json:"boot_seconds"`
	GuestSeconds map[string]float64 `json:"guest_shutdown_seconds"` // VM name -> seconds
}

type physical struct {
	HostShutdownSeconds float64                 `json:"host_shutdown_seconds"`
	ToolsSeconds        float64                 `json:"tools_seconds"`
	Hosts               map[string]physicalHost `json:"hosts"`
}

func (l *Lab) servePhysical(w http.ResponseWriter) {
	out := physical{
		HostShutdownSeconds: l.opts.hostShutdownDelay.Seconds(),
		ToolsSeconds:        l.opts.toolsDelay.Seconds(),
		Hosts:               map[string]physicalHost{},
	}
	for _, s := range append(append([]*Server{}, l.servers...), l.storage...) {
		h := physicalHost{Group: s.Group, Cluster: s.Cluster, BootSeconds: s.bootDelay.Seconds(), GuestSeconds: map[string]float64{}}
		s.mu.Lock()
		h.Power = s.power
		if !s.changed.IsZero() {
			h.PowerChanged = float64(s.changed.UnixNano()) / 1e9
		}
		s.mu.Unlock()
		for _, ref := range l.vmCreation {
			if t, ok := l.traits(ref); ok && t.server == s {
				h.GuestSeconds[t.name] = l.guestDelay(ref).Seconds()
			}
		}
		out.Hosts[s.Name] = h
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

package main

// Embedded vCLS (vCenter 8.0 U3 and later with hosts of 8.0 U3 and later;
// Broadcom KB 370219, 370351): vCenter itself, not the ESX Agent Manager,
// keeps at most 2 agents per cluster, CRX VMs in host memory (managedBy
// VirtualCenter / vcls-entity, guest crxSys1Guest, extraConfig HDCS.agent and
// vCLSCRX.agent = true). They are never vMotioned or reconfigured; an agent
// whose host enters maintenance mode (or leaves vCenter) stops by itself and
// another host starts one; powered off any other way, vCenter starts it again.
// A mixed cluster whose 8.0 U3 hosts are all in maintenance or unavailable falls
// back to EAM's agents on its older hosts (TransitionedToExternalEvent), and
// back again once one is available (TransitionedToEmbeddedEvent). keepEmbedded
// is vCenter's reconciliation, every --vcls-repower-delay.

import (
	"context"
	"fmt"
	"time"

	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// embeddedCluster is whether vCenter runs embedded agents in the cluster: it is 8.0 U3 or later and so is one of its hosts.
func (v *vclsManager) embeddedCluster(cluster string) bool {
	if !v.lab.release.embedded {
		return false
	}
	for _, s := range v.hosts[cluster] {
		if embeddedHost(s.version) {
			return true
		}
	}
	return false
}

func (v *vclsManager) keepEmbedded() {
	for range time.Tick(v.lab.opts.vclsRepowerDelay) {
		for cluster := range v.hosts {
			if v.embeddedCluster(cluster) {
				v.reconcile(cluster)
			}
		}
	}
}

// available is whether a host can run an agent now: connected, not in maintenance mode.
func (v *vclsManager) available(s *Server) bool {
	conn, maintenance := v.lab.hostState(s)
	return conn == types.HostSystemConnectionStateConnected && !maintenance
}

func (v *vclsManager) reconcile(cluster string) {
	v.busy.Lock()
	defer v.busy.Unlock()
	v.mu.Lock()
	retreat, mode := v.retreat[cluster], v.mode[cluster]
	mine := map[moref]bool{}
	for ref, c := range v.agents {
		if c == cluster {
			mine[ref] = v.crx[ref]
		}
	}
	v.mu.Unlock()
	if retreat {
		return
	}
	var crxHosts, older []*Server
	for _, s := range v.hosts[cluster] {
		if v.available(s) {
			if embeddedHost(s.version) {
				crxHosts = append(crxHosts, s)
			} else {
				older = append(older, s)
			}
		}
	}
	want := mode
	switch {
	case len(crxHosts) > 0:
		want = "embedded"
	case len(older) > 0:
		want = "external"
	}
	if want != mode {
		v.transition(cluster, want, mine, older)
		if want != "embedded" {
			return
		}
		mine = map[moref]bool{} // the external agents are gone
	}
	if want == "external" { // EAM's agents on the older hosts (after retreat mode, none yet)
		for _, embedded := range mine {
			if !embedded {
				return
			}
		}
		if err := v.create(cluster, false, older); err != nil {
			fmt.Printf("labsim: vCLS agents of %s not created: %v\n", cluster, err)
		}
		return
	}
	if want != "embedded" {
		return
	}
	running := map[*Server]bool{}
	var stale []moref
	for ref, embedded := range mine {
		t, ok := v.lab.traits(ref)
		if !embedded || !ok {
			continue
		}
		if !v.available(t.server) || running[t.server] {
			stale = append(stale, ref)
			continue
		}
		running[t.server] = true
		if vmPower(ref) != types.VirtualMachinePowerStatePoweredOn { // powered off by hand: vCenter starts it again
			if task, err := object.NewVirtualMachine(v.lab.client, ref).PowerOn(context.Background()); err == nil {
				_ = task.Wait(context.Background())
			}
		}
	}
	v.remove(stale)
	var free []*Server
	for _, s := range crxHosts {
		if !running[s] {
			free = append(free, s)
		}
	}
	target := len(crxHosts)
	if target > 2 {
		target = 2
	}
	if n := target - len(running); n > 0 {
		if err := v.create(cluster, true, free[:n]); err != nil {
			fmt.Printf("labsim: embedded vCLS agent of %s not started: %v\n", cluster, err)
		}
	}
}

// transition moves a mixed cluster between embedded agents and EAM's on its older hosts.
func (v *vclsManager) transition(cluster, to string, mine map[moref]bool, older []*Server) {
	var gone []moref
	for ref, embedded := range mine {
		if embedded == (to == "external") {
			gone = append(gone, ref)
		}
	}
	v.remove(gone)
	v.mu.Lock()
	from := v.mode[cluster]
	v.mode[cluster] = to
	v.mu.Unlock()
	if to == "external" {
		if err := v.create(cluster, false, older); err != nil {
			fmt.Printf("labsim: vCLS agents of %s not created: %v\n", cluster, err)
		}
	}
	if from == "" {
		return
	}
	name := map[string]string{"external": "TransitionedToExternalEvent", "embedded": "TransitionedToEmbeddedEvent"}[to]
	ref := v.cluster[cluster]
	_ = event.NewManager(v.lab.client).PostEvent(context.Background(), &types.EventEx{
		EventTypeId: "com.vmware.vcenter.vcls." + name,
		Event:       types.Event{FullFormattedMessage: fmt.Sprintf("vCLS of cluster %s: %s", cluster, name), ComputeResource: &types.ComputeResourceEventArgument{ComputeResource: ref}},
		ObjectId:    ref.Value,
		ObjectType:  "ClusterComputeResource",
		Severity:    "info",
	})
	fmt.Printf("labsim: vCLS of %s: %s\n", cluster, name)
}

// stopEmbedded: the host enters maintenance mode, its embedded agents stop (and are gone from memory).
func (v *vclsManager) stopEmbedded(s *Server) {
	var gone []moref
	v.mu.Lock()
	for ref := range v.agents {
		if t, ok := v.lab.traits(ref); ok && v.crx[ref] && t.server == s {
			gone = append(gone, ref)
		}
	}
	v.mu.Unlock()
	v.remove(gone)
}

// refuseOnAgent is vCenter's answer to a vMotion or reconfigure of an embedded agent; nil for any other VM.
func (l *Lab) refuseOnAgent(m *simulator.Method) soap.HasFault {
	if l.vcls == nil {
		return nil
	}
	l.vcls.mu.Lock()
	embedded := l.vcls.crx[m.This]
	l.vcls.mu.Unlock()
	if !embedded {
		return nil
	}
	return fault(&types.NotSupported{})
}

// setVCLSOption writes the vCenter option of a cluster's retreat mode (true: agents wanted).
func (l *Lab) setVCLSOption(cluster moref, enabled bool) {
	opt := &types.OptionValue{Key: fmt.Sprintf(vclsOption, cluster.Value), Value: fmt.Sprint(enabled)}
	req := types.UpdateOptions{This: *l.model.ServiceContent.Setting, ChangedValue: []types.BaseOptionValue{opt}}
	_, _ = methods.UpdateOptions(context.Background(), l.client, &req)
}

package main

// vSphere Cluster Services (releases from 7.0 U1; --no-vcls turns it off): each cluster runs
// min(3, hosts) agent VMs, vCLS-<uuid>, managed by vCenter's ESX Agent Manager
// (config.managedBy: extension com.vmware.vim.eam, type cluster-agent; extraConfig
// HDCS.agent = true), unless its hosts run embedded agents (8.0 U3: vcls_embedded.go). EAM
// powers an agent VM back on --vcls-repower-delay after it stops, on another
// host of its cluster when its own is gone or in maintenance mode, and keeps
// trying while none can take it. The vCenter advanced option
// config.vcls.clusters.<cluster moid>.enabled = false (retreat mode) deletes
// the cluster's agents after --vcls-delay; true recreates them. Entering
// maintenance mode moves a host's running agents to another host of the
// cluster; with none left, they block it as any running VM does. Retreat mode is also
// systemVMsConfig.deploymentMode = ABSENT from 8.0 U2 (systemvms.go); --vcls-retreat starts
// every cluster in it (9.0's recommendation).

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	vclsOption = "config.vcls.clusters.%s.enabled"
	crxGuest   = "crxSys1Guest" // an embedded agent's guest
)

type vclsManager struct {
	lab     *Lab
	mu      sync.Mutex
	retreat map[string]bool  // cluster name -> in retreat mode
	agents  map[moref]string // agent VM -> its cluster's name
	cluster map[string]moref // cluster name -> its moref
	made    map[string]int   // cluster name -> agents created so far (names stay unique)
	hosts   map[string][]*Server
	crx     map[moref]bool    // the embedded agents among agents
	busy    sync.Mutex        // held by reconcile and by a host entering maintenance: no agent starts on it meanwhile
	mode    map[string]string // cluster name -> "embedded" or "external" (a cluster of embedded hosts only)
}

func newVCLS(l *Lab) *vclsManager {
	v := &vclsManager{lab: l, retreat: map[string]bool{}, agents: map[moref]string{}, cluster: map[string]moref{},
		made: map[string]int{}, hosts: map[string][]*Server{}, crx: map[moref]bool{}, mode: map[string]string{}}
	for _, s := range l.servers {
		if s.Cluster != "" {
			v.hosts[s.Cluster] = append(v.hosts[s.Cluster], s)
		}
	}
	for name := range v.hosts {
		v.cluster[name] = simulator.Map.Get(v.hosts[name][0].Host).(*simulator.HostSystem).Parent.Reference()
	}
	simulator.Map.AddHandler(v)
	return v
}

// start creates and powers on every cluster's agents, or (--vcls-retreat) puts
// every cluster in retreat mode; embedded clusters are kept by vcls_embedded.go.
func (v *vclsManager) start() error {
	for name := range v.hosts {
		switch {
		case v.lab.opts.vclsRetreat:
			v.retreat[name] = true
			v.lab.setVCLSOption(v.cluster[name], false)
			showDeploymentMode(v.cluster[name], true)
		case v.embeddedCluster(name):
			v.reconcile(name)
		default:
			if err := v.create(name, false, v.hosts[name]); err != nil {
				return err
			}
		}
	}
	go v.keepEmbedded()
	return nil
}

// create makes and powers on agents on the first of hosts: min(3, hosts) of EAM's, or min(2, hosts) embedded.
func (v *vclsManager) create(cluster string, embedded bool, hosts []*Server) error {
	n := len(hosts)
	if limit := map[bool]int{false: 3, true: 2}[embedded]; n > limit {
		n = limit
	}
	ctx := context.Background()
	for i := 0; i < n; i++ {
		s := hosts[i]
		v.mu.Lock()
		v.made[cluster]++
		seq := v.made[cluster]
		v.mu.Unlock()
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%d", cluster, seq, v.lab.opts.seed)))
		name := fmt.Sprintf("vCLS-%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
		h := object.NewHostSystem(v.lab.client, s.Host)
		pool, err := h.ResourcePool(ctx)
		if err != nil {
			return err
		}
		ref, err := v.lab.createVM(ctx, v.lab.folders, pool, h, name)
		if err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		task, err := object.NewVirtualMachine(v.lab.client, ref).Reconfigure(ctx, agentSpec(embedded))
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("marking %s: %w", name, err)
		}
		if embedded { // govmomi 0.24 refuses the guest id in a spec: set as vCenter reports it
			obj := simulator.Map.Get(ref)
			simulator.Map.WithLock(obj, func() {
				simulator.Map.Update(obj, []types.PropertyChange{{Name: "config.guestId", Val: crxGuest}, {Name: "summary.config.guestId", Val: crxGuest}})
			})
		}
		v.mu.Lock()
		v.agents[ref] = cluster
		v.crx[ref] = embedded
		v.mu.Unlock()
		v.lab.setTraits(ref, &vmTraits{name: name, server: s})
		v.lab.setGuest(ref, name, true)
	}
	return nil
}

// agentSpec is how vSphere marks an agent VM: EAM's, or vCenter's own CRX VM (8.0 U3).
func agentSpec(embedded bool) types.VirtualMachineConfigSpec {
	marks := []types.BaseOptionValue{&types.OptionValue{Key: "HDCS.agent", Value: "true"}}
	if !embedded {
		return types.VirtualMachineConfigSpec{ManagedBy: &types.ManagedByInfo{ExtensionKey: "com.vmware.vim.eam", Type: "cluster-agent"}, ExtraConfig: marks}
	}
	return types.VirtualMachineConfigSpec{
		ManagedBy:   &types.ManagedByInfo{ExtensionKey: "VirtualCenter", Type: "vcls-entity"},
		ExtraConfig: append(marks, &types.OptionValue{Key: "vCLSCRX.agent", Value: "true"}),
	}
}

// updateOptions watches the vCenter advanced options for retreat mode; the
// simulator stores the option itself (nil: it answers).
func (v *vclsManager) updateOptions(m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.UpdateOptions)
	for _, change := range req.ChangedValue {
		opt := change.GetOptionValue()
		for cluster, ref := range v.cluster {
			if opt.Key != fmt.Sprintf(vclsOption, ref.Value) {
				continue
			}
			enabled := !strings.EqualFold(fmt.Sprint(opt.Value), "false")
			cluster := cluster
			time.AfterFunc(v.lab.opts.vclsDelay, func() { v.setRetreat(cluster, !enabled) })
		}
	}
	return nil
}

func (v *vclsManager) setRetreat(cluster string, on bool) {
	v.mu.Lock()
	was := v.retreat[cluster]
	v.retreat[cluster] = on
	var gone []moref
	for ref, c := range v.agents {
		if c == cluster && on {
			gone = append(gone, ref)
		}
	}
	v.mu.Unlock()
	showDeploymentMode(v.cluster[cluster], on)
	v.remove(gone)                                 // vCenter deletes the agents
	if was && !on && !v.embeddedCluster(cluster) { // embedded clusters: keepEmbedded starts them again
		if err := v.create(cluster, false, v.hosts[cluster]); err != nil {
			fmt.Printf("labsim: vCLS agents of %s not recreated: %v\n", cluster, err)
		}
	}
}

// remove powers agents off and deletes them.
func (v *vclsManager) remove(refs []moref) {
	ctx := context.Background()
	for _, ref := range refs {
		v.mu.Lock()
		delete(v.agents, ref)
		delete(v.crx, ref)
		v.mu.Unlock()
		vm := object.NewVirtualMachine(v.lab.client, ref)
		if vmPower(ref) == types.VirtualMachinePowerStatePoweredOn {
			if task, err := vm.PowerOff(ctx); err == nil {
				_ = task.Wait(ctx)
			}
		}
		if task, err := vm.Destroy(ctx); err == nil {
			_ = task.Wait(ctx)
		}
		v.lab.setTraits(ref, nil)
	}
}

// evacuate moves a host's running agents to another host of the cluster
// before maintenance mode (DRS's part); those with nowhere to go stay. An
// embedded agent stops by itself (keepEmbedded starts one on another host).
func (v *vclsManager) evacuate(s *Server) {
	v.stopEmbedded(s)
	for _, ref := range v.lab.vmsOn(s) {
		if _, ok := v.agentCluster(ref); ok && vmPower(ref) == types.VirtualMachinePowerStatePoweredOn {
			if to := v.eligible(s.Cluster, s); to != nil {
				v.relocate(ref, to)
			}
		}
	}
}

// clusterOf is the cluster of any vCLS agent VM.
func (v *vclsManager) clusterOf(ref moref) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.agents[ref]
	return c, ok
}

// agentCluster is the cluster of one of EAM's agents (not in retreat mode).
func (v *vclsManager) agentCluster(ref moref) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.agents[ref]
	return c, ok && !v.retreat[c] && !v.crx[ref]
}

// eligible is a connected host of the cluster, not in maintenance mode, other than not.
func (v *vclsManager) eligible(cluster string, not *Server) *Server {
	for _, s := range v.hosts[cluster] {
		if conn, maintenance := v.lab.hostState(s); s != not && conn == types.HostSystemConnectionStateConnected && !maintenance {
			return s
		}
	}
	return nil
}

// relocate moves an agent to another host (the simulator's RelocateVM_Task
// changes runtime.host but leaves the hosts' VM lists as they were).
func (v *vclsManager) relocate(ref moref, to *Server) {
	t, ok := v.lab.traits(ref)
	if !ok {
		return
	}
	ctx := context.Background()
	hostRef := to.Host
	task, err := object.NewVirtualMachine(v.lab.client, ref).Relocate(ctx, types.VirtualMachineRelocateSpec{Host: &hostRef}, types.VirtualMachineMovePriorityDefaultPriority)
	if err != nil || task.Wait(ctx) != nil {
		return
	}
	from := simulator.Map.Get(t.server.Host).(*simulator.HostSystem)
	into := simulator.Map.Get(to.Host).(*simulator.HostSystem)
	simulator.Map.RemoveReference(from, &from.Vm, ref) // each takes the host's lock
	simulator.Map.AddReference(into, &into.Vm, ref)
	v.lab.setTraits(ref, &vmTraits{name: t.name, server: to})
}

// repower is EAM: an agent that stopped is started again, on a host that can take it.
func (v *vclsManager) repower(ref moref) {
	cluster, ok := v.agentCluster(ref)
	if !ok || vmPower(ref) != types.VirtualMachinePowerStatePoweredOff {
		return
	}
	t, ok := v.lab.traits(ref)
	if !ok {
		return
	}
	if conn, maintenance := v.lab.hostState(t.server); conn != types.HostSystemConnectionStateConnected || maintenance {
		to := v.eligible(cluster, t.server)
		if to == nil { // nowhere to run it now: EAM tries again
			time.AfterFunc(v.lab.opts.vclsRepowerDelay, func() { v.repower(ref) })
			return
		}
		v.relocate(ref, to)
	}
	if _, err := object.NewVirtualMachine(v.lab.client, ref).PowerOn(context.Background()); err != nil {
		time.AfterFunc(v.lab.opts.vclsRepowerDelay, func() { v.repower(ref) })
	}
}

func (v *vclsManager) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "LabsimVCLS", Value: "labsim-vcls"}
}

func (v *vclsManager) PutObject(mo.Reference)                    {}
func (v *vclsManager) RemoveObject(types.ManagedObjectReference) {}

// UpdateObject runs with the VM locked: act from another goroutine.
func (v *vclsManager) UpdateObject(obj mo.Reference, changes []types.PropertyChange) {
	ref := obj.Reference()
	if _, ok := v.agentCluster(ref); !ok {
		return
	}
	for _, c := range changes {
		if c.Name == "runtime.powerState" && c.Val == types.VirtualMachinePowerStatePoweredOff {
			time.AfterFunc(v.lab.opts.vclsRepowerDelay, func() { v.repower(ref) })
		}
	}
}

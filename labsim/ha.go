package main

// vSphere HA (--ha): every cluster starts with configurationEx.dasConfig.enabled
// = true. ReconfigureComputeResource_Task changes dasConfig.enabled (and
// vsanConfig.enabled) as vCenter does; the simulator's own reconfigure ignores
// both and goes on to apply the rest of the spec (rules, groups, overrides).

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// clusterConfig changes one cluster's configurationEx, announced on the change feed.
func clusterConfig(ref types.ManagedObjectReference, change func(*types.ClusterConfigInfoEx)) {
	obj, ok := simulator.Map.Get(ref).(*simulator.ClusterComputeResource)
	if !ok {
		return
	}
	simulator.Map.WithLock(obj, func() {
		switch cfg := obj.ConfigurationEx.(type) {
		case *types.ClusterConfigInfoEx:
			change(cfg)
		case *ClusterConfigInfoEx: // 8.0 U2 and later (systemvms.go)
			change(&cfg.ClusterConfigInfoEx)
		}
		simulator.Map.Update(obj, []types.PropertyChange{{Name: "configurationEx", Val: obj.ConfigurationEx}})
	})
}

func (l *Lab) enableHA() {
	for _, ref := range l.clusterRefs() {
		clusterConfig(ref, func(cfg *types.ClusterConfigInfoEx) {
			enabled := true
			cfg.DasConfig.Enabled = &enabled
		})
	}
}

// reconfigureCluster applies what the simulator ignores, then lets it answer.
func (l *Lab) reconfigureCluster(m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.ReconfigureComputeResource_Task)
	spec, ok := req.Spec.(*types.ClusterConfigSpecEx)
	if !ok {
		return nil
	}
	clusterConfig(m.This, func(cfg *types.ClusterConfigInfoEx) {
		if spec.DasConfig != nil && spec.DasConfig.Enabled != nil {
			enabled := *spec.DasConfig.Enabled
			cfg.DasConfig.Enabled = &enabled
		}
		if spec.VsanConfig != nil && spec.VsanConfig.Enabled != nil {
			if cfg.VsanConfigInfo == nil {
				cfg.VsanConfigInfo = &types.VsanClusterConfigInfo{}
			}
			enabled := *spec.VsanConfig.Enabled
			cfg.VsanConfigInfo.Enabled = &enabled
		}
	})
	return extendedReconfigure(m.This)
}

// clusterRefs are the lab's clusters, in creation order.
func (l *Lab) clusterRefs() []types.ManagedObjectReference {
	var refs []types.ManagedObjectReference
	seen := map[types.ManagedObjectReference]bool{}
	for _, s := range l.servers {
		if s.Cluster == "" {
			continue
		}
		ref := simulator.Map.Get(s.Host).(*simulator.HostSystem).Parent.Reference()
		if !seen[ref] {
			seen[ref] = true
			refs = append(refs, ref)
		}
	}
	return refs
}

package main

// Each host's AutoStartManager (the simulator has only a reference to one):
// the start order and delays an admin sets in the host client, read as
// config.powerInfo and changed with ReconfigureAutostart, as on ESXi. Through
// the host's own API it is ha-autostart-mgr. Like a lab whose hosts' autostart
// is turned off (defaults.enabled = false), nothing starts by itself at boot.

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type autoStartManager struct {
	mo.HostAutoStartManager
}

// newAutoStart gives the server's host its own AutoStartManager, autostart off.
func newAutoStart(s *Server) types.ManagedObjectReference {
	off := false
	m := &autoStartManager{}
	m.Self = types.ManagedObjectReference{Type: "HostAutoStartManager", Value: "autostart-" + s.Name}
	m.Config.Defaults = &types.AutoStartDefaults{Enabled: &off, StartDelay: 120, StopDelay: 120, StopAction: "PowerOff"}
	simulator.Map.Put(m)
	host := simulator.Map.Get(s.Host).(*simulator.HostSystem)
	simulator.Map.WithLock(host, func() { host.ConfigManager.AutoStartManager = &m.Self })
	return m.Self
}

// ReconfigureAutostart merges the given defaults and per-VM entries (by VM) into the config, as ESXi does.
func (m *autoStartManager) ReconfigureAutostart(req *types.ReconfigureAutostart) soap.HasFault {
	if d := req.Spec.Defaults; d != nil {
		m.Config.Defaults = d
	}
	for _, info := range req.Spec.PowerInfo {
		replaced := false
		for i := range m.Config.PowerInfo {
			if m.Config.PowerInfo[i].Key == info.Key {
				m.Config.PowerInfo[i], replaced = info, true
			}
		}
		if !replaced {
			m.Config.PowerInfo = append(m.Config.PowerInfo, info)
		}
	}
	return &methods.ReconfigureAutostartBody{Res: &types.ReconfigureAutostartResponse{}}
}

package main

// Privileges (--deny-privileges ID,...): the vCenter user lacks these, as a
// role without them would. HasPrivilegeOnEntities says so (the simulator
// grants everything), and the calls that need them fault with NoPermission.

import (
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// needs is what labsim checks per call: the privilege vCenter requires for it.
var needs = map[string]string{
	"ReconfigureComputeResource_Task": "Host.Inventory.EditCluster",
	"UpdateOptions":                   "Global.Settings",
}

func (l *Lab) denied(priv string) bool {
	for _, p := range strings.Split(l.opts.denyPrivileges, ",") {
		if p != "" && p == priv {
			return true
		}
	}
	return false
}

func (l *Lab) hasPrivilegeOnEntities(m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.HasPrivilegeOnEntities)
	var out []types.EntityPrivilege
	for _, e := range req.Entity {
		p := types.EntityPrivilege{Entity: e}
		for _, id := range req.PrivId {
			p.PrivAvailability = append(p.PrivAvailability, types.PrivilegeAvailability{PrivId: id, IsGranted: !l.denied(id)})
		}
		out = append(out, p)
	}
	return &methods.HasPrivilegeOnEntitiesBody{Res: &types.HasPrivilegeOnEntitiesResponse{Returnval: out}}
}

// withPrivilege wraps an override (or the simulator, when next is nil) with the privilege check.
func (l *Lab) withPrivilege(name string, next override) override {
	return func(m *simulator.Method) soap.HasFault {
		if priv, ok := needs[name]; ok && l.denied(priv) {
			return fault(&types.NoPermission{Object: m.This, PrivilegeId: priv})
		}
		if next == nil {
			return nil
		}
		return next(m)
	}
}

package main

// Maintenance mode as vCenter does it: refused while VMs run (labsim's
// clusters have no DRS to move them, and a real task would wait for them) or
// while the host is not connected; the change of runtime.inMaintenanceMode is
// announced on the change feed (the simulator sets the field silently).

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func (l *Lab) enterMaintenanceModeTask(m *simulator.Method) soap.HasFault {
	s, ok := l.byHost[m.This]
	if !ok {
		return nil
	}
	if l.vcls != nil {
		l.vcls.busy.Lock()
		defer l.vcls.busy.Unlock()
		l.vcls.evacuate(s)
	}
	for _, vm := range l.vmsOn(s) {
		if vmPower(vm) == types.VirtualMachinePowerStatePoweredOn {
			return fault(&types.InvalidState{})
		}
	}
	if conn, _ := l.hostState(s); conn != types.HostSystemConnectionStateConnected {
		return fault(&types.HostNotConnected{})
	}
	req := m.Body.(*types.EnterMaintenanceMode_Task)
	task := l.maintenanceTask(m.This, "enterMaintenanceMode", true, l.vsan.maintenanceRefusal(s, req.MaintenanceSpec))
	return &methods.EnterMaintenanceMode_TaskBody{Res: &types.EnterMaintenanceMode_TaskResponse{Returnval: task}}
}

func (l *Lab) exitMaintenanceModeTask(m *simulator.Method) soap.HasFault {
	s, ok := l.byHost[m.This]
	if !ok {
		return nil
	}
	if conn, _ := l.hostState(s); conn != types.HostSystemConnectionStateConnected {
		return fault(&types.HostNotConnected{})
	}
	task := l.maintenanceTask(m.This, "exitMaintenanceMode", false, nil)
	return &methods.ExitMaintenanceMode_TaskBody{Res: &types.ExitMaintenanceMode_TaskResponse{Returnval: task}}
}

// maintenanceTask changes the host's maintenance mode, or fails with refusal (a vSAN rule: vsan.go).
func (l *Lab) maintenanceTask(ref types.ManagedObjectReference, name string, on bool, refusal types.BaseMethodFault) types.ManagedObjectReference {
	host := simulator.Map.Get(ref)
	return runTask(host, name, func() types.BaseMethodFault {
		if refusal != nil {
			return refusal
		}
		simulator.Map.WithLock(host, func() {
			simulator.Map.Update(host, []types.PropertyChange{{Name: "runtime.inMaintenanceMode", Val: on}})
		})
		return nil
	})
}

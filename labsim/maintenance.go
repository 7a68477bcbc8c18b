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
	task := l.maintenanceTask(m.This, "enterMaintenanceMode", true)
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
	task := l.maintenanceTask(m.This, "exitMaintenanceMode", false)
	return &methods.ExitMaintenanceMode_TaskBody{Res: &types.ExitMaintenanceMode_TaskResponse{Returnval: task}}
}

func (l *Lab) maintenanceTask(ref types.ManagedObjectReference, name string, on bool) types.ManagedObjectReference {
	host := simulator.Map.Get(ref)
	task := simulator.CreateTask(host, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		simulator.Map.WithLock(host, func() {
			simulator.Map.Update(host, []types.PropertyChange{{Name: "runtime.inMaintenanceMode", Val: on}})
		})
		return nil, nil
	})
	return task.Run()
}

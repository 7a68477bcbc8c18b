package main

// PowerOnMultiVM_Task as vCenter answers it: one task on the datacenter whose
// result (ClusterPowerOnVmResult) names, per VM, either the PowerOnVM_Task
// vCenter started for it (attempted) or why it did not (notAttempted: the
// host is not connected or in maintenance mode, as for PowerOnVM_Task). The
// simulator powers the VMs on but returns no result and skips those checks.

import (
	"context"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func (l *Lab) powerOnMultiVMTask(m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.PowerOnMultiVM_Task)
	dc := simulator.Map.Get(m.This)
	if dc == nil {
		return fault(&types.ManagedObjectNotFound{Obj: m.This})
	}
	task := simulator.CreateTask(dc, "powerOnMultiVM", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		var result types.ClusterPowerOnVmResult
		for _, vm := range req.Vm {
			if f := l.powerOnRefusal(vm); f != nil {
				result.NotAttempted = append(result.NotAttempted, types.ClusterNotAttemptedVmInfo{Vm: vm, Fault: types.LocalizedMethodFault{Fault: f}})
				continue
			}
			started, err := object.NewVirtualMachine(l.client, vm).PowerOn(context.Background())
			if err != nil {
				f := &types.InvalidArgument{InvalidProperty: "vm"} // not a VM this vCenter knows
				result.NotAttempted = append(result.NotAttempted, types.ClusterNotAttemptedVmInfo{Vm: vm, Fault: types.LocalizedMethodFault{Fault: f}})
				continue
			}
			ref := started.Reference()
			result.Attempted = append(result.Attempted, types.ClusterAttemptedVmInfo{Vm: vm, Task: &ref})
		}
		return result, nil
	})
	return &methods.PowerOnMultiVM_TaskBody{Res: &types.PowerOnMultiVM_TaskResponse{Returnval: task.Run()}}
}

package main

// vCenter inside the lab (--vcenter-vm-on payload): vCenter's port (SOAP and
// REST) refuses connections while the VM "vcsa" is off, and answers
// --vcenter-boot-delay after it is powered on, as an appliance does once its
// services have started. The hosts reconnect as their own boot delays allow.

import (
	"log"
	"sync"
	"time"

	"github.com/vmware/govmomi/vim25/types"
)

type vcenterPower struct {
	mu    sync.Mutex
	epoch int // bumped on every power change of the VM, cancels a stale boot
}

var vcsaPower vcenterPower

// vcsaPowerChanged follows the vcsa VM's power (called off the simulator's lock).
func (l *Lab) vcsaPowerChanged(state interface{}) {
	if l.vcGate == nil {
		return
	}
	vcsaPower.mu.Lock()
	vcsaPower.epoch++
	epoch := vcsaPower.epoch
	vcsaPower.mu.Unlock()
	if state != types.VirtualMachinePowerStatePoweredOn {
		l.vcGate.shut()
		return
	}
	time.AfterFunc(l.opts.vcenterBootDelay, func() {
		vcsaPower.mu.Lock()
		current := vcsaPower.epoch == epoch
		vcsaPower.mu.Unlock()
		if current && vmPower(l.vcsaVM) == types.VirtualMachinePowerStatePoweredOn {
			if err := l.vcGate.open(); err != nil {
				log.Printf("vCenter could not listen again: %v", err)
			}
		}
	})
}

package main

import (
	"log"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// The server's power is the truth; vCenter's view of the host follows it.

// powerOn answers false when the server is already on (an iDRAC's 409).
func (l *Lab) powerOn(s *Server) bool {
	epoch, changed := s.switchPower("On")
	if !changed {
		return false
	}
	time.AfterFunc(s.bootDelay*4/5, func() { // the host's own API answers a little before vCenter reconnects it
		if s.stillAt(epoch) && s.agent != nil {
			if err := s.agent.gate.open(); err != nil {
				log.Printf("%s: the host's port could not listen again: %v", s.Name, err)
			}
		}
	})
	time.AfterFunc(s.bootDelay, func() {
		if s.stillAt(epoch) && !l.stuck(s) {
			l.hostConnected(s)
		}
	})
	return true
}

// powerOff cuts the power at once; answers false when already off.
func (l *Lab) powerOff(s *Server) bool {
	if _, changed := s.switchPower("Off"); !changed {
		return false
	}
	l.hostGone(s)
	return true
}

// shutdown is ESXi shutting down (vSphere call, ACPI power button): the
// server goes off after --host-shutdown-delay unless its power changed meanwhile.
func (l *Lab) shutdown(s *Server, thenBoot bool) bool {
	return shutdownAfter(l, s, l.opts.hostShutdownDelay, thenBoot)
}

// shutdownAfter: the server's OS shuts down, off after delay (then on again for a reboot) unless its power changed
// meanwhile; false when it is off already. Both labs' servers shut down so.
func shutdownAfter(m machines, s *Server, delay time.Duration, thenBoot bool) bool {
	s.mu.Lock()
	if s.power == "Off" {
		s.mu.Unlock()
		return false
	}
	epoch := s.epoch
	s.mu.Unlock()
	time.AfterFunc(delay, func() {
		if s.stillAt(epoch) && m.powerOff(s) && thenBoot {
			m.powerOn(s)
		}
	})
	return true
}

// faultSwitched: a vCenter restart begins (its sessions end with it).
func (l *Lab) faultSwitched(key string) {
	if key == "vcenter:vpxd" {
		l.restarts.begin()
	}
}

// faultCleared: a host that was held back (stuck) while its server is on reconnects once its fault is off.
func (l *Lab) faultCleared(key string) {
	for _, s := range l.servers {
		if key != "host:"+s.Name {
			continue
		}
		s.mu.Lock()
		on := s.power == "On"
		s.mu.Unlock()
		if on && !l.stuck(s) {
			l.hostConnected(s)
		}
	}
}

// stuck servers (--stuck-hosts, or a host fault switched on: faults.go) boot but never reconnect to vCenter.
func (l *Lab) stuck(s *Server) bool {
	if l.faults.get("host:"+s.Name) == "stuck" {
		return true
	}
	for _, name := range strings.Split(l.opts.stuckHosts, ",") {
		if strings.TrimSpace(name) == s.Name {
			return true
		}
	}
	return false
}

// switchPower sets the server's power; false when it was so already. The epoch it answers is the one a timer set
// now checks (stillAt): every change bumps it.
func (s *Server) switchPower(to string) (epoch int, changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.power == to {
		return s.epoch, false
	}
	s.power, s.changed = to, time.Now()
	s.epoch++
	return s.epoch, true
}

// stillAt: the server's power has not changed since epoch (a timer set then still applies).
func (s *Server) stillAt(epoch int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch == epoch
}

func (s *Server) powerState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.power
}

// hostGone: every VM stops with the server; vCenter loses the host.
func (l *Lab) hostGone(s *Server) {
	if s.agent != nil {
		s.agent.gate.shut()
	}
	for _, vm := range l.vmsOn(s) {
		l.setVMPower(vm, types.VirtualMachinePowerStatePoweredOff)
	}
	l.updateHost(s, types.HostSystemConnectionStateNotResponding, types.HostSystemPowerStateUnknown)
}

// hostConnected: ESXi booted and vCenter reconnected it. Maintenance mode is
// kept across the reboot, as ESXi does; the VMs stay off.
func (l *Lab) hostConnected(s *Server) {
	l.updateHost(s, types.HostSystemConnectionStateConnected, types.HostSystemPowerStatePoweredOn)
}

func (l *Lab) updateHost(s *Server, conn types.HostSystemConnectionState, power types.HostSystemPowerState) {
	obj := simulator.Map.Get(s.Host)
	simulator.Map.WithLock(obj, func() {
		changes := []types.PropertyChange{
			{Name: "runtime.connectionState", Val: conn},
			{Name: "runtime.powerState", Val: power},
		}
		if power == types.HostSystemPowerStatePoweredOn {
			changes = append(changes, types.PropertyChange{Name: "runtime.bootTime", Val: time.Now()})
		}
		simulator.Map.Update(obj, changes)
	})
}

func (l *Lab) hostState(s *Server) (conn types.HostSystemConnectionState, maintenance bool) {
	obj := simulator.Map.Get(s.Host).(*simulator.HostSystem)
	simulator.Map.WithLock(obj, func() {
		conn, maintenance = obj.Runtime.ConnectionState, obj.Runtime.InMaintenanceMode
	})
	return conn, maintenance
}

func (l *Lab) vmsOn(s *Server) []types.ManagedObjectReference {
	obj := simulator.Map.Get(s.Host).(*simulator.HostSystem)
	var refs []types.ManagedObjectReference
	simulator.Map.WithLock(obj, func() { refs = append(refs, obj.Vm...) })
	return refs
}

// setVMPower changes a VM's power in one update; a VM that stops has its tools
// stop in the same update, as vCenter reports a guest shutdown (one change
// feed answer per VM, not two).
func (l *Lab) setVMPower(ref types.ManagedObjectReference, state types.VirtualMachinePowerState) {
	obj := simulator.Map.Get(ref)
	if obj == nil { // deleted meanwhile (a vCLS agent)
		return
	}
	changes := []types.PropertyChange{
		{Name: "runtime.powerState", Val: state},
		{Name: "summary.runtime.powerState", Val: state},
	}
	if state != types.VirtualMachinePowerStatePoweredOn {
		changes = append(changes, toolsChanges(false)...)
	}
	simulator.Map.WithLock(obj, func() { simulator.Map.Update(obj, changes) })
}

// vmPower is a VM's power state; a VM deleted meanwhile (a vCLS agent) is off.
func vmPower(ref types.ManagedObjectReference) (state types.VirtualMachinePowerState) {
	obj, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return types.VirtualMachinePowerStatePoweredOff
	}
	simulator.Map.WithLock(obj, func() { state = obj.Runtime.PowerState })
	return state
}

// powerWatcher follows every VM power change, however made, to drive the
// guest's tools: up --tools-delay after power-on, down at once at power-off.
type powerWatcher struct{ lab *Lab }

func (w *powerWatcher) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "LabsimPowerWatcher", Value: "labsim-power-watcher"}
}
func (w *powerWatcher) PutObject(mo.Reference)                    {}
func (w *powerWatcher) RemoveObject(types.ManagedObjectReference) {}

// UpdateObject runs with the VM locked: act from another goroutine.
func (w *powerWatcher) UpdateObject(obj mo.Reference, changes []types.PropertyChange) {
	ref := obj.Reference()
	if ref == w.lab.vcsaVM {
		for _, c := range changes {
			if c.Name == "runtime.powerState" {
				go w.lab.vcsaPowerChanged(c.Val)
			}
		}
	}
	traits, ok := w.lab.traits(ref)
	if !ok {
		return
	}
	for _, c := range changes {
		if c.Name != "runtime.powerState" {
			continue
		}
		go w.lab.cpu.apply(ref)
		switch c.Val {
		case types.VirtualMachinePowerStatePoweredOn:
			at := time.Now()
			go w.lab.setBootTime(ref, at)
			if !traits.toolless {
				time.AfterFunc(w.lab.opts.toolsDelay, func() {
					if vmPower(ref) == types.VirtualMachinePowerStatePoweredOn {
						w.lab.setTools(ref, true)
					}
				})
			}
		default:
			if !toolsStopped(changes) { // a power-off through the simulator itself: tools stop after it
				go w.lab.setTools(ref, false)
			}
		}
	}
}

// setBootTime records when a VM was powered on (runtime.bootTime, as vSphere reports it).
func (l *Lab) setBootTime(ref types.ManagedObjectReference, at time.Time) {
	if obj := simulator.Map.Get(ref); obj != nil {
		simulator.Map.WithLock(obj, func() { simulator.Map.Update(obj, []types.PropertyChange{{Name: "runtime.bootTime", Val: at}}) })
	}
}

func toolsStopped(changes []types.PropertyChange) bool {
	for _, c := range changes {
		if c.Name == "guest.toolsRunningStatus" {
			return true
		}
	}
	return false
}

func (l *Lab) setTools(ref types.ManagedObjectReference, running bool) {
	if obj := simulator.Map.Get(ref); obj != nil { // nil: deleted meanwhile (a vCLS agent)
		simulator.Map.WithLock(obj, func() { simulator.Map.Update(obj, toolsChanges(running)) })
	}
}

package main

import (
	"context"
	"fmt"
	"math/rand"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// What the audits read, set up the way a fresh ESXi 7.0 host has it. Tests put
// hosts and VMs into other situations through the vSphere API, as an admin would.

// hostOptions gives every host its own advanced settings (the simulator shares
// one slice between hosts), with the L1TF options at ESXi's defaults:
// unmitigated, warning shown.
func (l *Lab) hostOptions() {
	for _, s := range l.servers {
		host := simulator.Map.Get(s.Host).(*simulator.HostSystem)
		om := simulator.Map.Get(*host.ConfigManager.AdvancedOption).(*simulator.OptionManager)
		om.Setting = []types.BaseOptionValue{
			&types.OptionValue{Key: "Config.HostAgent.log.level", Value: "info"},
			&types.OptionValue{Key: "VMkernel.Boot.hyperthreadingMitigation", Value: false},
			&types.OptionValue{Key: "VMkernel.Boot.hyperthreadingMitigationIntraVM", Value: true},
			&types.OptionValue{Key: "UserVars.SuppressHyperthreadWarning", Value: int64(0)},
		}
	}
}

// sgx sets each host's SGX state (--sgx-hosts NAME=STATE,...; others notPresent)
// and each VM's virtual SGX (--vsgx-vms NAME=EPC_MB,...), as vSphere 7.0 reports them.
func (l *Lab) sgx() error {
	states, err := pairs(l.opts.sgxHosts)
	if err != nil {
		return fmt.Errorf("--sgx-hosts: %w", err)
	}
	for _, s := range l.servers {
		state, ok := states[s.Name]
		if !ok {
			state = "notPresent"
		}
		delete(states, s.Name)
		host := simulator.Map.Get(s.Host).(*simulator.HostSystem)
		info := &types.HostSgxInfo{SgxState: state, FlcMode: "off"}
		if state == "enabled" {
			info.TotalEpcMemory = 128 << 20
			info.FlcMode = "unlocked"
		}
		hw := *host.Hardware
		hw.SgxInfo = info
		host.Hardware = &hw
	}
	for name := range states {
		return fmt.Errorf("--sgx-hosts: no server %q", name)
	}
	epc, err := pairs(l.opts.vsgxVMs)
	if err != nil {
		return fmt.Errorf("--vsgx-vms: %w", err)
	}
	for ref := range l.vms {
		vm := simulator.Map.Get(ref).(*simulator.VirtualMachine)
		if mb, ok := epc[vm.Name]; ok {
			size, err := strconv.ParseInt(mb, 10, 64)
			if err != nil {
				return fmt.Errorf("--vsgx-vms %s=%s: EPC size in MB expected", vm.Name, mb)
			}
			vm.Config.SgxInfo = &types.VirtualMachineSgxInfo{EpcSize: size, FlcMode: "unlocked"}
			delete(epc, vm.Name)
		}
	}
	for name := range epc {
		return fmt.Errorf("--vsgx-vms: no VM %q", name)
	}
	return nil
}

// cbt turns changed block tracking on in a fraction of the payload VMs, through
// ReconfigVM as a backup product would (--cbt-fraction; for demo and bench).
func (l *Lab) cbt(ctx context.Context, rng *rand.Rand) error {
	if l.opts.cbtFraction <= 0 {
		return nil
	}
	for _, ref := range l.vmOrder {
		if rng.Float64() >= l.opts.cbtFraction {
			continue
		}
		task, err := object.NewVirtualMachine(l.client, ref).Reconfigure(ctx, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: types.NewBool(true)})
		if err != nil {
			return err
		}
		if err := task.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

func pairs(spec string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%q: NAME=VALUE expected", item)
		}
		out[k] = v
	}
	return out, nil
}

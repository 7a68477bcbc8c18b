package main

// vSAN (--vsan-clusters N: the first N clusters). Two rules a power cycle
// meets:
//   - maintenance mode on a vSAN host, unless its vsanMode.objectAction is
//     noAction, must keep the data accessible ("ensure accessibility",
//     simplified): it fails with a VsanFault when fewer than 3 hosts of the
//     cluster would remain connected and out of maintenance mode;
//   - the vSAN cluster power system (releases from 7.0 U3), served where
//     pyVmomi's vSAN bindings look for it: POST /vsanHealth, managed object
//     vsan-cluster-power-system. PerformClusterPowerAction to clusterPoweredOff
//     refuses while a VM of the cluster runs, then puts every connected host in
//     maintenance mode and records the cluster powered off; to
//     clusterPoweredOn it needs every host connected, takes them out of
//     maintenance mode and records it powered on. Both are vCenter tasks.
//     QueryClusterPowerContext reports the recorded status. While a cluster is
//     recorded powered off, its VMs do not power on (its objects are not
//     available).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type vsanClusters struct {
	lab      *Lab
	mu       sync.Mutex
	clusters map[types.ManagedObjectReference]string   // vSAN cluster -> its name
	off      map[string]bool                           // cluster name -> recorded powered off
	infra    map[string][]types.ManagedObjectReference // cluster name -> the infraVMs its power-off stopped (started on power-on)
}

func newVSAN(l *Lab, n int) (*vsanClusters, error) {
	refs := l.clusterRefs()
	if n > len(refs) {
		return nil, fmt.Errorf("--vsan-clusters %d: the lab has %d clusters (--clusters)", n, len(refs))
	}
	v := &vsanClusters{lab: l, clusters: map[types.ManagedObjectReference]string{}, off: map[string]bool{}, infra: map[string][]types.ManagedObjectReference{}}
	for _, ref := range refs[:n] {
		v.clusters[ref] = simulator.Map.Get(ref).(*simulator.ClusterComputeResource).Name
		clusterConfig(ref, func(cfg *types.ClusterConfigInfoEx) {
			enabled := true
			cfg.VsanConfigInfo = &types.VsanClusterConfigInfo{Enabled: &enabled}
		})
	}
	return v, nil
}

func (v *vsanClusters) isVSAN(s *Server) bool {
	for _, name := range v.clusters {
		if name == s.Cluster {
			return true
		}
	}
	return false
}

// maintenanceRefusal is the "ensure accessibility" rule for s entering maintenance mode.
func (v *vsanClusters) maintenanceRefusal(s *Server, spec *types.HostMaintenanceSpec) types.BaseMethodFault {
	if !v.isVSAN(s) || (spec != nil && spec.VsanMode != nil && spec.VsanMode.ObjectAction == string(types.VsanHostDecommissionModeObjectActionNoAction)) {
		return nil
	}
	remain := 0
	for _, o := range v.lab.servers {
		if o != s && o.Cluster == s.Cluster {
			if conn, maintenance := v.lab.hostState(o); conn == types.HostSystemConnectionStateConnected && !maintenance {
				remain++
			}
		}
	}
	if remain < 3 {
		return vsanFault(fmt.Sprintf("vSAN cannot ensure accessibility with %d other host(s) of %s up; use objectAction noAction", remain, s.Cluster))
	}
	return nil
}

// powerOnRefusal: a VM of a cluster recorded powered off has no storage.
func (v *vsanClusters) powerOnRefusal(s *Server) types.BaseMethodFault {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.off[s.Cluster] {
		return vsanFault(fmt.Sprintf("vSAN cluster %s is powered off; power it on first", s.Cluster))
	}
	return nil
}

func vsanFault(msg string) types.BaseMethodFault {
	return &types.VsanFault{VimFault: types.VimFault{MethodFault: types.MethodFault{
		FaultMessage: []types.LocalizableMessage{{Key: "labsim.vsan", Message: msg}},
	}}}
}

var (
	vsanCall    = regexp.MustCompile(`<(?:\w+:)?Body[^>]*>\s*<(?:\w+:)?(\w+)[\s>/]`)
	vsanCluster = regexp.MustCompile(`<(?:\w+:)?cluster[^>]*>([^<]+)</`)
	vsanTarget  = regexp.MustCompile(`<(?:\w+:)?targetPowerStatus>([^<]+)</`)
	vsanInfraVM = regexp.MustCompile(`<(?:\w+:)?infraVMs[^>]*>([^<]+)</`)
)

// ServeHTTP is the vSAN endpoint: the calls of VsanClusterPowerSystem.
func (v *vsanClusters) ServeHTTP(i *interceptor, w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	call := vsanCall.FindSubmatch(body)
	if call == nil {
		writeSOAP(w, fault(&types.InvalidRequest{}))
		return
	}
	method := string(call[1])
	v.lab.calls.add("vsan:" + method)
	system := types.ManagedObjectReference{Type: "VsanClusterPowerSystem", Value: "vsan-cluster-power-system"}
	if !i.authenticated(r) {
		writeSOAP(w, fault(&types.NotAuthenticated{NoPermission: types.NoPermission{Object: system, PrivilegeId: "System.View"}}))
		return
	}
	if !v.lab.release.clusterPower {
		writeSOAP(w, fault(&types.MethodNotFound{Receiver: system, Method: method}))
		return
	}
	var ref types.ManagedObjectReference
	if m := vsanCluster.FindSubmatch(body); m != nil {
		ref = types.ManagedObjectReference{Type: "ClusterComputeResource", Value: string(m[1])}
	}
	name, ok := v.clusters[ref]
	if !ok {
		writeSOAP(w, fault(&types.InvalidArgument{InvalidProperty: "cluster"}))
		return
	}
	switch method {
	case "QueryClusterPowerContext":
		v.mu.Lock()
		status := "clusterPoweredOn"
		if v.off[name] {
			status = "clusterPoweredOff"
		}
		v.mu.Unlock()
		writeVSAN(w, method, `<returnval xsi:type="ClusterPowerContext"><currentClusterPowerStatus>`+status+`</currentClusterPowerStatus></returnval>`)
	case "PerformClusterPowerAction":
		target := ""
		if m := vsanTarget.FindSubmatch(body); m != nil {
			target = string(m[1])
		}
		if target != "clusterPoweredOff" && target != "clusterPoweredOn" {
			writeSOAP(w, fault(&types.InvalidArgument{InvalidProperty: "spec.targetPowerStatus"}))
			return
		}
		infra := map[types.ManagedObjectReference]bool{}
		for _, m := range vsanInfraVM.FindAllSubmatch(body, -1) {
			infra[types.ManagedObjectReference{Type: "VirtualMachine", Value: string(m[1])}] = true
		}
		task := runTask(simulator.Map.Get(ref), "PerformClusterPowerAction", func() types.BaseMethodFault {
			return v.powerAction(name, target == "clusterPoweredOff", infra)
		})
		writeVSAN(w, method, `<returnval type="Task">`+task.Value+`</returnval>`)
	default:
		writeSOAP(w, fault(&types.MethodNotFound{Receiver: system, Method: method}))
	}
}

// powerAction is the task's work: the checks, then the hosts' maintenance mode and the record. The
// spec's infraVMs (a DNS server, say) may still run: they are stopped after the workload check and
// started again by the power-on. vCLS agents are the action's own business (the wizard's retreat).
func (v *vsanClusters) powerAction(cluster string, off bool, infra map[types.ManagedObjectReference]bool) types.BaseMethodFault {
	var hosts []*Server
	for _, s := range v.lab.servers {
		if s.Cluster == cluster {
			hosts = append(hosts, s)
		}
	}
	var problems []string
	for _, s := range hosts {
		conn, _ := v.lab.hostState(s)
		if !off && conn != types.HostSystemConnectionStateConnected {
			problems = append(problems, "host "+s.FQDN+" is "+string(conn))
		}
		if off {
			for _, vm := range v.lab.vmsOn(s) {
				if v.lab.vcls != nil {
					if _, agent := v.lab.vcls.clusterOf(vm); agent {
						continue
					}
				}
				if vmPower(vm) == types.VirtualMachinePowerStatePoweredOn && !infra[vm] {
					t, _ := v.lab.traits(vm)
					problems = append(problems, "VM "+vmName(t, vm)+" is powered on")
				}
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return vsanFault(fmt.Sprintf("vSAN cluster %s cannot be powered %s: %s", cluster, map[bool]string{true: "off", false: "on"}[off], strings.Join(problems, "; ")))
	}
	if off {
		v.stopInfra(cluster, infra)
	}
	for _, s := range hosts {
		if off && v.lab.vcls != nil {
			v.lab.vcls.stopEmbedded(s)
		}
		if conn, _ := v.lab.hostState(s); conn == types.HostSystemConnectionStateConnected {
			host := simulator.Map.Get(s.Host)
			simulator.Map.WithLock(host, func() {
				simulator.Map.Update(host, []types.PropertyChange{{Name: "runtime.inMaintenanceMode", Val: off}})
			})
		}
	}
	v.mu.Lock()
	v.off[cluster] = off
	started := v.infra[cluster]
	if !off {
		delete(v.infra, cluster)
	}
	v.mu.Unlock()
	if !off {
		for _, vm := range started {
			if task, err := object.NewVirtualMachine(v.lab.client, vm).PowerOn(context.Background()); err == nil {
				_ = task.Wait(context.Background())
			}
		}
	}
	return nil
}

// stopInfra shuts the running infraVMs down and remembers them for the power-on.
func (v *vsanClusters) stopInfra(cluster string, infra map[types.ManagedObjectReference]bool) {
	var stopped []types.ManagedObjectReference
	for vm := range infra {
		if vmPower(vm) == types.VirtualMachinePowerStatePoweredOn {
			v.lab.setVMPower(vm, types.VirtualMachinePowerStatePoweredOff)
			stopped = append(stopped, vm)
		}
	}
	v.mu.Lock()
	v.infra[cluster] = append(v.infra[cluster], stopped...)
	v.mu.Unlock()
}

func vmName(t *vmTraits, ref types.ManagedObjectReference) string {
	if t != nil {
		return t.name
	}
	return ref.Value
}

func writeVSAN(w http.ResponseWriter, method, result string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><%sResponse xmlns="urn:vsan">%s</%sResponse></soapenv:Body></soapenv:Envelope>`, method, result, method)
}

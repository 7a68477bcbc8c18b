package main

// What vCenter 8.0 U2 and later add to a cluster for its system VMs (vCLS):
// configurationEx.systemVMsConfig.deploymentMode, SYSTEM_MANAGED or ABSENT
// (retreat mode), set through ReconfigureComputeResource_Task with
// ClusterConfigSpecEx.systemVMsConfig. govmomi 0.24 knows neither field: the
// cluster's configurationEx becomes ClusterConfigInfoEx below (the Go type's
// name is what goes on the wire as xsi:type), and the mode is read from the
// request's XML itself. Each ESXi host also reports its own release
// (config.product.version, --esxi-versions).

import (
	"fmt"
	"regexp"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// ClusterConfigInfoEx is govmomi's plus the 8.0 U2 field it lacks.
type ClusterConfigInfoEx struct {
	types.ClusterConfigInfoEx
	SystemVMsConfig *ClusterSystemVMsConfigInfo `xml:"systemVMsConfig,omitempty"`
}

// ClusterSystemVMsConfigInfo is vim.cluster.SystemVMsConfigInfo (deploymentMode only).
type ClusterSystemVMsConfigInfo struct {
	types.DynamicData
	DeploymentMode string `xml:"deploymentMode,omitempty"`
}

const (
	systemManaged = "SYSTEM_MANAGED"
	absent        = "ABSENT"
)

var deploymentModeXML = regexp.MustCompile(`(?s)<systemVMsConfig[^>]*>.*?<deploymentMode[^>]*>\s*(\w+)\s*</deploymentMode>`)

// systemVMsConfigs gives every cluster its systemVMsConfig (8.0 U2 and later).
func (l *Lab) systemVMsConfigs() {
	if !l.release.systemVMs {
		return
	}
	for _, ref := range l.clusterRefs() {
		obj := simulator.Map.Get(ref).(*simulator.ClusterComputeResource)
		simulator.Map.WithLock(obj, func() {
			cfg := obj.ConfigurationEx.(*types.ClusterConfigInfoEx)
			obj.ConfigurationEx = &ClusterConfigInfoEx{ClusterConfigInfoEx: *cfg, SystemVMsConfig: &ClusterSystemVMsConfigInfo{DeploymentMode: systemManaged}}
		})
	}
}

// showDeploymentMode makes a cluster's configurationEx say whether it is in retreat mode.
func showDeploymentMode(ref types.ManagedObjectReference, retreat bool) {
	obj, ok := simulator.Map.Get(ref).(*simulator.ClusterComputeResource)
	if !ok {
		return
	}
	simulator.Map.WithLock(obj, func() {
		if cfg, ok := obj.ConfigurationEx.(*ClusterConfigInfoEx); ok {
			mode := systemManaged
			if retreat {
				mode = absent
			}
			cfg.SystemVMsConfig = &ClusterSystemVMsConfigInfo{DeploymentMode: mode}
			simulator.Map.Update(obj, []types.PropertyChange{{Name: "configurationEx", Val: cfg}})
		}
	})
}

// reconfigureSystemVMs takes the deployment mode out of the request's XML (the
// simulator's decoder drops it); the agents follow after --vcls-delay.
func (l *Lab) reconfigureSystemVMs(m *simulator.Method, body []byte) {
	found := deploymentModeXML.FindSubmatch(body)
	if found == nil || l.vcls == nil || !l.release.systemVMs {
		return
	}
	mode := string(found[1])
	for cluster, ref := range l.vcls.cluster {
		if ref == m.This {
			cluster := cluster
			time.AfterFunc(l.opts.vclsDelay, func() { l.vcls.setRetreat(cluster, mode == absent) })
		}
	}
}

// extendedReconfigure answers a reconfigure of a cluster whose configurationEx
// is the extended type itself (the simulator's own expects govmomi's type).
func extendedReconfigure(ref types.ManagedObjectReference) soap.HasFault {
	obj, ok := simulator.Map.Get(ref).(*simulator.ClusterComputeResource)
	if !ok {
		return nil
	}
	if _, extended := obj.ConfigurationEx.(*ClusterConfigInfoEx); !extended {
		return nil
	}
	task := runTask(obj, "reconfigureCluster", func() types.BaseMethodFault { return nil })
	return &methods.ReconfigureComputeResource_TaskBody{Res: &types.ReconfigureComputeResource_TaskResponse{Returnval: task}}
}

// hostVersions sets each host's ESXi release: vCenter's, or its own from --esxi-versions.
func (l *Lab) hostVersions() error {
	versions, err := pairs(l.opts.esxiVersions)
	if err != nil {
		return err
	}
	for _, s := range l.servers {
		s.version = l.release.version
		if v, ok := versions[s.Name]; ok {
			s.version = v
			delete(versions, s.Name)
		}
		host := simulator.Map.Get(s.Host).(*simulator.HostSystem)
		cfg := *host.Config
		cfg.Product.Version, cfg.Product.ApiVersion = s.version, s.version
		host.Config = &cfg
		if host.Summary.Config.Product != nil {
			product := *host.Summary.Config.Product
			product.Version, product.ApiVersion = s.version, s.version
			host.Summary.Config.Product = &product
		}
	}
	for name := range versions {
		return fmt.Errorf("--esxi-versions: no server named %q", name)
	}
	return nil
}

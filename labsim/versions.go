package main

// The vSphere release labsim stands for (--vsphere): what vCenter reports in
// ServiceContent.about, and which of the mechanisms that fight a power cycle
// exist in it: vCLS from 7.0 U1 (agents of the ESX Agent Manager), the vSAN cluster power action from
// 7.0 U3, retreat mode through ClusterConfigSpecEx.systemVMsConfig.deploymentMode from 8.0 U2,
// embedded vCLS agents from 8.0 U3 (on hosts of 8.0 U3 and later: vcls_embedded.go), and 9.0's
// deprecation of vCLS, whose recommended state is retreat mode (--vcls-retreat).

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vmware/govmomi/vim25/types"
)

type release struct {
	version, build, api string
	vcls                bool // vSphere Cluster Services agent VMs (7.0 U1 and later)
	clusterPower        bool // vim.cluster.VsanClusterPowerSystem.PerformClusterPowerAction (7.0 U3 and later)
	systemVMs           bool // configurationEx.systemVMsConfig.deploymentMode (8.0 U2 and later)
	embedded            bool // embedded vCLS on hosts of 8.0 U3 and later (vCenter 8.0 U3 and later)
}

var releases = map[string]release{
	"6.7":   {version: "6.7.0", build: "19299595", api: "6.7.3"},
	"7.0.3": {version: "7.0.3", build: "20395099", api: "7.0.3.0", vcls: true, clusterPower: true},
	"8.0.2": {version: "8.0.2", build: "22385739", api: "8.0.2.0", vcls: true, clusterPower: true, systemVMs: true},
	"8.0.3": {version: "8.0.3", build: "24022515", api: "8.0.3.0", vcls: true, clusterPower: true, systemVMs: true, embedded: true},
	"9.0":   {version: "9.0.0", build: "24755230", api: "9.0.0.0", vcls: true, clusterPower: true, systemVMs: true, embedded: true},
}

// embeddedHost is whether an ESXi release runs embedded vCLS agents (8.0 U3 and later).
func embeddedHost(version string) bool {
	var major, minor, update int
	_, _ = fmt.Sscanf(version, "%d.%d.%d", &major, &minor, &update)
	return major > 8 || (major == 8 && (minor > 0 || update >= 3))
}

func releaseNamed(name string) (release, error) {
	r, ok := releases[name]
	if !ok {
		names := make([]string, 0, len(releases))
		for n := range releases {
			names = append(names, n)
		}
		sort.Strings(names)
		return release{}, fmt.Errorf("--vsphere must be one of %s, not %q", strings.Join(names, ", "), name)
	}
	return r, nil
}

// about is what vCenter says of itself.
func (r release) about(about *types.AboutInfo) {
	about.Version, about.Build, about.ApiVersion = r.version, r.build, r.api
	about.FullName = fmt.Sprintf("VMware vCenter Server %s build-%s (labsim)", r.version, r.build)
}

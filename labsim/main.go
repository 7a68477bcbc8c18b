// Command labsim serves a simulated vSphere lab: govmomi's vCenter simulator
// plus one iDRAC-shaped Redfish BMC per ESXi host, sharing one power state.
//
// It is a test harness and the demo's target, not product code.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	clusters, hostsPerCluster, vmsPerHost, mgmtHosts                  int
	vcenterVMOn                                                       string
	startupTagFraction, toollessFraction, hungFraction                float64
	guestShutdownDelay, hostBootDelay, hostShutdownDelay, toolsDelay  time.Duration
	guestShutdownJitter, hostBootJitter, vclsDelay, vclsRepowerDelay  time.Duration
	seed                                                              int64
	listen                                                            string
	user, password, bmcUser, bmcPassword                              string
	writeConfig, secretsFile, certOut                                 string
	noHostShutdown, bmcNoBasicAuth, govmomiFeed, noPowerOnMulti, vcls bool
	noVCLS                                                            bool
	stuckHosts, selfVMOn                                              string
	sgxHosts, vsgxVMs, slowGuests, vsphere                            string
	cbtFraction                                                       float64
	vsanClusters                                                      int
	denyPrivileges                                                    string
	ha                                                                bool
	latency                                                           time.Duration
	esxiPassword, esxiPasswords                                       string
	vcenterBootDelay                                                  time.Duration
	dnsVM                                                             bool
	noVCenter                                                         bool
	wolHosts, plugHosts, meterHosts                                   string
	busyVMs                                                           string
	esxiVersions                                                      string
	vclsRetreat                                                       bool
	idleCPUMHz, busyCPUMHz                                            int
	storage                                                           int
}

func parseFlags() (options, pveOptions, bool) {
	var o options
	var p pveOptions
	var proxmox bool
	flag.BoolVar(&proxmox, "proxmox", false, "a Proxmox VE cluster instead of vSphere: nodes with BMCs, QEMU and LXC guests, HA, Ceph (--pve-* options)")
	pveFlags(&p)
	flag.StringVar(&o.vsphere, "vsphere", "8.0.3", "the vSphere release vCenter reports: 6.7, 7.0.3, 8.0.2, 8.0.3 (embedded vCLS) or 9.0")
	flag.StringVar(&o.esxiVersions, "esxi-versions", "", "hosts running another ESXi release than vCenter's, NAME=VERSION,... (e.g. esx12=8.0.2: a mixed cluster)")
	flag.BoolVar(&o.vclsRetreat, "vcls-retreat", false, "every cluster starts in vCLS retreat mode (what Broadcom recommends on 9.0)")
	flag.BoolVar(&o.vcls, "vcls", false, "insist on vCLS (the default from 7.0.3; refused for --vsphere 6.7)")
	flag.BoolVar(&o.noVCLS, "no-vcls", false, "no vCLS agent VMs (as a 6.7 lab, or a 7/8 lab whose clusters are all in retreat mode)")
	flag.DurationVar(&o.vclsDelay, "vcls-delay", 3*time.Second, "time from a cluster's retreat-mode change to its agents deleted or recreated")
	flag.DurationVar(&o.vclsRepowerDelay, "vcls-repower-delay", 2*time.Second, "time from an agent VM stopping to EAM starting it again")
	flag.IntVar(&o.vsanClusters, "vsan-clusters", 0, "the first N clusters are vSAN clusters (maintenance rules, cluster power action from 7.0.3)")
	flag.StringVar(&o.denyPrivileges, "deny-privileges", "", "privileges the vCenter user lacks, ID,... (e.g. Host.Inventory.EditCluster,Global.Settings)")
	flag.BoolVar(&o.ha, "ha", false, "vSphere HA is turned on in every cluster (configurationEx.dasConfig.enabled)")
	flag.IntVar(&o.clusters, "clusters", 2, "number of clusters (their hosts are group payload)")
	flag.IntVar(&o.hostsPerCluster, "hosts-per-cluster", 2, "ESXi hosts in each cluster")
	flag.IntVar(&o.vmsPerHost, "vms-per-host", 3, "VMs on each host")
	flag.IntVar(&o.mgmtHosts, "mgmt-hosts", 1, "standalone always-on hosts (group mgmt)")
	flag.StringVar(&o.vcenterVMOn, "vcenter-vm-on", "mgmt", "where the VM 'vcsa' runs: mgmt, payload or none")
	flag.Float64Var(&o.startupTagFraction, "startup-tag-fraction", 0.5, "fraction of VMs tagged Lab/StartUp")
	flag.Float64Var(&o.toollessFraction, "toolless-fraction", 0.0, "fraction of VMs without VMware Tools")
	flag.Float64Var(&o.hungFraction, "hung-fraction", 0.0, "fraction of VMs that ignore a guest shutdown")
	flag.DurationVar(&o.guestShutdownDelay, "guest-shutdown-delay", 2*time.Second, "time a guest takes to shut down")
	flag.DurationVar(&o.hostBootDelay, "host-boot-delay", 5*time.Second, "time from BMC power-on to the host reconnecting")
	flag.DurationVar(&o.guestShutdownJitter, "guest-shutdown-jitter", 0, "each VM's guest shutdown takes a seeded uniform extra in [0, D)")
	flag.DurationVar(&o.hostBootJitter, "host-boot-jitter", 0, "each server's boot takes a seeded uniform extra in [0, D)")
	flag.StringVar(&o.slowGuests, "slow-guests", "", "guests whose shutdown takes this long instead, NAME=DURATION,... (a Windows VM installing updates)")
	flag.DurationVar(&o.hostShutdownDelay, "host-shutdown-delay", 2*time.Second, "time an ESXi host takes to shut down")
	flag.DurationVar(&o.toolsDelay, "tools-delay", 500*time.Millisecond, "time from VM power-on to tools running")
	flag.Int64Var(&o.seed, "seed", 1, "seed for which VMs are tagged, toolless or hung")
	flag.StringVar(&o.listen, "listen", "127.0.0.1", "address every server binds to")
	flag.StringVar(&o.user, "user", "administrator@vsphere.local", "vCenter user")
	flag.StringVar(&o.password, "password", "", "vCenter password (random when empty; printed)")
	flag.StringVar(&o.bmcUser, "bmc-user", "root", "BMC user")
	flag.StringVar(&o.bmcPassword, "bmc-password", "", "BMC password (random when empty; printed)")
	flag.BoolVar(&o.bmcNoBasicAuth, "bmc-no-basic-auth", false, "BMCs refuse HTTP Basic auth: Redfish sessions only")
	flag.StringVar(&o.writeConfig, "write-config", "", "write a ready labswitch config for this lab to PATH")
	flag.StringVar(&o.secretsFile, "secrets-file", "", "write the secrets as an env file (KEY=value lines) to PATH")
	flag.StringVar(&o.certOut, "cert-out", "", "write the servers' certificate (PEM) to PATH")
	flag.BoolVar(&o.noHostShutdown, "no-host-shutdown", false, "vCenter offers no ShutdownHost_Task/RebootHost_Task (MethodNotFound, as plain vcsim)")
	flag.BoolVar(&o.noPowerOnMulti, "no-power-on-multi", false, "vCenter answers PowerOnMultiVM_Task with NotImplemented (as an ESXi host does)")
	flag.StringVar(&o.stuckHosts, "stuck-hosts", "", "comma-separated servers that power on at the BMC but never reconnect to vCenter")
	flag.StringVar(&o.selfVMOn, "self-vm-on", "none", "add VM 'labswitch' whose guest host name is this machine's: mgmt, payload or none")
	flag.StringVar(&o.sgxHosts, "sgx-hosts", "", "SGX state per server, NAME=STATE,... (enabled, disabledBIOS, ...; others notPresent)")
	flag.StringVar(&o.vsgxVMs, "vsgx-vms", "", "virtual SGX per VM, NAME=EPC_MB,...")
	flag.Float64Var(&o.cbtFraction, "cbt-fraction", 0.0, "fraction of payload VMs with changed block tracking on")
	flag.BoolVar(&o.govmomiFeed, "govmomi-feed", false, "answer WaitForUpdatesEx with the simulator's own property collector (re-collects every filter per change), not labsim's incremental feed")
	flag.StringVar(&o.esxiPassword, "esxi-password", "", "every host's root password for its own API (random when empty; printed)")
	flag.StringVar(&o.esxiPasswords, "esxi-passwords", "", "hosts with a root password of their own, NAME=PASSWORD,... (the config then needs servers.esxi_password)")
	flag.DurationVar(&o.vcenterBootDelay, "vcenter-boot-delay", 5*time.Second, "--vcenter-vm-on payload: time from the vcsa VM's power-on to vCenter answering")
	flag.BoolVar(&o.noVCenter, "no-vcenter", false, "standalone ESXi hosts only: no vCenter endpoint (its port refuses connections), no vcsa VM, no vCLS; the config has [esxi] and no [vcenter]")
	flag.StringVar(&o.wolHosts, "wol-hosts", "", "servers without a BMC, woken by Wake-on-LAN on labsim's UDP port (printed as WOL), NAME,...")
	flag.StringVar(&o.plugHosts, "plug-hosts", "", "servers without a BMC whose power is a smart plug, NAME[=shelly|tasmota],... (Shelly Gen2 by default)")
	flag.StringVar(&o.meterHosts, "meter-hosts", "", "servers whose iDRAC reports no watts, measured by a Shelly plug instead (config: meter), NAME,...")
	flag.StringVar(&o.busyVMs, "busy-vms", "", "VMs that are busy while on (quickStats.overallCpuUsage --busy-cpu-mhz), NAME,...; POST /labsim/cpu?vm=NAME&mhz=N changes a load at run time")
	flag.IntVar(&o.idleCPUMHz, "idle-cpu-mhz", 20, "the CPU load a powered-on VM reports when idle, in MHz")
	flag.IntVar(&o.busyCPUMHz, "busy-cpu-mhz", 1500, "the CPU load of a --busy-vms VM, in MHz")
	flag.IntVar(&o.storage, "storage", 0, "plain storage servers nas01... (group storage, which payload needs): a BMC each, an OS whose service port answers once booted; POST /labsim/os-shutdown?server=NAME is its own poweroff")
	flag.BoolVar(&o.dnsVM, "dns-vm", false, "add VM 'dns01' beside vcsa: a VM vCenter needs (policy.vcenter_dependencies)")
	flag.DurationVar(&o.latency, "latency", 0, "added to every SOAP call: a LAN round trip and vCenter's own work (e.g. 2ms)")
	flag.Parse()
	return o, p, proxmox
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("labsim: ")
	o, p, proxmox := parseFlags()
	if proxmox {
		pveMain(o, p)
		return
	}
	if o.noVCenter {
		o.vcenterVMOn, o.noVCLS, o.ha = "none", true, false
	}
	if o.vcenterVMOn != "mgmt" && o.vcenterVMOn != "payload" && o.vcenterVMOn != "none" {
		log.Fatalf("--vcenter-vm-on must be mgmt, payload or none, not %q", o.vcenterVMOn)
	}
	if o.vcenterVMOn == "mgmt" && o.mgmtHosts == 0 {
		log.Fatal("--vcenter-vm-on mgmt needs --mgmt-hosts 1 or more")
	}
	start := time.Now()
	lab, err := newLab(o)
	if err != nil {
		log.Fatal(err)
	}
	if err := lab.writeOutputs(); err != nil {
		log.Fatal(err)
	}
	log.Printf("%d hosts, %d VMs, ready in %s", len(lab.servers), len(lab.vms), time.Since(start).Round(time.Millisecond))
	for _, s := range lab.servers {
		fmt.Printf("ESXI %s %s\n", s.Name, s.agent.URL)
		if s.plug != nil {
			fmt.Printf("PLUG %s %s %s\n", s.Name, s.plug.kind, s.plug.URL)
		}
	}
	if lab.wol != nil {
		fmt.Println(lab.wol)
	}
	fmt.Printf("THUMBPRINT %s\n", lab.thumbprint)
	fmt.Printf("READY %s\n", lab.readyURL())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	lab.close()
}

// pveMain serves a Proxmox VE cluster (--proxmox) until SIGTERM or SIGINT.
func pveMain(o options, p pveOptions) {
	start := time.Now()
	lab, err := newPVELab(o, p)
	if err != nil {
		log.Fatal(err)
	}
	if err := lab.writeOutputs(); err != nil {
		log.Fatal(err)
	}
	log.Printf("Proxmox VE cluster %s: %d nodes, %d guests, ready in %s", p.cluster, len(lab.nodes), len(lab.guests), time.Since(start).Round(time.Millisecond))
	for _, n := range lab.nodes {
		fmt.Printf("NODE %s https://%s %s\n", n.name, n.api.addr, n.server.bmc.URL)
	}
	fmt.Printf("CONTROL %s\n", lab.controlURL)
	fmt.Printf("THUMBPRINT %s\n", lab.thumbprint)
	fmt.Printf("READY %s\n", lab.apiURL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	lab.close()
}

package main

import (
	"context"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	_ "github.com/vmware/govmomi/vapi/simulator" // tagging REST endpoints
)

// Server is one physical machine: an ESXi host in vCenter and its BMC.
type Server struct {
	Name       string // short name, as in labswitch's config
	FQDN       string // the host's name in vCenter
	Group      string
	Cluster    string
	ServiceTag string
	Host       types.ManagedObjectReference
	bmc        *bmcServer
	agent      *hostAgent // the host's own API (esxi.go)
	MAC        net.HardwareAddr
	wol        bool        // no BMC: woken by a magic packet (wol.go)
	plug       *plugServer // no BMC: its power is a smart plug (plug.go)
	meter      *plugServer // --meter-hosts: a plug measures it; its BMC reports no watts

	bootDelay time.Duration // --host-boot-delay plus its jitter (physical.go)
	version   string        // its ESXi release (--esxi-versions; vCenter's by default)

	mu      sync.Mutex
	power   string    // "On" or "Off": the truth; vCenter's view follows it
	epoch   int       // bumped on every power change, cancels stale timers
	changed time.Time // when the power last changed (published by /labsim/physical)
}

// vmTraits are what labsim decides about a guest, beyond what vSphere stores.
type vmTraits struct {
	name          string
	toolless      bool // VMware Tools not installed: guest shutdown faults
	hung          bool // ignores a guest shutdown request
	server        *Server
	shutdownDelay time.Duration // --guest-shutdown-delay plus its jitter (physical.go)
}

// Lab is the whole simulated lab; one value shared by vCenter and the BMCs.
type Lab struct {
	opts       options
	model      *simulator.Model
	vcsim      *simulator.Server
	intercept  *interceptor
	vcGate     *gate                        // --vcenter-vm-on payload: vCenter answers only while its VM runs
	vcsaVM     types.ManagedObjectReference // the VM "vcsa", if any
	wol        *wolListener                 // --wol-hosts
	cpu        *cpuLoads                    // guests' CPU load (cpu.go)
	faults     faults                       // switched at run time (faults.go)
	restarts   restarts                     // sessions a vCenter restart ended (restart.go)
	client     *vim25.Client                // in-process, for building the inventory
	vcURL      string
	thumbprint string
	certPEM    []byte
	servers    []*Server
	storage    []*Server  // --storage: plain servers, no host in vCenter (storage.go)
	storageOS  *storageOS // their OS
	byHost     map[types.ManagedObjectReference]*Server
	vms        map[types.ManagedObjectReference]*vmTraits // written at build; at run time only under vmsMu (vCLS agents come and go)
	vmsMu      sync.RWMutex
	folders    *object.DatacenterFolders
	vcls       *vclsManager                   // nil before 7.0.3 or with --no-vcls
	vsan       *vsanClusters                  // --vsan-clusters (vsan.go); no vSAN cluster with 0
	vmOrder    []types.ManagedObjectReference // payload VMs, in creation order
	vmCreation []types.ManagedObjectReference // every VM, in creation order
	calls      *callCounter
	release    release // --vsphere (versions.go)
	feed       *feed   // nil with --govmomi-feed
	tmpdir     string
}

func newLab(o options) (*Lab, error) {
	if o.password == "" {
		o.password = randomSecret()
	}
	if o.bmcPassword == "" {
		o.bmcPassword = randomSecret()
	}
	if o.esxiPassword == "" {
		o.esxiPassword = randomSecret()
	}
	if _, err := pairs(o.esxiPasswords); err != nil {
		return nil, fmt.Errorf("--esxi-passwords: %w", err)
	}
	rel, err := releaseNamed(o.vsphere)
	if err != nil {
		return nil, err
	}
	l := &Lab{
		release: rel,
		opts:    o,
		byHost:  map[types.ManagedObjectReference]*Server{},
		vms:     map[types.ManagedObjectReference]*vmTraits{},
		calls:   newCallCounter(),
	}
	l.faults.cleared = l.faultCleared
	l.faults.switched = l.faultSwitched
	labFaults = &l.faults
	tlsConf, err := l.newTLS()
	if err != nil {
		return nil, err
	}

	l.model = simulator.VPX()
	// A vCenter 7.0 U3: the API version that reports SGX (hardware.sgxInfo, config.sgxInfo).
	l.release.about(&l.model.ServiceContent.About)
	l.model.Datacenter, l.model.Cluster, l.model.Host, l.model.Machine = 0, 0, 0, 0
	l.model.Portgroup, l.model.Datastore = 0, 0
	if err := l.model.Create(); err != nil {
		return nil, err
	}
	l.client, err = vim25.NewClient(context.Background(), l.model.Service)
	if err != nil {
		return nil, err
	}
	if l.tmpdir, err = os.MkdirTemp("", "labsim-"); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewSource(o.seed))
	vmsToTag, err := l.buildInventory(rng)
	if err != nil {
		return nil, err
	}
	if err := l.assignPhysical(); err != nil {
		return nil, err
	}
	if o.ha {
		l.enableHA()
	}
	if err := l.hostVersions(); err != nil {
		return nil, err
	}
	l.systemVMsConfigs()
	if l.vsan, err = newVSAN(l, o.vsanClusters); err != nil {
		return nil, err
	}
	if (o.vcls || o.vclsRetreat) && !rel.vcls {
		return nil, fmt.Errorf("--vcls: vSphere %s has no vCLS (7.0 U1 and later)", o.vsphere)
	}
	if rel.vcls && !o.noVCLS {
		l.vcls = newVCLS(l)
		if err := l.vcls.start(); err != nil {
			return nil, err
		}
	}
	l.hostOptions()
	if err := l.sgx(); err != nil {
		return nil, err
	}
	if err := l.cbt(context.Background(), rng); err != nil {
		return nil, err
	}

	l.model.Service.Listen = &url.URL{Host: o.listen + ":0", User: url.UserPassword(o.user, o.password)}
	l.model.Service.TLS = tlsConf
	l.model.Service.RegisterEndpoints = true
	l.vcsim = l.model.Service.NewServer()
	// Wrap the simulator's handler before anyone knows the port: labsim counts
	// SOAP calls and takes over the few methods the simulator lacks or gets wrong.
	l.intercept = &interceptor{lab: l, next: l.vcsim.Config.Handler}
	l.vcsim.Config.Handler = l.intercept
	u := *l.vcsim.URL
	u.User = nil
	if o.vcenterVMOn == "payload" || o.noVCenter { // vCenter inside the lab: it answers while its VM runs (vcenter.go)
		if l.vcGate, err = newGate(o.listen, u.Host); err != nil {
			return nil, err
		}
		u.Host = l.vcGate.addr
	}
	l.vcURL = u.String()

	if err := l.tagVMs(vmsToTag); err != nil {
		return nil, err
	}
	if l.cpu, err = newCPULoads(l); err != nil {
		return nil, err
	}
	l.cpu.applyAll()
	simulator.Map.AddHandler(&powerWatcher{lab: l})
	if !o.govmomiFeed {
		l.feed = newFeed()
	}
	if err := l.powerSupplies(); err != nil {
		return nil, err
	}
	for _, s := range l.servers {
		s.power = "On"
		if !s.wol && s.plug == nil {
			if s.bmc, err = startBMC(l, s, tlsConf, l.opts.listen); err != nil {
				return nil, err
			}
		}
		if s.agent, err = startHostAgent(l, s); err != nil {
			return nil, err
		}
	}
	if err := l.addStorage(tlsConf); err != nil {
		return nil, err
	}
	if o.noVCenter { // no vCenter at all: its port refuses connections; the hosts' own APIs remain
		l.vcGate.shut()
	}
	return l, nil
}

func (l *Lab) close() {
	for _, s := range l.storage {
		_ = s.bmc.srv.Close()
	}
	for _, s := range l.servers {
		if s.bmc != nil {
			_ = s.bmc.srv.Close()
		}
		if s.agent != nil {
			s.agent.close()
		}
		for _, p := range []*plugServer{s.plug, s.meter} {
			if p != nil {
				_ = p.srv.Close()
			}
		}
	}
	if l.wol != nil {
		l.wol.close()
	}
	if l.vcGate != nil {
		l.vcGate.shut()
	}
	l.vcsim.Close()
	l.model.Remove()
	_ = os.RemoveAll(l.tmpdir)
}

// buildInventory creates the datacenter, clusters, hosts and VMs, and returns
// the VMs to tag StartUp (tagging needs the REST endpoint, which starts later).
func (l *Lab) buildInventory(rng *rand.Rand) ([]types.ManagedObjectReference, error) {
	ctx := context.Background()
	o := l.opts
	dc, err := object.NewRootFolder(l.client).CreateDatacenter(ctx, "Lab")
	if err != nil {
		return nil, err
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return nil, err
	}
	l.folders = folders
	var hosts []*object.HostSystem
	for m := 1; m <= o.mgmtHosts; m++ {
		name := fmt.Sprintf("mgmt%02d", m)
		task, err := folders.HostFolder.AddStandaloneHost(ctx, types.HostConnectSpec{HostName: name + ".lab.local"}, true, nil, nil)
		if err != nil {
			return nil, err
		}
		h, err := l.addServer(ctx, task, name, "mgmt", "")
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	for c := 1; c <= o.clusters; c++ {
		cname := fmt.Sprintf("Cluster%d", c)
		cluster, err := folders.HostFolder.CreateCluster(ctx, cname, types.ClusterConfigSpecEx{})
		if err != nil {
			return nil, err
		}
		for h := 1; h <= o.hostsPerCluster; h++ {
			name := fmt.Sprintf("esx%d%d", c, h)
			if o.hostsPerCluster > 9 {
				name = fmt.Sprintf("esx%d%02d", c, h)
			}
			task, err := cluster.AddHost(ctx, types.HostConnectSpec{HostName: name + ".lab.local"}, true, nil, nil)
			if err != nil {
				return nil, err
			}
			hs, err := l.addServer(ctx, task, name, "payload", cname)
			if err != nil {
				return nil, err
			}
			hosts = append(hosts, hs)
		}
	}
	if err := l.createDatastore(ctx, hosts); err != nil {
		return nil, err
	}
	return l.createVMs(ctx, rng, folders, hosts)
}

func (l *Lab) addServer(ctx context.Context, task *object.Task, name, group, cluster string) (*object.HostSystem, error) {
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, err
	}
	ref := info.Result.(types.ManagedObjectReference)
	s := &Server{
		Name: name, FQDN: name + ".lab.local", Group: group, Cluster: cluster, Host: ref,
		ServiceTag: fmt.Sprintf("LS%05d", len(l.servers)+1),
	}
	l.servers = append(l.servers, s)
	l.byHost[ref] = s
	return object.NewHostSystem(l.client, ref), nil
}

func (l *Lab) createDatastore(ctx context.Context, hosts []*object.HostSystem) error {
	dir := filepath.Join(l.tmpdir, "datastore1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, h := range hosts {
		dss, err := h.ConfigManager().DatastoreSystem(ctx)
		if err != nil {
			return err
		}
		if _, err := dss.CreateLocalDatastore(ctx, "datastore1", dir); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) createVMs(ctx context.Context, rng *rand.Rand, folders *object.DatacenterFolders, hosts []*object.HostSystem) ([]types.ManagedObjectReference, error) {
	var tagged []types.ManagedObjectReference
	vcsaHost := l.vcsaHost()
	for i, h := range hosts {
		s := l.servers[i]
		pool, err := h.ResourcePool(ctx)
		if err != nil {
			return nil, err
		}
		var names []string
		if s == vcsaHost {
			names = append(names, "vcsa")
			if l.opts.dnsVM {
				names = append(names, "dns01")
			}
		}
		if s == l.groupHost(l.opts.selfVMOn) {
			names = append(names, "labswitch")
		}
		for v := 1; v <= l.opts.vmsPerHost; v++ {
			names = append(names, fmt.Sprintf("%s-vm%02d", s.Name, v))
		}
		for _, name := range names {
			ref, err := l.createVM(ctx, folders, pool, h, name)
			if err != nil {
				return nil, err
			}
			t := &vmTraits{name: name, server: s}
			l.vmCreation = append(l.vmCreation, ref)
			if name == "vcsa" {
				l.vcsaVM = ref
			}
			if name != "vcsa" && name != "labswitch" {
				l.vmOrder = append(l.vmOrder, ref)
				t.toolless = rng.Float64() < l.opts.toollessFraction
				t.hung = rng.Float64() < l.opts.hungFraction
				if rng.Float64() < l.opts.startupTagFraction {
					tagged = append(tagged, ref)
				}
			}
			l.vms[ref] = t
			l.setGuest(ref, name, !t.toolless)
		}
	}
	return tagged, nil
}

// powerSupplies gives every server its MAC, and the servers without a BMC their
// wake-up (--wol-hosts) or their smart plug (--plug-hosts).
func (l *Lab) powerSupplies() error {
	byName := map[string]*Server{}
	for i, s := range l.servers {
		s.MAC = macFor(i + 1)
		byName[s.Name] = s
	}
	for _, name := range strings.Split(l.opts.wolHosts, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		s, ok := byName[name]
		if !ok {
			return fmt.Errorf("--wol-hosts: no server named %q", name)
		}
		s.wol = true
		if l.wol == nil {
			var err error
			if l.wol, err = startWOL(l); err != nil {
				return err
			}
		}
	}
	for _, item := range strings.Split(l.opts.plugHosts, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		name, kind, _ := strings.Cut(item, "=")
		if kind == "" {
			kind = "shelly"
		}
		s, ok := byName[name]
		if !ok || (kind != "shelly" && kind != "tasmota") {
			return fmt.Errorf("--plug-hosts: %q: NAME or NAME=shelly|tasmota of a server expected", item)
		}
		var err error
		if s.plug, err = startPlug(l, s, kind); err != nil {
			return err
		}
	}
	for _, name := range strings.Split(l.opts.meterHosts, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		s, ok := byName[name]
		if !ok || s.wol || s.plug != nil {
			return fmt.Errorf("--meter-hosts: %q: not a server with an iDRAC", name)
		}
		var err error
		if s.meter, err = startPlug(l, s, "shelly"); err != nil {
			return err
		}
	}
	return nil
}

// readyURL is what labsim announces: vCenter's SDK URL, or without vCenter the first host's.
func (l *Lab) readyURL() string {
	if l.opts.noVCenter {
		return l.servers[0].agent.URL + "/sdk"
	}
	return l.vcURL
}

// vcsaHost picks the host of the vCenter VM from --vcenter-vm-on.
func (l *Lab) vcsaHost() *Server { return l.groupHost(l.opts.vcenterVMOn) }

// groupHost is the first server of a group (nil for "none").
func (l *Lab) groupHost(group string) *Server {
	for _, s := range l.servers {
		if s.Group == group {
			return s
		}
	}
	return nil
}

func (l *Lab) createVM(ctx context.Context, folders *object.DatacenterFolders, pool *object.ResourcePool, h *object.HostSystem, name string) (types.ManagedObjectReference, error) {
	var devices object.VirtualDeviceList
	scsi, _ := devices.CreateSCSIController("pvscsi")
	disk := devices.CreateDisk(scsi.(types.BaseVirtualController), types.ManagedObjectReference{},
		fmt.Sprintf("[datastore1] %s/%s.vmdk", name, name))
	disk.CapacityInKB = 16 * 1024 * 1024
	devices = append(devices, scsi, disk)
	spec := types.VirtualMachineConfigSpec{
		Name:    name,
		GuestId: string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest),
		Version: "vmx-13",
		Files:   &types.VirtualMachineFileInfo{VmPathName: "[datastore1]"},
	}
	spec.DeviceChange, _ = devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	task, err := folders.VmFolder.CreateVM(ctx, spec, pool, h)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	ref := info.Result.(types.ManagedObjectReference)
	if _, err := object.NewVirtualMachine(l.client, ref).PowerOn(ctx); err != nil {
		return ref, err
	}
	return ref, nil
}

// setGuest fills in what VMware Tools would report for a running guest.
func (l *Lab) setGuest(ref types.ManagedObjectReference, name string, toolsRunning bool) {
	hostName, ip := name+".lab.local", ""
	switch name {
	case "vcsa":
		u, _ := url.Parse(l.vcURLOrListen())
		hostName, ip = u.Hostname(), u.Hostname()
	case "labswitch": // the VM labswitch itself runs in
		hostName, _ = os.Hostname()
	}
	obj := simulator.Map.Get(ref)
	simulator.Map.WithLock(obj, func() {
		simulator.Map.Update(obj, append(toolsChanges(toolsRunning),
			types.PropertyChange{Name: "guest.hostName", Val: hostName},
			types.PropertyChange{Name: "guest.ipAddress", Val: ip},
		))
	})
}

// vcURLOrListen is the vCenter URL once serving, else the listen address: the
// vcsa VM's guest identity must match the URL labswitch is configured with.
func (l *Lab) vcURLOrListen() string {
	if l.vcURL != "" {
		return l.vcURL
	}
	return "https://" + l.opts.listen + "/sdk"
}

func toolsChanges(running bool) []types.PropertyChange {
	status, run, hb := types.VirtualMachineToolsStatusToolsNotRunning, string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning), types.ManagedEntityStatusGray
	if running {
		status, run, hb = types.VirtualMachineToolsStatusToolsOk, string(types.VirtualMachineToolsRunningStatusGuestToolsRunning), types.ManagedEntityStatusGreen
	}
	return []types.PropertyChange{
		{Name: "guest.toolsStatus", Val: status},
		{Name: "guest.toolsRunningStatus", Val: run},
		{Name: "guestHeartbeatStatus", Val: hb},
	}
}

// interceptor sits in front of the simulator's HTTP handler.
type interceptor struct {
	lab  *Lab
	next http.Handler
}

// traits is a VM's labsim traits, safe while vCLS agents are created and deleted.
func (l *Lab) traits(ref types.ManagedObjectReference) (*vmTraits, bool) {
	l.vmsMu.RLock()
	defer l.vmsMu.RUnlock()
	t, ok := l.vms[ref]
	return t, ok
}

func (l *Lab) setTraits(ref types.ManagedObjectReference, t *vmTraits) {
	l.vmsMu.Lock()
	defer l.vmsMu.Unlock()
	if t == nil {
		delete(l.vms, ref)
		return
	}
	l.vms[ref] = t
}

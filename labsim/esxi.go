package main

// Every server also answers as an ESXi host on its own port: the vSphere API of
// a standalone host (about.apiType HostAgent, one datacenter ha-datacenter, the
// host ha-host, its VMs by their own numeric ids, login as root), over the same
// state as vCenter's view. Requests are translated to the simulator's ids and
// answered by it; the few calls a host answers differently from vCenter (login,
// maintenance mode, shutdown, power-on: no vCenter connection needed) are
// answered here. The port refuses connections while the server is off and
// until it has booted (host-agent-up in power.go).

import (
	"bytes"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

const envESXiPassword = "LABSIM_ESXI_PASSWORD"

type hostAgent struct {
	lab  *Lab
	s    *Server
	gate *gate
	srv  *http.Server
	URL  string
	// The host's own inventory root: ha-folder-root -> ha-datacenter -> ha-folder-host -> the host (-> its VMs).
	root types.ManagedObjectReference
	toVC map[types.ManagedObjectReference]types.ManagedObjectReference // the host's names -> the simulator's
	toHA map[types.ManagedObjectReference]types.ManagedObjectReference
}

func haMOR(kind, value string) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: kind, Value: value}
}

// startHostAgent builds the host's inventory root and serves its API behind a gate, open (the server is on).
func startHostAgent(l *Lab, s *Server) (*hostAgent, error) {
	a := &hostAgent{lab: l, s: s, toVC: map[types.ManagedObjectReference]types.ManagedObjectReference{}, toHA: map[types.ManagedObjectReference]types.ManagedObjectReference{}}
	folder := func(name string, children ...types.ManagedObjectReference) types.ManagedObjectReference {
		f := &simulator.Folder{}
		f.Self = haMOR("Folder", fmt.Sprintf("%s.%s", name, s.Name))
		f.Name, f.ChildEntity = name, children
		simulator.Map.Put(f)
		a.alias(f.Self, haMOR("Folder", name))
		return f.Self
	}
	dc := &simulator.Datacenter{}
	dc.Self = haMOR("Datacenter", "ha-datacenter."+s.Name)
	dc.Name = "ha-datacenter"
	dc.VmFolder, dc.HostFolder = folder("ha-folder-vm"), folder("ha-folder-host", s.Host)
	dc.DatastoreFolder, dc.NetworkFolder = folder("ha-folder-datastore"), folder("ha-folder-network")
	simulator.Map.Put(dc)
	a.alias(dc.Self, haMOR("Datacenter", "ha-datacenter"))
	a.root = folder("ha-folder-root", dc.Self)
	a.alias(s.Host, haMOR("HostSystem", "ha-host"))
	a.alias(newAutoStart(s), haMOR("HostAutoStartManager", "ha-autostart-mgr"))
	a.toHA[simulator.Map.Get(s.Host).(*simulator.HostSystem).Parent.Reference()] = haMOR("ComputeResource", "ha-compute-res")
	a.toHA[l.model.ServiceContent.RootFolder] = haMOR("Folder", "ha-folder-root")

	ln, err := net.Listen("tcp", net.JoinHostPort(l.opts.listen, "0"))
	if err != nil {
		return nil, err
	}
	a.srv = &http.Server{Handler: a, TLSConfig: l.model.Service.TLS.Clone()}
	go func() { _ = a.srv.ServeTLS(ln, "", "") }()
	if a.gate, err = newGate(l.opts.listen, ln.Addr().String()); err != nil {
		return nil, err
	}
	a.URL = "https://" + a.gate.addr
	return a, nil
}

func (a *hostAgent) alias(sim, ha types.ManagedObjectReference) {
	a.toHA[sim], a.toVC[ha] = ha, sim
}

func (a *hostAgent) close() {
	a.gate.shut()
	_ = a.srv.Close()
}

// A managed object reference in SOAP XML: <x type="Kind">id</x> (xsi:type is not one).
var morXML = regexp.MustCompile(`(\stype=")(\w+)("[^>]*>)([^<]+)<`)

// translate rewrites every reference in a SOAP body, one way or the other.
func translate(body []byte, to func(types.ManagedObjectReference) types.ManagedObjectReference) []byte {
	return morXML.ReplaceAllFunc(body, func(m []byte) []byte {
		g := morXML.FindSubmatch(m)
		r := to(haMOR(string(g[2]), string(g[4])))
		return []byte(fmt.Sprintf("%s%s%s%s<", g[1], r.Type, g[3], r.Value))
	})
}

// haRef is how the host names a simulator object: its VMs by number, itself ha-host.
func (a *hostAgent) haRef(r types.ManagedObjectReference) types.ManagedObjectReference {
	if h, ok := a.toHA[r]; ok {
		return h
	}
	if r.Type == "VirtualMachine" && strings.HasPrefix(r.Value, "vm-") {
		return haMOR(r.Type, strings.TrimPrefix(r.Value, "vm-"))
	}
	return r
}

func (a *hostAgent) simRef(r types.ManagedObjectReference) types.ManagedObjectReference {
	if v, ok := a.toVC[r]; ok {
		return v
	}
	if r.Type == "VirtualMachine" && !strings.HasPrefix(r.Value, "vm-") {
		return haMOR(r.Type, "vm-"+r.Value)
	}
	return r
}

var loginFields = regexp.MustCompile(`(?s)<userName[^>]*>(.*?)</userName>\s*<password[^>]*>(.*?)</password>`)

func (a *hostAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, vim25.Path+"/") { // vimServiceVersions.xml, the WSDL
		a.lab.intercept.next.ServeHTTP(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/labsim/") { // labsim's own introspection, as on vCenter's port
		a.lab.intercept.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != vim25.Path {
		http.NotFound(w, r)
		return
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r.Body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	body := translate(buf.Bytes(), a.simRef)
	name := ""
	if m := soapMethod.FindSubmatch(body); m != nil {
		name = string(m[1])
	}
	a.lab.calls.add("esxi:" + name)
	if name == "Login" {
		m := loginFields.FindSubmatch(body)
		if m == nil || string(m[1]) != "root" || html.UnescapeString(string(m[2])) != a.password() {
			writeSOAP(w, fault(&types.InvalidLogin{}))
			return
		}
		// The host's root login opens a session of the simulator's one user.
		creds := fmt.Sprintf("<userName>%s</userName><password>%s</password>", escapeXML(a.lab.opts.user), escapeXML(a.lab.opts.password))
		body = loginFields.ReplaceAll(body, []byte(creds))
	}
	if handle, ok := a.overrides()[name]; ok && a.lab.intercept.authenticated(r) {
		if method, err := simulator.UnmarshalBody(types.TypeFunc(), body); err == nil {
			res := handle(method)
			if res != nil {
				rec := httptest.NewRecorder()
				writeSOAP(rec, res)
				a.reply(w, rec, name)
				return
			}
			a.forward(w, r, body, name, a.lab.intercept.next) // the simulator itself, not vCenter's rules
			return
		}
	}
	a.forward(w, r, body, name, a.lab.intercept)
}

func (a *hostAgent) forward(w http.ResponseWriter, r *http.Request, body []byte, name string, to http.Handler) {
	req := httptest.NewRequest(http.MethodPost, vim25.Path, bytes.NewReader(body))
	req.Header = r.Header.Clone()
	rec := httptest.NewRecorder()
	to.ServeHTTP(rec, req)
	a.reply(w, rec, name)
}

// reply passes the simulator's answer on in the host's names; the service content says HostAgent.
func (a *hostAgent) reply(w http.ResponseWriter, rec *httptest.ResponseRecorder, name string) {
	body := translate(rec.Body.Bytes(), a.haRef)
	if name == "RetrieveServiceContent" {
		body = asHostAgent(body, a.lab.release)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

var (
	aboutName     = regexp.MustCompile(`<name>[^<]*</name>`)
	aboutFullName = regexp.MustCompile(`<fullName>[^<]*</fullName>`)
	aboutAPIType  = regexp.MustCompile(`<apiType>[^<]*</apiType>`)
	aboutProduct  = regexp.MustCompile(`<productLineId>[^<]*</productLineId>`)
	aboutUUID     = regexp.MustCompile(`<instanceUuid>[^<]*</instanceUuid>`)
)

func asHostAgent(body []byte, rel release) []byte {
	about := func(re *regexp.Regexp, text string) { body = re.ReplaceAll(body, []byte(text)) }
	about(aboutAPIType, "<apiType>HostAgent</apiType>")
	about(aboutName, "<name>VMware ESXi</name>")
	about(aboutFullName, fmt.Sprintf("<fullName>VMware ESXi %s build-labsim</fullName>", rel.version))
	about(aboutProduct, "<productLineId>embeddedEsx</productLineId>")
	about(aboutUUID, "")
	return body
}

func escapeXML(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// overrides: what a host answers itself, with no vCenter in the way.
func (a *hostAgent) overrides() map[string]override {
	return map[string]override{
		"EnterMaintenanceMode_Task": a.enterMaintenance,
		"ExitMaintenanceMode_Task":  a.exitMaintenance,
		"ShutdownHost_Task":         a.shutdownHost,
		"PowerOnVM_Task":            a.powerOnVM,
	}
}

func (a *hostAgent) notMine(this types.ManagedObjectReference) types.BaseMethodFault {
	if this != a.s.Host {
		return &types.ManagedObjectNotFound{Obj: a.haRef(this)}
	}
	return nil
}

// enterMaintenance: a host refuses while a VM runs on it (no DRS to move them).
func (a *hostAgent) enterMaintenance(m *simulator.Method) soap.HasFault {
	if f := a.notMine(m.This); f != nil {
		return fault(f)
	}
	for _, vm := range a.lab.vmsOn(a.s) {
		if vmPower(vm) == types.VirtualMachinePowerStatePoweredOn {
			return fault(&types.InvalidState{})
		}
	}
	req := m.Body.(*types.EnterMaintenanceMode_Task)
	task := a.lab.maintenanceTask(m.This, "enterMaintenanceMode", true, a.lab.vsan.maintenanceRefusal(a.s, req.MaintenanceSpec))
	return &methods.EnterMaintenanceMode_TaskBody{Res: &types.EnterMaintenanceMode_TaskResponse{Returnval: task}}
}

func (a *hostAgent) exitMaintenance(m *simulator.Method) soap.HasFault {
	if f := a.notMine(m.This); f != nil {
		return fault(f)
	}
	task := a.lab.maintenanceTask(m.This, "exitMaintenanceMode", false, nil)
	return &methods.ExitMaintenanceMode_TaskBody{Res: &types.ExitMaintenanceMode_TaskResponse{Returnval: task}}
}

// shutdownHost: outside maintenance mode only with force, as ESXi.
func (a *hostAgent) shutdownHost(m *simulator.Method) soap.HasFault {
	if f := a.notMine(m.This); f != nil {
		return fault(f)
	}
	req := m.Body.(*types.ShutdownHost_Task)
	_, maintenance := a.lab.hostState(a.s)
	task := runTask(simulator.Map.Get(m.This), "shutdownHost", func() types.BaseMethodFault {
		if !maintenance && !req.Force {
			return &types.InvalidState{}
		}
		a.lab.shutdown(a.s, false)
		return nil
	})
	return &methods.ShutdownHost_TaskBody{Res: &types.ShutdownHost_TaskResponse{Returnval: task}}
}

// powerOnVM: one of this host's VMs, refused in maintenance mode; the simulator
// itself then powers it on (nil: no vCenter connection check in the way).
func (a *hostAgent) powerOnVM(m *simulator.Method) soap.HasFault {
	t, ok := a.lab.traits(m.This)
	if !ok || t.server != a.s {
		return fault(&types.ManagedObjectNotFound{Obj: a.haRef(m.This)})
	}
	if _, maintenance := a.lab.hostState(a.s); maintenance {
		return fault(&types.InvalidState{})
	}
	return nil
}

// password is the host's root password: its own from --esxi-passwords, else --esxi-password.
func (a *hostAgent) password() string {
	if own, err := pairs(a.lab.opts.esxiPasswords); err == nil {
		if pw, ok := own[a.s.Name]; ok {
			return pw
		}
	}
	return a.lab.opts.esxiPassword
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// callCounter counts SOAP calls per method, for the benchmarks:
// GET /labsim/soap-calls returns them as JSON, DELETE returns and resets them;
// GET /labsim/first-calls returns when each method was first called since (unix seconds).
type callCounter struct {
	mu     sync.Mutex
	counts map[string]int
	first  map[string]float64
}

func newCallCounter() *callCounter {
	return &callCounter{counts: map[string]int{}, first: map[string]float64{}}
}

func (c *callCounter) add(method string) {
	c.mu.Lock()
	c.counts[method]++
	if _, seen := c.first[method]; !seen {
		c.first[method] = float64(time.Now().UnixNano()) / 1e9
	}
	c.mu.Unlock()
}

func (c *callCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/labsim/first-calls" {
		_ = json.NewEncoder(w).Encode(c.first)
		return
	}
	_ = json.NewEncoder(w).Encode(c.counts) // DELETE answers the counts it clears
	if r.Method == http.MethodDelete {
		c.counts = map[string]int{}
		c.first = map[string]float64{}
	}
}

var soapMethod = regexp.MustCompile(`<(?:\w+:)?Body[^>]*>\s*<(?:\w+:)?(\w+)[\s>/]`)

func (i *interceptor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/labsim/soap-calls" || r.URL.Path == "/labsim/first-calls":
		i.lab.calls.ServeHTTP(w, r)
		return
	case r.URL.Path == "/labsim/faults":
		i.lab.faults.ServeHTTP(w, r)
		return
	case r.URL.Path == "/labsim/bmc-counts":
		i.lab.serveBMCCounts(w, r)
		return
	case r.URL.Path == "/labsim/physical":
		i.lab.servePhysical(w)
		return
	case r.URL.Path == "/labsim/cpu":
		i.lab.cpu.ServeHTTP(w, r)
		return
	case r.URL.Path == "/labsim/os-shutdown" && i.lab.storageOS != nil:
		i.lab.storageOS.ServeHTTP(w, r, i.lab.storage)
		return
	case r.URL.Path == "/labsim/wol" && i.lab.wol != nil:
		i.lab.wol.ServeHTTP(w, r)
		return
	case r.Method == http.MethodPost && r.URL.Path == "/vsanHealth":
		i.lab.vsan.ServeHTTP(i, w, r)
		return
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/cis/session") && r.URL.Query().Get("~action") == "":
		// The vAPI simulator takes any user and password: check them as vCenter would.
		if u, p, ok := r.BasicAuth(); !ok || u != i.lab.opts.user || p != i.lab.opts.password {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	case r.Method == http.MethodPost && r.URL.Path == vim25.Path && i.lab.faults.get("vcenter:vpxd") == "restart":
		i.lab.restarts.dead(r) // a session seen now is one the restart ends
		dropConnection(w)
		return
	case r.Method == http.MethodPost && r.URL.Path == vim25.Path && i.lab.restarts.dead(r):
		if !loginCall(r) {
			notAuthenticated(w)
			return
		}
		r.Header.Del("Cookie") // vpxd no longer knows it: the login starts a new session
		i.ServeHTTP(w, r)
		return
	case r.Method == http.MethodPost && r.URL.Path == vim25.Path:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if i.lab.opts.latency > 0 { // a LAN round trip plus vpxd's own work, per call
			time.Sleep(i.lab.opts.latency)
		}
		if m := soapMethod.FindSubmatch(body); m != nil {
			name := string(m[1])
			i.lab.calls.add(name)
			if name == "WaitForUpdatesEx" && i.lab.faults.get("feed:vcenter") == "drop" {
				dropConnection(w) // the change feed's connection cut, as a network or vpxd restart cuts it (faults.go)
				return
			}
			if handle, ok := i.lab.overrides()[name]; ok && i.authenticated(r) {
				method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
				if err == nil && name == "ReconfigureComputeResource_Task" {
					i.lab.reconfigureSystemVMs(method, body) // a field the simulator's decoder drops
				}
				if err == nil {
					if res := handle(method); res != nil {
						writeSOAP(w, res)
						return
					}
				}
			}
		}
	}
	i.next.ServeHTTP(w, r)
}

// authenticated asks the simulator itself whether the request's session is
// valid, with a call that needs one; unauthenticated calls pass through and
// get the simulator's own NotAuthenticated fault.
func (i *interceptor) authenticated(r *http.Request) bool {
	probe := `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><CurrentTime xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></CurrentTime></soapenv:Body></soapenv:Envelope>`
	req := httptest.NewRequest(http.MethodPost, vim25.Path, strings.NewReader(probe))
	for _, c := range r.Cookies() {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	i.next.ServeHTTP(rec, req)
	return rec.Code == http.StatusOK
}

// override answers a SOAP call itself, or returns nil to let the simulator answer.
type override func(*simulator.Method) soap.HasFault

// overrides are the SOAP methods labsim answers itself: the ones the
// simulator lacks (host shutdown and reboot) or does not do as vCenter does
// (its change feed: feed.go).
func (l *Lab) overrides() map[string]override {
	m := map[string]override{
		"ShutdownHost_Task":               l.shutdownHostTask,
		"RebootHost_Task":                 l.rebootHostTask,
		"ShutdownGuest":                   l.shutdownGuest,
		"RebootGuest":                     l.rebootGuest,
		"PowerOnVM_Task":                  l.powerOnVMTask,
		"EnterMaintenanceMode_Task":       l.enterMaintenanceModeTask,
		"ExitMaintenanceMode_Task":        l.exitMaintenanceModeTask,
		"PowerOnMultiVM_Task":             l.powerOnMultiVMTask,
		"ReconfigureComputeResource_Task": l.reconfigureCluster,
	}
	if l.feed != nil {
		for name, handle := range l.feed.overrides() {
			m[name] = handle
		}
	}
	if l.vcls != nil {
		m["UpdateOptions"] = l.vcls.updateOptions
		for _, name := range []string{"RelocateVM_Task", "MigrateVM_Task", "ReconfigVM_Task"} {
			m[name] = l.refuseOnAgent
		}
	}
	if l.opts.noPowerOnMulti {
		m["PowerOnMultiVM_Task"] = func(*simulator.Method) soap.HasFault { return fault(&types.NotImplemented{}) }
	}
	if l.opts.denyPrivileges != "" {
		m["HasPrivilegeOnEntities"] = l.hasPrivilegeOnEntities
		for name := range needs {
			m[name] = l.withPrivilege(name, m[name])
		}
	}
	if l.opts.noHostShutdown { // the simulator itself answers MethodNotFound
		delete(m, "ShutdownHost_Task")
		delete(m, "RebootHost_Task")
	}
	return m
}

func fault(f types.BaseMethodFault) soap.HasFault {
	return &faultBody{fault: simulator.Fault("", f)}
}

type faultBody struct{ fault *soap.Fault }

func (b *faultBody) Fault() *soap.Fault { return b.fault }

func (l *Lab) hostTask(m *simulator.Method, force bool, reboot bool, name string) (types.ManagedObjectReference, types.BaseMethodFault) {
	s, ok := l.byHost[m.This]
	if !ok {
		return types.ManagedObjectReference{}, &types.ManagedObjectNotFound{Obj: m.This}
	}
	conn, maintenance := l.hostState(s)
	if conn != types.HostSystemConnectionStateConnected {
		return types.ManagedObjectReference{}, &types.HostNotConnected{}
	}
	host := simulator.Map.Get(m.This)
	task := simulator.CreateTask(host, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		if !maintenance && !force {
			return nil, &types.InvalidState{}
		}
		l.shutdown(s, reboot)
		return nil, nil
	})
	return task.Run(), nil
}

func (l *Lab) shutdownHostTask(m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.ShutdownHost_Task)
	ref, f := l.hostTask(m, req.Force, false, "shutdownHost")
	if f != nil {
		return fault(f)
	}
	return &methods.ShutdownHost_TaskBody{Res: &types.ShutdownHost_TaskResponse{Returnval: ref}}
}

func (l *Lab) rebootHostTask(m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.RebootHost_Task)
	ref, f := l.hostTask(m, req.Force, true, "rebootHost")
	if f != nil {
		return fault(f)
	}
	return &methods.RebootHost_TaskBody{Res: &types.RebootHost_TaskResponse{Returnval: ref}}
}

// guestRequest checks what vCenter checks before passing a request to the
// guest's tools: the VM is on and its tools are running.
func (l *Lab) guestRequest(ref types.ManagedObjectReference) (*vmTraits, types.BaseMethodFault) {
	t, ok := l.traits(ref)
	if !ok {
		return nil, &types.ManagedObjectNotFound{Obj: ref}
	}
	vm := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	var state types.VirtualMachinePowerState
	var tools string
	simulator.Map.WithLock(vm, func() { state, tools = vm.Runtime.PowerState, vm.Guest.ToolsRunningStatus })
	if state != types.VirtualMachinePowerStatePoweredOn {
		return nil, &types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOn, ExistingState: state}
	}
	if tools != string(types.VirtualMachineToolsRunningStatusGuestToolsRunning) {
		return nil, &types.ToolsUnavailable{}
	}
	return t, nil
}

// shutdownGuest: the guest powers off after --guest-shutdown-delay; a hung
// guest accepts the request and never does.
func (l *Lab) shutdownGuest(m *simulator.Method) soap.HasFault {
	t, f := l.guestRequest(m.This)
	if f != nil {
		return fault(f)
	}
	if !t.hung && l.faults.get("vm:"+t.name) != "ignore-shutdown" {
		ref := m.This
		l.afterGuestDelay(ref, func() { l.setVMPower(ref, types.VirtualMachinePowerStatePoweredOff) })
	}
	return &methods.ShutdownGuestBody{Res: &types.ShutdownGuestResponse{}}
}

func (l *Lab) rebootGuest(m *simulator.Method) soap.HasFault {
	t, f := l.guestRequest(m.This)
	if f != nil {
		return fault(f)
	}
	if !t.hung {
		ref := m.This
		go l.setTools(ref, false)
		l.afterGuestDelay(ref, func() { l.setTools(ref, true) })
	}
	return &methods.RebootGuestBody{Res: &types.RebootGuestResponse{}}
}

func (l *Lab) afterGuestDelay(ref types.ManagedObjectReference, f func()) {
	time.AfterFunc(l.guestDelay(ref), f)
}

// powerOnVMTask refuses, as vCenter does, a VM whose host is not connected or
// is in maintenance mode; otherwise the simulator powers it on.
func (l *Lab) powerOnVMTask(m *simulator.Method) soap.HasFault {
	if f := l.powerOnRefusal(m.This); f != nil {
		return fault(f)
	}
	return nil
}

func (l *Lab) powerOnRefusal(vm types.ManagedObjectReference) types.BaseMethodFault {
	t, ok := l.traits(vm)
	if !ok {
		return nil
	}
	conn, maintenance := l.hostState(t.server)
	switch {
	case conn != types.HostSystemConnectionStateConnected:
		return &types.InvalidHostConnectionState{}
	case maintenance:
		return &types.InvalidState{}
	}
	return l.vsan.powerOnRefusal(t.server)
}

// writeSOAP encodes a response as the simulator's ServeSDK does.
func writeSOAP(w http.ResponseWriter, res soap.HasFault) {
	var body interface{}
	if f := res.Fault(); f != nil {
		w.WriteHeader(http.StatusInternalServerError)
		body = &soapFault{Code: f.Code, String: f.String, Detail: struct {
			Fault *faultDetail
		}{&faultDetail{f.Detail.Fault}}}
	} else {
		body = &soapResponse{res}
	}
	var out bytes.Buffer
	fmt.Fprint(&out, xml.Header)
	e := xml.NewEncoder(&out)
	_ = e.Encode(&soapEnvelope{
		Enc: "http://schemas.xmlsoap.org/soap/encoding/", Env: "http://schemas.xmlsoap.org/soap/envelope/",
		XSD: "http://www.w3.org/2001/XMLSchema", XSI: "http://www.w3.org/2001/XMLSchema-instance",
		Body: body,
	})
	_ = e.Flush()
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(out.Bytes())
}

type soapEnvelope struct {
	XMLName xml.Name    `xml:"soapenv:Envelope"`
	Enc     string      `xml:"xmlns:soapenc,attr"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

type soapFault struct {
	XMLName xml.Name `xml:"soapenv:Fault"`
	Code    string   `xml:"faultcode"`
	String  string   `xml:"faultstring"`
	Detail  struct {
		Fault *faultDetail
	} `xml:"detail"`
}

type faultDetail struct{ Fault types.AnyType }

func (d *faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := reflect.TypeOf(d.Fault).Elem().Name()
	start.Name.Local = kind + "Fault"
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:" + vim25.Namespace},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}

type soapResponse struct{ body soap.HasFault }

func (r *soapResponse) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	val := reflect.ValueOf(r.body).Elem().FieldByName("Res")
	res := xml.StartElement{Name: xml.Name{Space: "urn:" + vim25.Namespace, Local: val.Elem().Type().Name()}}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if err := e.EncodeElement(val.Interface(), res); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

// runTask runs fn as a vCenter task on obj, as simulator.Task.Run does, but a
// failed task carries its fault's own message (the simulator's is the Go type name).
func runTask(obj mo.Reference, name string, fn func() types.BaseMethodFault) types.ManagedObjectReference {
	task := simulator.CreateTask(obj, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) { return nil, nil })
	simulator.Map.Update(task, []types.PropertyChange{{Name: "info.startTime", Val: time.Now()}, {Name: "info.state", Val: types.TaskInfoStateRunning}})
	finish := func() {
		state, failure := types.TaskInfoStateSuccess, interface{}(nil)
		if f := fn(); f != nil {
			msg := fmt.Sprintf("%T", f)
			if m := f.GetMethodFault().FaultMessage; len(m) > 0 {
				msg = m[0].Message
			}
			state, failure = types.TaskInfoStateError, types.LocalizedMethodFault{Fault: f, LocalizedMessage: msg}
		}
		simulator.Map.Update(task, []types.PropertyChange{
			{Name: "info.completeTime", Val: time.Now()}, {Name: "info.state", Val: state}, {Name: "info.error", Val: failure},
		})
	}
	if labFaults.get("task:"+name) == "hang" { // a task that never completes (faults.go): it runs once the fault is off
		go func() {
			for labFaults.get("task:"+name) == "hang" {
				time.Sleep(50 * time.Millisecond)
			}
			finish()
		}()
		return task.Self
	}
	finish()
	return task.Self
}

// dropConnection closes the client's connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	w.WriteHeader(http.StatusServiceUnavailable)
}

// loginCall: a request that makes a new session (it may carry the old, dead cookie).
func loginCall(r *http.Request) bool {
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return false
	}
	m := soapMethod.FindSubmatch(body)
	return m != nil && (string(m[1]) == "Login" || string(m[1]) == "RetrieveServiceContent" || string(m[1]) == "Logout")
}

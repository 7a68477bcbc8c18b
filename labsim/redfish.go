package main

import (
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/vmware/govmomi/vim25/types"
)

// bmcServer is an iDRAC-shaped Redfish service for one server: the paths,
// reset types, auth (basic and X-Auth-Token sessions) and 409s of an iDRAC.
// It powers its server through machines: the vSphere lab's or the Proxmox lab's.
type bmcServer struct {
	lab      machines
	server   *Server
	srv      *http.Server
	URL      string
	mu       sync.Mutex
	sessions map[string]bool
	counts   bmcCounts // what its clients cost it (bmc_counts.go)
}

const (
	systemPath  = "/redfish/v1/Systems/System.Embedded.1"
	managerPath = "/redfish/v1/Managers/iDRAC.Embedded.1"
	chassisPath = "/redfish/v1/Chassis/System.Embedded.1"
	sessionsURL = "/redfish/v1/SessionService/Sessions"
)

var resetTypes = []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "PushPowerButton", "PowerCycle"}

func startBMC(l machines, s *Server, conf *tls.Config, listen string) (*bmcServer, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(listen, "0"))
	if err != nil {
		return nil, err
	}
	b := &bmcServer{lab: l, server: s, sessions: map[string]bool{}}
	b.URL = "https://" + ln.Addr().String()
	b.srv = &http.Server{Handler: b, TLSConfig: conf.Clone(), ConnState: b.counts.connState}
	go func() { _ = b.srv.ServeTLS(ln, "", "") }()
	return b, nil
}

func (b *bmcServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.lab.bmcFault(b.server.Name, w, r) {
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if path == "/redfish/v1" || path == "/redfish" {
		b.json(w, http.StatusOK, b.serviceRoot()) // unauthenticated, as the standard says
		return
	}
	if path == sessionsURL && r.Method == http.MethodPost {
		b.login(w, r)
		return
	}
	if !b.authorized(r) {
		b.error(w, http.StatusUnauthorized, "Base.1.12.NoValidSession", "There is no valid session established with the implementation.")
		return
	}
	switch {
	case r.Method == http.MethodDelete && strings.HasPrefix(path, sessionsURL+"/"):
		b.mu.Lock()
		delete(b.sessions, strings.TrimPrefix(path, sessionsURL+"/"))
		b.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && path == systemPath+"/Actions/ComputerSystem.Reset":
		b.reset(w, r)
	case r.Method != http.MethodGet:
		b.error(w, http.StatusMethodNotAllowed, "Base.1.12.OperationNotAllowed", "The operation is not allowed.")
	default:
		if path == systemPath {
			b.counts.add(&b.counts.Reads)
		}
		doc, ok := b.resource(path)
		if !ok {
			b.error(w, http.StatusNotFound, "Base.1.12.ResourceMissingAtURI", "The resource at the URI "+path+" was not found.")
			return
		}
		b.json(w, http.StatusOK, doc)
	}
}

func (b *bmcServer) authorized(r *http.Request) bool {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.sessions[tok]
	}
	if _, _, basic := b.lab.bmcLogin(); !basic {
		return false // sessions only, as BMCs configured so (and some firmware) answer
	}
	u, p, ok := r.BasicAuth()
	return ok && b.credentialsOK(u, p)
}

func (b *bmcServer) credentialsOK(user, pass string) bool {
	wantUser, wantPass, _ := b.lab.bmcLogin()
	return subtle.ConstantTimeCompare([]byte(user), []byte(wantUser)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(wantPass)) == 1
}

func (b *bmcServer) login(w http.ResponseWriter, r *http.Request) {
	var req struct{ UserName, Password string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !b.credentialsOK(req.UserName, req.Password) {
		b.error(w, http.StatusUnauthorized, "Base.1.12.NoValidSession", "Unable to create a session: invalid user name or password.")
		return
	}
	tok := randomSecret()
	b.mu.Lock()
	b.sessions[tok] = true
	b.mu.Unlock()
	b.counts.add(&b.counts.Sessions)
	loc := sessionsURL + "/" + tok
	w.Header().Set("X-Auth-Token", tok)
	w.Header().Set("Location", loc)
	b.json(w, http.StatusCreated, map[string]interface{}{
		"@odata.id": loc, "@odata.type": "#Session.v1_3_0.Session", "Id": tok, "Name": "User Session", "UserName": req.UserName,
	})
}

func (b *bmcServer) reset(w http.ResponseWriter, r *http.Request) {
	var req struct{ ResetType string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !contains(resetTypes, req.ResetType) {
		b.error(w, http.StatusBadRequest, "Base.1.12.ActionParameterValueNotInList",
			fmt.Sprintf("The value %q for the parameter ResetType is not in the list of acceptable values.", req.ResetType))
		return
	}
	l, s := b.lab, b.server
	on := s.powerState() == "On"
	switch req.ResetType {
	case "On":
		if on || !l.powerOn(s) {
			b.idracError(w, "IDRAC.2.8.PSU501", "Server is already powered ON.")
			return
		}
	case "ForceOff", "GracefulShutdown", "PushPowerButton":
		if !on {
			if req.ResetType == "PushPowerButton" { // a press when off powers on
				l.powerOn(s)
				break
			}
			b.idracError(w, "IDRAC.2.8.PSU502", "Server is already powered OFF.")
			return
		}
		if req.ResetType == "ForceOff" {
			l.powerOff(s)
		} else {
			l.shutdown(s, false) // ESXi shuts down on an ACPI power-button press
		}
	case "GracefulRestart":
		if !on {
			b.idracError(w, "IDRAC.2.8.PSU502", "Server is already powered OFF.")
			return
		}
		l.shutdown(s, true)
	case "ForceRestart", "PowerCycle":
		l.powerOff(s)
		l.powerOn(s)
	}
	w.WriteHeader(http.StatusNoContent)
}

// idracError is what an iDRAC answers to a power change it is already in.
func (b *bmcServer) idracError(w http.ResponseWriter, id, msg string) {
	b.json(w, http.StatusConflict, map[string]interface{}{"error": map[string]interface{}{
		"code": "Base.1.12.GeneralError", "message": "A general error has occurred. See ExtendedInfo for more information",
		"@Message.ExtendedInfo": []map[string]string{{"MessageId": id, "Message": msg, "Severity": "Informational", "Resolution": "No response action is required."}},
	}})
}

func (b *bmcServer) error(w http.ResponseWriter, status int, id, msg string) {
	b.json(w, status, map[string]interface{}{"error": map[string]interface{}{
		"code": id, "message": msg,
		"@Message.ExtendedInfo": []map[string]string{{"MessageId": id, "Message": msg, "Severity": "Critical"}},
	}})
}

func (b *bmcServer) json(w http.ResponseWriter, status int, doc interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(doc)
}

func ref(path string) map[string]string { return map[string]string{"@odata.id": path} }

func collection(path, typ string, members ...string) map[string]interface{} {
	m := []map[string]string{} // an empty collection's Members is [], never null
	for _, p := range members {
		m = append(m, ref(p))
	}
	return map[string]interface{}{"@odata.id": path, "@odata.type": typ, "Name": typ, "Members": m, "Members@odata.count": len(m)}
}

func (b *bmcServer) serviceRoot() map[string]interface{} {
	return map[string]interface{}{
		"@odata.id": "/redfish/v1", "@odata.type": "#ServiceRoot.v1_6_0.ServiceRoot", "Id": "RootService",
		"Name": "Root Service", "RedfishVersion": "1.11.0", "Vendor": "Dell", "Product": "Integrated Dell Remote Access Controller",
		"Systems": ref("/redfish/v1/Systems"), "Managers": ref("/redfish/v1/Managers"), "Chassis": ref("/redfish/v1/Chassis"),
		"SessionService": ref("/redfish/v1/SessionService"), "Links": map[string]interface{}{"Sessions": ref(sessionsURL)},
	}
}

func (b *bmcServer) resource(path string) (interface{}, bool) {
	s := b.server
	power := s.powerState()
	switch path {
	case "/redfish/v1/SessionService":
		return map[string]interface{}{"@odata.id": path, "@odata.type": "#SessionService.v1_1_8.SessionService", "Id": "SessionService", "ServiceEnabled": true, "SessionTimeout": 1800, "Sessions": ref(sessionsURL)}, true
	case sessionsURL: // the open sessions, so a client's clean-up can be read back
		b.mu.Lock()
		open := make([]string, 0, len(b.sessions))
		for tok := range b.sessions {
			open = append(open, sessionsURL+"/"+tok)
		}
		b.mu.Unlock()
		sort.Strings(open)
		return collection(path, "#SessionCollection.SessionCollection", open...), true
	case "/redfish/v1/Systems":
		return collection(path, "#ComputerSystemCollection.ComputerSystemCollection", systemPath), true
	case systemPath:
		return map[string]interface{}{
			"@odata.id": path, "@odata.type": "#ComputerSystem.v1_12_0.ComputerSystem", "Id": "System.Embedded.1",
			"Name": "System", "Manufacturer": "Dell Inc.", "Model": "PowerEdge R640", "SKU": s.ServiceTag,
			"SerialNumber": "CN7475" + s.ServiceTag, "HostName": s.FQDN, "BiosVersion": "2.19.1", "PowerState": power,
			"Status":     map[string]string{"Health": "OK", "State": "Enabled"},
			"SystemType": "Physical", "UUID": "4c4c4544-0000-1000-8000-" + strings.ToLower(fmt.Sprintf("%012s", s.ServiceTag)),
			"Actions": map[string]interface{}{"#ComputerSystem.Reset": map[string]interface{}{
				"target": systemPath + "/Actions/ComputerSystem.Reset", "ResetType@Redfish.AllowableValues": resetTypes}},
			"Links": map[string]interface{}{"Chassis": []map[string]string{ref(chassisPath)}, "ManagedBy": []map[string]string{ref(managerPath)}},
		}, true
	case "/redfish/v1/Managers":
		return collection(path, "#ManagerCollection.ManagerCollection", managerPath), true
	case managerPath:
		return map[string]interface{}{
			"@odata.id": path, "@odata.type": "#Manager.v1_9_0.Manager", "Id": "iDRAC.Embedded.1", "Name": "Manager",
			"ManagerType": "BMC", "Model": "14G Monolithic", "FirmwareVersion": "6.10.30.00", "PowerState": "On",
		}, true
	case "/redfish/v1/Chassis":
		return collection(path, "#ChassisCollection.ChassisCollection", chassisPath), true
	case chassisPath:
		chassis := map[string]interface{}{
			"@odata.id": path, "@odata.type": "#Chassis.v1_11_0.Chassis", "Id": "System.Embedded.1", "Name": "Computer System Chassis",
			"ChassisType": "RackMount", "Manufacturer": "Dell Inc.", "Model": "PowerEdge R640", "SKU": s.ServiceTag,
			"PowerState": power, "Power": ref(chassisPath + "/Power"),
		}
		if !b.reportsWatts() {
			delete(chassis, "Power")
		}
		return chassis, true
	case chassisPath + "/Power":
		if !b.reportsWatts() { // an older BMC without power telemetry
			return nil, false
		}
		watts := b.watts()
		return map[string]interface{}{
			"@odata.id": path, "@odata.type": "#Power.v1_6_0.Power", "Id": "Power", "Name": "Power",
			"PowerControl": []map[string]interface{}{{
				"@odata.id": path + "#/PowerControl/0", "MemberId": "PowerControl", "Name": "System Power Control",
				"PowerConsumedWatts": watts, "PowerCapacityWatts": 750,
				"PowerMetrics": map[string]interface{}{"AverageConsumedWatts": watts, "IntervalInMin": 1},
			}},
		}, true
	}
	return nil, false
}

func (b *bmcServer) watts() int { return b.lab.serverWatts(b.server) }

// reportsWatts: an iDRAC metered by a plug instead (--meter-hosts) publishes no power draw.
func (b *bmcServer) reportsWatts() bool { return b.server.meter == nil }

// serverWatts: a PowerEdge idles near 70 W; each running VM adds a little; off is off.
func (l *Lab) serverWatts(s *Server) int {
	if s.powerState() != "On" {
		return 0
	}
	running := 0
	for _, vm := range l.vmsOn(s) {
		if vmPower(vm) == types.VirtualMachinePowerStatePoweredOn {
			running++
		}
	}
	return 70 + 3*running
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

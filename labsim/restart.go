package main

// A vCenter restart, switched at run time (faults.go): POST /labsim/faults?vcenter=vpxd&mode=restart
// takes the SOAP endpoint down (every connection cut) until mode=none; from then, every session
// that existed before the restart is gone, as vpxd's are after a restart: its calls are answered
// NotAuthenticated until the client logs in again (a new session cookie).

import (
	"net/http"
	"sync"
	"time"
)

const sessionCookie = "vmware_soap_session"

type restarts struct {
	mu    sync.Mutex
	seen  map[string]time.Time // session cookie -> when labsim first saw it
	since time.Time            // the last restart began; zero: never
}

// note records a request's session cookie; dead says whether that session predates the last restart.
func (r *restarts) dead(req *http.Request) bool {
	c, err := req.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]time.Time{}
	}
	first, ok := r.seen[c.Value]
	if !ok {
		r.seen[c.Value] = time.Now()
		return false
	}
	return !r.since.IsZero() && first.Before(r.since)
}

func (r *restarts) begin() {
	r.mu.Lock()
	r.since = time.Now()
	r.mu.Unlock()
}

// notAuthenticated is vpxd's answer to a call on a session it no longer has.
func notAuthenticated(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ` +
		`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode>` +
		`<faultstring>The session is not authenticated.</faultstring><detail><NotAuthenticatedFault xmlns="urn:vim25" xsi:type="NotAuthenticated">` +
		`<object type="Folder">group-d1</object><privilegeId>System.View</privilegeId></NotAuthenticatedFault></detail>` +
		`</soapenv:Fault></soapenv:Body></soapenv:Envelope>`))
}

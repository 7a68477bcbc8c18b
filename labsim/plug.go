package main

// Smart plugs as a server's power (--plug-hosts NAME[=shelly|tasmota],...):
// each such server has no BMC; a plug on its own HTTP port switches its power.
// Relay off cuts the server off at once; relay on powers it up (firmware set to
// power on after AC loss). The draw is the iDRAC model's, a standby draw while
// the relay is on and the server off (ESXi shut down), 0 with the relay off.
// Shelly Gen2 RPC (Switch.GetStatus, Switch.Set, Shelly.GetDeviceInfo; digest
// auth, SHA-256, user admin) or Tasmota (cm?cmnd=Power|Power On|Power Off|Status 10;
// user and password as query parameters), as their documentation shows them.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

const standbyWatts = 6.0

type plugServer struct {
	lab    *Lab
	server *Server
	kind   string // shelly | tasmota
	srv    *http.Server
	URL    string

	mu     sync.Mutex
	relay  bool
	nonces map[string]bool
}

func startPlug(l *Lab, s *Server, kind string) (*plugServer, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(l.opts.listen, "0"))
	if err != nil {
		return nil, err
	}
	p := &plugServer{lab: l, server: s, kind: kind, relay: true, nonces: map[string]bool{}}
	p.URL = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: p}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// setRelay switches the plug; answers whether it was on.
func (p *plugServer) setRelay(on bool) bool {
	p.mu.Lock()
	was := p.relay
	p.relay = on
	p.mu.Unlock()
	switch {
	case was && !on:
		p.lab.powerOff(p.server) // the power is cut
	case !was && on:
		p.lab.powerOn(p.server) // power on after AC loss
	}
	return was
}

func (p *plugServer) draw() (relay bool, watts float64) {
	p.mu.Lock()
	relay = p.relay
	p.mu.Unlock()
	switch {
	case !relay:
		return false, 0
	case p.server.powerState() == "On":
		return true, float64(p.lab.serverWatts(p.server))
	default:
		return true, standbyWatts
	}
}

func (p *plugServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.kind == "tasmota" {
		p.tasmota(w, r)
		return
	}
	p.shelly(w, r)
}

// -- Shelly Gen2 ----------------------------------------------------------------
func (p *plugServer) deviceID() string {
	return "shellyplusplugs-" + strings.ReplaceAll(strings.ToLower(p.server.MAC.String()), ":", "")
}

func (p *plugServer) shelly(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/rpc/")
	if method == "Shelly.GetDeviceInfo" { // unauthenticated, as on the device
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"id": p.deviceID(), "mac": strings.ToUpper(strings.ReplaceAll(p.server.MAC.String(), ":", "")), "model": "SNPL-00112EU",
			"gen": 2, "fw_id": "20231107-164738/1.0.8-g8c7bb8d", "ver": "1.0.8", "app": "PlusPlugS", "auth_en": true, "auth_domain": p.deviceID(),
		})
		return
	}
	if !p.digestOK(r) {
		p.challenge(w)
		return
	}
	switch method {
	case "Switch.GetStatus":
		relay, watts := p.draw()
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"id": 0, "source": "http", "output": relay, "apower": watts, "voltage": 230.4, "current": watts / 230.4,
			"aenergy": map[string]interface{}{"total": 0.0}, "temperature": map[string]interface{}{"tC": 41.2, "tF": 106.2},
		})
	case "Switch.Set":
		on := r.URL.Query().Get("on") == "true"
		writeJSON(w, http.StatusOK, map[string]interface{}{"was_on": p.setRelay(on)})
	default:
		writeJSON(w, http.StatusNotFound, map[string]interface{}{"code": 404, "message": "No handler for " + method})
	}
}

func (p *plugServer) challenge(w http.ResponseWriter) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	nonce := hex.EncodeToString(b)
	p.mu.Lock()
	p.nonces[nonce] = true
	p.mu.Unlock()
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest qop="auth", realm="%s", nonce="%s", algorithm=SHA-256`, p.deviceID(), nonce))
	writeJSON(w, http.StatusUnauthorized, map[string]interface{}{"code": 401, "message": "Unauthorized"})
}

// digestOK checks an RFC 7616 SHA-256 digest with user admin and labsim's plug password.
func (p *plugServer) digestOK(r *http.Request) bool {
	header := r.Header.Get("Authorization")
	if !strings.HasPrefix(header, "Digest ") {
		return false
	}
	f := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(header, "Digest "), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			f[k] = strings.Trim(v, `"`)
		}
	}
	p.mu.Lock()
	known := p.nonces[f["nonce"]]
	p.mu.Unlock()
	if !known || f["username"] != "admin" {
		return false
	}
	h := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := h("admin:" + p.deviceID() + ":" + p.lab.opts.bmcPassword)
	ha2 := h(r.Method + ":" + f["uri"])
	return f["response"] == h(strings.Join([]string{ha1, f["nonce"], f["nc"], f["cnonce"], f["qop"], ha2}, ":"))
}

// -- Tasmota --------------------------------------------------------------------
func (p *plugServer) tasmota(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.URL.Path != "/cm" {
		http.NotFound(w, r)
		return
	}
	if q.Get("user") != "admin" || q.Get("password") != p.lab.opts.bmcPassword {
		writeJSON(w, http.StatusUnauthorized, map[string]interface{}{"WARNING": "Need user=<username>&password=<password>"})
		return
	}
	state := func(on bool) string {
		if on {
			return "ON"
		}
		return "OFF"
	}
	switch cmnd := strings.ToLower(strings.Join(strings.Fields(q.Get("cmnd")), " ")); cmnd {
	case "power", "power1":
		relay, _ := p.draw()
		writeJSON(w, http.StatusOK, map[string]interface{}{"POWER": state(relay)})
	case "power on", "power1 on", "power off", "power1 off":
		on := strings.HasSuffix(cmnd, " on")
		p.setRelay(on)
		writeJSON(w, http.StatusOK, map[string]interface{}{"POWER": state(on)})
	case "status 10":
		_, watts := p.draw()
		writeJSON(w, http.StatusOK, map[string]interface{}{"StatusSNS": map[string]interface{}{
			"Time":   time.Now().UTC().Format("2006-01-02T15:04:05"),
			"ENERGY": map[string]interface{}{"Total": 0.0, "Power": watts, "Voltage": 230, "Current": watts / 230, "Factor": 0.95},
		}})
	case "status 0", "status":
		writeJSON(w, http.StatusOK, map[string]interface{}{"Status": map[string]interface{}{"DeviceName": "Tasmota " + p.server.Name, "Module": 0},
			"StatusFWR": map[string]interface{}{"Version": "13.2.0(tasmota)"}})
	default:
		writeJSON(w, http.StatusOK, map[string]interface{}{"Command": "Unknown"})
	}
}

func writeJSON(w http.ResponseWriter, code int, body interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

package main

// The Proxmox VE API (/api2/json) as pve-docs' API viewer describes the calls
// labswitch makes, served behind every node's own port while that node is up:
// any node answers for the whole cluster, as pveproxy does. Errors are PVE's:
// the message in the status line, {"data": null} in the body; 595 for a node
// that cannot be reached; 500 "cluster not ready - no quorum?" for a write
// without quorum.

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const apiPrefix = "/api2/json"

// serveNodeAPI starts one node's API server (TLS with its own certificate) on a free port; the node's gate passes
// connections to it while the node is up. Every node's server answers for the whole cluster, as pveproxy does.
func (l *pveLab) serveNodeAPI(conf *tls.Config) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(l.opts.listen, "0"))
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(l.serveHTTP), TLSConfig: conf}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return ln.Addr().String(), nil
}

// serveControl starts labsim's own control port (GET /labsim/pve, POST /labsim/faults), which answers whatever the
// nodes do, with labsim's certificate.
func (l *pveLab) serveControl(conf *tls.Config) error {
	control, err := net.Listen("tcp", net.JoinHostPort(l.opts.listen, "0"))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/labsim/faults", &l.faults)
	mux.HandleFunc("/labsim/pve", l.serveState)
	l.controlURL = "https://" + control.Addr().String()
	ctl := &http.Server{Handler: mux, TLSConfig: conf.Clone()}
	go func() { _ = ctl.ServeTLS(control, "", "") }()
	return nil
}

func (l *pveLab) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, apiPrefix), "/")
	if !strings.HasPrefix(r.URL.Path, apiPrefix) {
		pveError(w, http.StatusNotImplemented, "Method '"+r.URL.Path+"' not implemented")
		return
	}
	if path == "/access/ticket" && r.Method == http.MethodPost {
		l.auth.login(w, r)
		return
	}
	if ok, status, message := l.auth.check(r); !ok {
		pveError(w, status, message)
		return
	}
	_ = r.ParseForm()
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if on, priv := required(r.Method, parts); priv != "" && !l.may(r, on, priv) {
		pveError(w, http.StatusForbidden, "Permission check failed ("+on+", "+priv+")")
		return
	}
	switch {
	case path == "/access/permissions":
		l.permissions(w, r)
	case path == "/version":
		pveJSON(w, 200, map[string]string{"version": l.pve.version + ".0", "release": l.pve.version, "repoid": "faa83925c9641325"}, "")
	case path == "/cluster/status":
		l.clusterStatus(w)
	case path == "/cluster/resources":
		l.resources(w, r, r.Form.Get("type"))
	case path == "/nodes":
		l.nodesList(w)
	case strings.HasPrefix(path, "/cluster/ha/"):
		l.serveHA(w, r, parts[2:])
	case strings.HasPrefix(path, "/cluster/ceph/"):
		l.serveCeph(w, r, parts[2:])
	case len(parts) >= 2 && parts[0] == "nodes":
		l.serveNode(w, r, parts[1], parts[2:])
	default:
		pveError(w, http.StatusNotImplemented, "Method '"+r.Method+" "+path+"' not implemented")
	}
}

func (l *pveLab) clusterStatus(w http.ResponseWriter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []map[string]interface{}{{"type": "cluster", "id": "cluster", "name": l.pve.cluster, "nodes": len(l.nodes), "quorate": b2i(l.quorate()), "version": 3}}
	for i, n := range l.nodes {
		out = append(out, map[string]interface{}{"type": "node", "id": "node/" + n.name, "name": n.name, "nodeid": i + 1, "ip": n.ip,
			"online": b2i(n.online), "local": b2i(i == 0), "level": ""})
	}
	pveJSON(w, 200, out, "")
}

func (l *pveLab) resources(w http.ResponseWriter, r *http.Request, kind string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []map[string]interface{}{}
	if kind == "" || kind == "node" {
		for _, n := range l.nodes {
			if l.may(r, "/nodes/"+n.name, "Sys.Audit") {
				out = append(out, l.nodeEntry(n))
			}
		}
	}
	if kind == "" || kind == "vm" {
		for _, g := range l.guestList() {
			if !l.may(r, fmt.Sprintf("/vms/%d", g.vmid), "VM.Audit") { // pve-manager Cluster.pm resources: next if !VM.Audit
				continue
			}
			status, name := g.status, g.name
			if n := l.node(g.node); !n.online {
				status = "unknown" // what the cluster last heard is all it knows
				if time.Since(n.server.changed) > l.pve.nameLoss {
					name = "" // pmxcfs drops an offline node's guests' names after a while (--pve-name-loss)
				}
			}
			entry := map[string]interface{}{"id": fmt.Sprintf("%s/%d", g.kind, g.vmid), "type": g.kind, "vmid": g.vmid,
				"node": g.node, "status": status, "template": 0, "tags": strings.Join(g.tags, ";"), "maxcpu": 2, "cpu": 0.01,
				"maxmem": 2147483648, "mem": 536870912}
			if state, ok := l.ha[fmt.Sprintf("vm:%d", g.vmid)]; ok {
				entry["hastate"] = state
			}
			if name != "" {
				entry["name"] = name
			}
			out = append(out, entry)
		}
	}
	pveJSON(w, 200, out, "")
}

func (l *pveLab) nodeEntry(n *pveNode) map[string]interface{} {
	entry := map[string]interface{}{"id": "node/" + n.name, "type": "node", "node": n.name, "status": "offline", "maxcpu": 32,
		"ssl_fingerprint": n.fingerprint}
	if n.online {
		entry["status"], entry["uptime"], entry["cpu"] = "online", int(time.Since(n.uptime).Seconds()), 0.03
	}
	return entry
}

func (l *pveLab) nodesList(w http.ResponseWriter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []map[string]interface{}{}
	for _, n := range l.nodes {
		out = append(out, l.nodeEntry(n))
	}
	pveJSON(w, 200, out, "")
}

// serveNode: /nodes/{node}/... — only while that node is online (PVE proxies the call to it).
func (l *pveLab) serveNode(w http.ResponseWriter, r *http.Request, name string, rest []string) {
	l.mu.Lock()
	n := l.node(name)
	online := n != nil && n.online
	l.mu.Unlock()
	if n == nil {
		pveError(w, http.StatusInternalServerError, fmt.Sprintf("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", name, name))
		return
	}
	if len(rest) == 1 && rest[0] == "wakeonlan" && r.Method == http.MethodPost {
		l.wake(w, n) // sent by the node answering the API, to the one named
		return
	}
	if !online {
		pveError(w, 595, fmt.Sprintf("Errors during connection establishment, proxy handler: Connection to %s:8006 failed: No route to host", n.ip))
		return
	}
	switch {
	case len(rest) == 1 && rest[0] == "status" && r.Method == http.MethodGet:
		pveJSON(w, 200, map[string]interface{}{"uptime": int(time.Since(n.uptime).Seconds()), "pveversion": "pve-manager/8.2.4/faa83925c9641325",
			"kversion": "Linux 6.8.12-1-pve", "cpuinfo": map[string]interface{}{"cpus": 32, "mhz": "2100.000", "model": "Intel(R) Xeon(R) Silver 4110"}}, "")
	case len(rest) == 1 && rest[0] == "status" && r.Method == http.MethodPost:
		l.nodeCommand(w, n, r.Form.Get("command"))
	case len(rest) == 1 && (rest[0] == "startall" || rest[0] == "stopall") && r.Method == http.MethodPost:
		l.allGuests(w, n, rest[0])
	case len(rest) == 3 && rest[0] == "tasks" && rest[2] == "status":
		if status, ok := l.tasks.status(rest[1]); ok && status["node"] == name {
			pveJSON(w, 200, status, "")
		} else {
			pveError(w, http.StatusInternalServerError, "unable to parse worker upid '"+rest[1]+"'")
		}
	case len(rest) >= 1 && (rest[0] == "qemu" || rest[0] == "lxc"):
		l.serveGuest(w, r, n, rest[0], rest[1:])
	default:
		pveError(w, http.StatusNotImplemented, "Method '"+r.Method+" /nodes/"+name+"/"+strings.Join(rest, "/")+"' not implemented")
	}
}

func (l *pveLab) nodeCommand(w http.ResponseWriter, n *pveNode, command string) {
	switch command {
	case "shutdown", "reboot":
		l.mu.Lock()
		for _, g := range l.guests { // pve-guests stops what still runs, as the node goes down
			if g.node == n.name && g.status == "running" {
				g.halt()
			}
		}
		l.mu.Unlock()
		l.shutdown(n.server, command == "reboot")
		pveJSON(w, 200, nil, "")
	default:
		pveError(w, http.StatusBadRequest, "Parameter verification failed.")
	}
}

func (l *pveLab) wake(w http.ResponseWriter, n *pveNode) {
	l.powerOn(n.server)
	pveJSON(w, 200, "b8:ca:3a:00:00:"+fmt.Sprintf("%02x", len(n.name)+int(n.ip[len(n.ip)-1])), "")
}

// allGuests: startall and stopall as pve-manager's PVE/API2/Nodes.pm runs them: guests by order group
// (get_start_stop_list: no order counts as LONG_MAX), startall's groups increasing (each guest's up= pause after its
// start), stopall's decreasing, each group only after every task of the group before it ended.
func (l *pveLab) allGuests(w http.ResponseWriter, n *pveNode, what string) {
	l.mu.Lock()
	quorate := l.quorate()
	var mine []*pveGuest
	for _, g := range l.guestList() {
		if g.node == n.name && (what == "stopall" && g.status == "running" || what == "startall" && g.onboot && g.status != "running") {
			mine = append(mine, g)
		}
	}
	l.mu.Unlock()
	if what == "startall" && !quorate {
		pveError(w, http.StatusInternalServerError, "cluster not ready - no quorum?")
		return
	}
	upid := l.tasks.start(n.name, what, "", func(finish func(error)) {
		for _, group := range orderGroups(mine, what == "stopall") {
			var wg sync.WaitGroup
			for _, g := range group {
				if what == "startall" {
					l.startGuest(g)
					time.Sleep(time.Duration(startupField(g.startup, "up")) * time.Second)
					continue
				}
				wg.Add(1)
				go func(g *pveGuest) {
					defer wg.Done()
					done := make(chan error, 1)
					l.shutdownGuest(g, 180*time.Second, func(err error) { done <- err })
					if err := <-done; err != nil {
						l.stopGuest(g)
					}
				}(g)
			}
			wg.Wait()
		}
		finish(nil)
	})
	pveJSON(w, 200, upid, "")
}

const noOrder = math.MaxInt64 // PVE's order for a guest without one (LONG_MAX)

// orderGroups: the guests by startup order, increasing (decreasing with reverse); within a group by vmid as PVE sorts.
func orderGroups(guests []*pveGuest, reverse bool) [][]*pveGuest {
	byOrder := map[int][]*pveGuest{}
	orders := []int{}
	for _, g := range guests {
		o := startupField(g.startup, "order")
		if _, seen := byOrder[o]; !seen {
			orders = append(orders, o)
		}
		byOrder[o] = append(byOrder[o], g)
	}
	sort.Ints(orders)
	out := [][]*pveGuest{}
	for i := range orders {
		o := orders[i]
		if reverse {
			o = orders[len(orders)-1-i]
		}
		out = append(out, byOrder[o])
	}
	return out
}

// startupField: one field of "[order=]N,up=S,down=S" (pve-common's pve_parse_startup_order); order defaults to
// LONG_MAX, up and down to 0.
func startupField(startup, field string) int {
	for _, part := range strings.Split(startup, ",") {
		key, value, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			key, value = "order", key
		}
		if n, err := strconv.Atoi(value); err == nil && key == field {
			return n
		}
	}
	if field == "order" {
		return noOrder
	}
	return 0
}

var startupFormat = regexp.MustCompile(`^((order=)?\d+|up=\d+|down=\d+)(,((order=)?\d+|up=\d+|down=\d+))*$`)

// serveGuest: /nodes/{node}/{qemu|lxc}[/{vmid}/(config|status/...)].
func (l *pveLab) serveGuest(w http.ResponseWriter, r *http.Request, n *pveNode, kind string, rest []string) {
	if len(rest) == 0 {
		l.mu.Lock()
		out := []map[string]interface{}{}
		for _, g := range l.guestList() {
			if g.node == n.name && g.kind == kind && l.may(r, fmt.Sprintf("/vms/%d", g.vmid), "VM.Audit") {
				out = append(out, map[string]interface{}{"vmid": g.vmid, "name": g.name, "status": g.status})
			}
		}
		l.mu.Unlock()
		pveJSON(w, 200, out, "")
		return
	}
	vmid, _ := strconv.Atoi(rest[0])
	l.mu.Lock()
	g, ok := l.guests[vmid]
	l.mu.Unlock()
	if !ok || g.node != n.name || g.kind != kind {
		pveError(w, http.StatusInternalServerError, fmt.Sprintf("Configuration file 'nodes/%s/%s/%s.conf' does not exist", n.name, map[string]string{"qemu": "qemu-server", "lxc": "lxc"}[kind], rest[0]))
		return
	}
	switch strings.Join(rest[1:], "/") {
	case "config":
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			l.setConfig(w, r, g)
			return
		}
		l.mu.Lock()
		conf := map[string]interface{}{"onboot": b2i(g.onboot), "tags": strings.Join(g.tags, ";"), "digest": randomSecret()}
		if g.startup != "" {
			conf["startup"] = g.startup
		}
		if kind == "qemu" {
			conf["name"], conf["cores"], conf["memory"] = g.name, 2, 2048
		} else {
			conf["hostname"], conf["cores"], conf["memory"] = g.name, 1, 512
		}
		l.mu.Unlock()
		pveJSON(w, 200, conf, "")
	case "status/current":
		l.mu.Lock()
		out := map[string]interface{}{"vmid": g.vmid, "name": g.name, "status": g.status, "ha": map[string]interface{}{"managed": 0}}
		if state, ok := l.ha[fmt.Sprintf("vm:%d", g.vmid)]; ok {
			out["ha"] = map[string]interface{}{"managed": 1, "state": state}
		}
		l.mu.Unlock()
		pveJSON(w, 200, out, "")
	case "status/start", "status/shutdown", "status/stop":
		if r.Method != http.MethodPost {
			pveError(w, http.StatusNotImplemented, "Method not implemented")
			return
		}
		l.guestPower(w, r, g, rest[2])
	default:
		pveError(w, http.StatusNotImplemented, "Method '"+r.Method+" "+r.URL.Path+"' not implemented")
	}
}

// setConfig: PUT (and qemu's POST) /nodes/{node}/{qemu|lxc}/{vmid}/config for the options labswitch reads: startup,
// onboot, tags; "delete" removes them. qemu-server's POST is async (a task); PUT answers null.
func (l *pveLab) setConfig(w http.ResponseWriter, r *http.Request, g *pveGuest) {
	if startup := r.Form.Get("startup"); startup != "" && !startupFormat.MatchString(startup) {
		pveError(w, http.StatusBadRequest, "Parameter verification failed.")
		return
	}
	l.mu.Lock()
	if r.Form.Has("startup") {
		g.startup = r.Form.Get("startup")
	}
	if r.Form.Has("onboot") {
		g.onboot = r.Form.Get("onboot") == "1"
	}
	if r.Form.Has("tags") {
		g.tags = strings.FieldsFunc(r.Form.Get("tags"), func(c rune) bool { return c == ';' || c == ',' || c == ' ' })
	}
	for _, key := range strings.Split(r.Form.Get("delete"), ",") {
		switch strings.TrimSpace(key) {
		case "startup":
			g.startup = ""
		case "onboot":
			g.onboot = false
		case "tags":
			g.tags = nil
		}
	}
	l.mu.Unlock()
	pveJSON(w, 200, nil, "")
}

// guestPower: a start, shutdown or stop as a task; an HA-managed guest's is a request to the HA manager instead.
func (l *pveLab) guestPower(w http.ResponseWriter, r *http.Request, g *pveGuest, what string) {
	prefix := map[string]string{"qemu": "qm", "lxc": "vz"}[g.kind]
	id := strconv.Itoa(g.vmid)
	l.mu.Lock()
	quorate := l.quorate()
	sid := fmt.Sprintf("vm:%d", g.vmid)
	state, managed := l.ha[sid]
	managed = managed && state != "ignored" && !(l.haArmed == "disarmed" && l.haMode == "ignore") // disarmed, ignore: not HA's
	l.mu.Unlock()
	if !quorate { // every power command locks the guest's config in pmxcfs (cfs_lock_file): refused without quorum
		pveError(w, http.StatusInternalServerError, "cluster not ready - no quorum?")
		return
	}
	if managed {
		wanted := map[string]string{"start": "started", "shutdown": "stopped", "stop": "stopped"}[what]
		l.mu.Lock()
		l.ha[sid] = wanted
		l.mu.Unlock()
		kind := map[string]string{"start": "hastart", "shutdown": "hastop", "stop": "hastop"}[what]
		pveJSON(w, 200, l.tasks.start(g.node, kind, id, func(finish func(error)) { finish(nil) }), "")
		return
	}
	timeout := 180 * time.Second
	if t, err := strconv.Atoi(r.Form.Get("timeout")); err == nil && t > 0 {
		timeout = time.Duration(t) * time.Second
	}
	var upid string
	switch what {
	case "start":
		upid = l.tasks.start(g.node, prefix+"start", id, func(finish func(error)) {
			l.mu.Lock()
			running := g.status == "running"
			l.mu.Unlock()
			if running {
				finish(fmt.Errorf("VM %d already running", g.vmid))
				return
			}
			l.startGuest(g)
			finish(nil)
		})
	case "shutdown":
		upid = l.tasks.start(g.node, prefix+"shutdown", id, func(finish func(error)) {
			l.mu.Lock()
			running := g.status == "running"
			l.mu.Unlock()
			if !running {
				finish(nil) // already stopped: PVE's shutdown of a stopped guest is no error
				return
			}
			l.shutdownGuest(g, timeout, finish)
		})
	case "stop":
		upid = l.tasks.start(g.node, prefix+"stop", id, func(finish func(error)) {
			l.stopGuest(g)
			finish(nil)
		})
	}
	pveJSON(w, 200, upid, "")
}

// -- HA ----------------------------------------------------------------------------------------

func (l *pveLab) serveHA(w http.ResponseWriter, r *http.Request, rest []string) {
	switch {
	case len(rest) == 1 && rest[0] == "resources" && r.Method == http.MethodGet:
		l.mu.Lock()
		out := []map[string]interface{}{}
		for _, g := range l.guestList() {
			sid := fmt.Sprintf("vm:%d", g.vmid)
			if state, ok := l.ha[sid]; ok {
				out = append(out, map[string]interface{}{"sid": sid, "type": "vm", "state": state, "max_restart": 1, "max_relocate": 1, "digest": randomSecret()})
			}
		}
		l.mu.Unlock()
		pveJSON(w, 200, out, "")
	case len(rest) == 2 && rest[0] == "resources":
		l.haResource(w, r, rest[1])
	case len(rest) == 2 && rest[0] == "status" && (rest[1] == "disarm-ha" || rest[1] == "arm-ha") && r.Method == http.MethodPost && l.canDisarm():
		l.queueDisarm(w, r, rest[1])
	case len(rest) == 2 && rest[0] == "status" && rest[1] == "current":
		l.mu.Lock()
		out := []map[string]interface{}{{"id": "quorum", "type": "quorum", "quorate": b2i(l.quorate()), "status": map[bool]string{true: "OK", false: "No quorum on node"}[l.quorate()]}}
		if l.canDisarm() { // pve-ha-manager 5.1.3+: the fencing entry (API2/HA/Status.pm)
			entry := map[string]interface{}{"id": "fencing", "type": "fencing", "node": l.nodes[0].name, "armed-state": l.haArmed}
			if l.haArmed != "armed" {
				entry["resource_mode"] = l.haMode
			}
			out = append(out, entry)
		}
		for _, g := range l.guestList() {
			sid := fmt.Sprintf("vm:%d", g.vmid)
			if state, ok := l.ha[sid]; ok {
				out = append(out, map[string]interface{}{"id": "service:" + sid, "type": "service", "sid": sid, "node": g.node,
					"state": g.status, "request_state": state, "crm_state": g.status})
			}
		}
		l.mu.Unlock()
		pveJSON(w, 200, out, "")
	default:
		pveError(w, http.StatusNotImplemented, "Method not implemented")
	}
}

// canDisarm: pve-ha-manager 5.1.3 (PVE 9.2, --pve-version 9.2) has disarm-ha and arm-ha.
func (l *pveLab) canDisarm() bool {
	var major, minor int
	_, _ = fmt.Sscanf(l.pve.version, "%d.%d", &major, &minor)
	return major > 9 || major == 9 && minor >= 2
}

// queueDisarm: POST /cluster/ha/status/disarm-ha (resource-mode freeze|ignore) or arm-ha: queued for the CRM, which
// applies it on its next round (haManager), as PVE::HA::Config::queue_crm_commands does.
func (l *pveLab) queueDisarm(w http.ResponseWriter, r *http.Request, command string) {
	mode := r.Form.Get("resource-mode")
	if command == "disarm-ha" && mode != "freeze" && mode != "ignore" {
		pveError(w, http.StatusBadRequest, "Parameter verification failed.")
		return
	}
	l.mu.Lock()
	l.haQueued = command + " " + mode
	if command == "disarm-ha" && l.haArmed == "armed" {
		l.haArmed = "disarming"
	}
	l.mu.Unlock()
	pveJSON(w, 200, nil, "")
}

func (l *pveLab) haResource(w http.ResponseWriter, r *http.Request, sid string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	state, ok := l.ha[sid]
	if !ok {
		pveError(w, http.StatusInternalServerError, "no such resource '"+sid+"'")
		return
	}
	switch r.Method {
	case http.MethodGet:
		pveJSON(w, 200, map[string]interface{}{"sid": sid, "type": "vm", "state": state, "digest": randomSecret()}, "")
	case http.MethodPut:
		if !l.quorate() {
			pveError(w, http.StatusInternalServerError, "cluster not ready - no quorum?")
			return
		}
		wanted := r.Form.Get("state")
		valid := map[string]bool{"started": true, "stopped": true, "disabled": true, "ignored": true, "enabled": true}
		if !valid[wanted] {
			pveError(w, http.StatusBadRequest, "Parameter verification failed.")
			return
		}
		if wanted == "enabled" {
			wanted = "started"
		}
		l.ha[sid] = wanted
		pveJSON(w, 200, nil, "")
	default:
		pveError(w, http.StatusNotImplemented, "Method not implemented")
	}
}

// -- Ceph --------------------------------------------------------------------------------------

func (l *pveLab) serveCeph(w http.ResponseWriter, r *http.Request, rest []string) {
	if !l.ceph {
		pveError(w, http.StatusInternalServerError, "binary not installed: /usr/bin/ceph-mon")
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.quorate() { // pmxcfs without quorum: the API refuses what it would lock or write
		pveError(w, http.StatusInternalServerError, "cluster not ready - no quorum?")
		return
	}
	if !l.monQuorum() { // the monitors without theirs: ceph commands time out
		pveError(w, http.StatusInternalServerError, "got timeout")
		return
	}
	switch {
	case len(rest) == 1 && rest[0] == "flags" && r.Method == http.MethodGet:
		out := []map[string]interface{}{}
		for _, name := range cephFlagNames {
			out = append(out, map[string]interface{}{"name": name, "value": b2i(l.cephFlags[name]), "description": "ceph osd flag " + name})
		}
		pveJSON(w, 200, out, "")
	case len(rest) == 1 && rest[0] == "flags" && r.Method == http.MethodPut:
		for _, name := range cephFlagNames {
			if v := r.Form.Get(name); v != "" {
				l.cephFlags[name] = v == "1" || v == "true"
			}
		}
		l.cephFlagsSet = time.Now()
		pveJSON(w, 200, l.tasks.start(l.nodes[0].name, "cephsetflags", "", func(finish func(error)) { finish(nil) }), "")
	case len(rest) == 1 && rest[0] == "status":
		state, health := l.cephPGs()
		flags := []string{}
		for _, name := range cephFlagNames {
			if l.cephFlags[name] {
				flags = append(flags, name)
			}
		}
		mons, quorum := l.monitors()
		pveJSON(w, 200, map[string]interface{}{
			"fsid":         "5c0e5b9e-7c1b-4c0f-9d0e-labsim000001",
			"health":       map[string]interface{}{"status": health, "checks": l.cephChecks(state, flags, mons, quorum)},
			"pgmap":        map[string]interface{}{"num_pgs": 128, "pgs_by_state": []map[string]interface{}{{"state_name": state, "count": 128}}},
			"osdmap":       map[string]interface{}{"num_osds": len(l.nodes), "num_up_osds": l.onlineCount(), "flags": strings.Join(flags, ",")},
			"monmap":       map[string]interface{}{"mons": mons},
			"quorum_names": quorum,
		}, "")
	default:
		pveError(w, http.StatusNotImplemented, "Method not implemented")
	}
}

// -- answers -----------------------------------------------------------------------------------

func pveJSON(w http.ResponseWriter, status int, data interface{}, message string) {
	if status >= 400 {
		pveError(w, status, message)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]interface{}{"data": data})
}

// pveError answers as pveproxy does: the message in the status line, {"data": null} in the body.
func pveError(w http.ResponseWriter, status int, message string) {
	body := `{"data":null}`
	if hj, ok := w.(http.Hijacker); ok {
		if conn, buf, err := hj.Hijack(); err == nil {
			defer conn.Close()
			fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
				status, strings.ReplaceAll(message, "\n", " "), len(body), body)
			_ = buf.Flush()
			return
		}
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

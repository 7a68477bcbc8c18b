package main

// labsim --proxmox: a Proxmox VE cluster of nodes (each a Server with an
// iDRAC-shaped BMC, as in the vSphere lab) and guests (QEMU VMs and LXC
// containers), with HA resources and Ceph. This file holds the state and how
// power moves it; pve_api.go answers the API, pve_auth.go logs in, pve_tasks.go
// runs UPID tasks, pve_outputs.go writes labswitch's config.
//
// What it simplifies (said again in the tests): one vote per node; Ceph is one
// OSD per node in a pool of size 3, min_size 2, its placement groups counted as
// one number; the HA manager applies a resource's requested state once a second
// (no fencing, no recovery onto other nodes); nodes do not start their onboot
// guests by themselves at boot (pve-guests); guests have no guest agent.

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

type pveGuest struct {
	vmid     int
	kind     string // qemu | lxc
	name     string
	node     string
	status   string // running | stopped
	onboot   bool
	startup  string // "order=1,up=30,down=60", as the guest's config has it
	tags     []string
	hung     bool // ignores a shutdown request (--pve-hung)
	shutdown time.Duration
	epoch    int       // bumped on every change of status: cancels a stale shutdown
	started  time.Time // when it last started (GET /labsim/pve: the order guests started in)
	asked    time.Time // when its shutdown was last asked for (GET /labsim/pve: the order guests were asked in)
	stopped  time.Time // when it last stopped
}

// halt: the guest is stopped now (its shutdown ended, a hard stop, its node's power gone). Call with l.mu held.
func (g *pveGuest) halt() {
	g.status, g.stopped = "stopped", time.Now()
	g.epoch++
}

type pveNode struct {
	server      *Server
	name        string
	ip          string
	api         *gate  // the node's own API port (8006): shut while the node is off or booting
	online      bool   // in the cluster (corosync) and its API answering
	fingerprint string // its own certificate's SHA-256, as GET /nodes gives it (pve_certs.go)
	uptime      time.Time
}

type pveLab struct {
	opts         options
	pve          pveOptions
	mu           sync.Mutex
	nodes        []*pveNode
	guests       map[int]*pveGuest
	ha           map[string]string // sid ("vm:100") -> requested state: started | stopped | disabled | ignored
	ceph         bool
	cephFlags    map[string]bool
	cephSince    time.Time // when the OSDs last changed (peering takes a moment)
	cephFlagsSet time.Time // when the flags were last written (GET /labsim/pve: the order of a run)
	tasks        *pveTasks
	auth         *pveAuth
	faults       faults
	thumbprint   string // labsim's own certificate (the BMCs', the control port's; the nodes' CA): pve_certs.go
	certPEM      []byte
	caFile       string                     // pve-root-ca.pem, written beside the config
	tokenACL     map[string]map[string]bool // --pve-token-acl: the token's own ACLs (privilege separation); nil: unrestricted
	apiURL       string                     // the first node's API
	controlURL   string                     // labsim's own: GET /labsim/pve, POST /labsim/faults
	haEvery      time.Duration
	haArmed      string // pve-ha-manager 5.1.3+ (fencing): armed | disarming | disarmed
	haMode       string // while disarmed: freeze | ignore
	haQueued     string // a disarm-ha/arm-ha command the CRM applies on its next round
}

type pveOptions struct {
	nodes, guestsPerNode, mgmtNodes int
	ceph, ha                        bool
	lxcEvery                        int    // every Nth guest is an LXC container
	password, tokenSecret           string // root@pam's password, and the secret of token root@pam!labswitch
	hung                            string // guests that ignore a shutdown, NAME,...
	cluster                         string
	selfNode                        string        // a node whose cluster address is 127.0.0.1: the machine labswitch runs on
	wolNodes                        string        // nodes the config wakes through a peer (bmc.via = "proxmox")
	tlsMode                         string        // the written config's [proxmox] tls: "ca" (tls.ca_file) or "pin"
	tokenACL                        string        // --pve-token-acl (pve_perms.go)
	version                         string        // --pve-version: "8.2"; 9.2+ has HA's disarm-ha and arm-ha
	cephMons                        int           // --pve-ceph-mons: monitors on the first N nodes
	nameLoss                        time.Duration // --pve-name-loss: an offline node's guests lose their names in /cluster/resources
	auth                            string        // the written config logs in with "password" (root@pam) or "token"
}

var cephFlagNames = []string{"nobackfill", "nodeep-scrub", "nodown", "noin", "noout", "norebalance", "norecover", "noscrub", "notieragent", "noup", "pause"}

func newPVELab(o options, p pveOptions) (*pveLab, error) {
	for _, secret := range []*string{&p.password, &p.tokenSecret, &o.bmcPassword} {
		if *secret == "" {
			*secret = randomSecret()
		}
	}
	l := &pveLab{opts: o, pve: p, guests: map[int]*pveGuest{}, ha: map[string]string{}, ceph: p.ceph, cephFlags: map[string]bool{}, haEvery: time.Second,
		haArmed: "armed"}
	l.tasks = newPVETasks(l)
	l.tokenACL = parseACL(p.tokenACL)
	l.auth = newPVEAuth(p.password, p.tokenSecret)
	holder := &Lab{opts: o} // its TLS certificate, shared by every server of the lab
	conf, err := holder.newTLS()
	if err != nil {
		return nil, err
	}
	l.thumbprint, l.certPEM = holder.thumbprint, holder.certPEM
	if err := l.serveControl(conf); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewSource(o.seed))
	hung := map[string]bool{}
	for _, name := range strings.Split(p.hung, ",") {
		hung[strings.TrimSpace(name)] = true
	}
	vmid := 100
	for i := 1; i <= p.nodes; i++ {
		name := fmt.Sprintf("pve%d", i)
		group := "payload"
		if i <= p.mgmtNodes {
			group = "mgmt"
		}
		s := &Server{Name: name, FQDN: name + ".lab.local", Group: group, ServiceTag: fmt.Sprintf("PVE%04d", i), power: "On", bootDelay: jitter(rng, o.hostBootDelay, o.hostBootJitter)}
		own, fingerprint, err := nodeCert(conf, name, o.listen)
		if err != nil {
			return nil, err
		}
		api, err := l.serveNodeAPI(own)
		if err != nil {
			return nil, err
		}
		front, err := newGate(o.listen, api)
		if err != nil {
			return nil, err
		}
		front.fault = l.apiFault(name)
		n := &pveNode{server: s, name: name, ip: fmt.Sprintf("10.0.0.%d", 10+i), api: front, online: true, uptime: time.Now(), fingerprint: fingerprint}
		if name == p.selfNode {
			n.ip = o.listen // labswitch reaches the API from this address: it runs on this node
		}
		l.nodes = append(l.nodes, n)
		if s.bmc, err = startBMC(l, s, conf, o.listen); err != nil {
			return nil, err
		}
		for g := 1; g <= p.guestsPerNode; g++ {
			kind, gname := "qemu", fmt.Sprintf("%s-vm%02d", name, g)
			if p.lxcEvery > 0 && g%p.lxcEvery == 0 {
				kind, gname = "lxc", fmt.Sprintf("%s-ct%02d", name, g)
			}
			guest := &pveGuest{vmid: vmid, kind: kind, name: gname, node: name, status: "running", hung: hung[gname],
				shutdown: jitter(rng, o.guestShutdownDelay, o.guestShutdownJitter)}
			// the first guests of every node start at boot, in order; the last one is a scratch guest
			if g < p.guestsPerNode || p.guestsPerNode == 1 {
				guest.onboot = true
				guest.startup = fmt.Sprintf("order=%d,up=1", g)
				guest.tags = []string{"lab"}
			} else {
				guest.tags = []string{"scratch"}
			}
			if p.ha && g == 1 {
				l.ha[fmt.Sprintf("vm:%d", vmid)] = "started"
			}
			l.guests[vmid] = guest
			vmid++
		}
	}
	l.apiURL = "https://" + l.nodes[0].api.addr
	l.faults.cleared = func(key string) { // a node held back (host stuck) while on joins once its fault is off
		for _, n := range l.nodes {
			l.mu.Lock()
			waiting := key == "host:"+n.name && !n.online
			l.mu.Unlock()
			if waiting && n.server.powerState() == "On" && time.Since(n.server.changed) >= n.server.bootDelay {
				l.joined(n.server)
			}
		}
	}
	l.faults.switched = func(key string) {
		if strings.HasPrefix(key, "api:") { // kept-alive connections meet the fault on their next request
			for _, n := range l.nodes {
				n.api.drop()
			}
		}
	}
	go l.haManager()
	return l, nil
}

// apiFault: the fault switched on for a node's API port (api=NODE, or api=all).
func (l *pveLab) apiFault(name string) func() string {
	return func() string {
		if mode := l.faults.get("api:" + name); mode != "" {
			return mode
		}
		return l.faults.get("api:all")
	}
}

func (l *pveLab) node(name string) *pveNode {
	for _, n := range l.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (l *pveLab) nodeOf(s *Server) *pveNode {
	for _, n := range l.nodes {
		if n.server == s {
			return n
		}
	}
	return nil
}

// quorate: more than half the votes (one per node) are online, unless a fault took quorum away. Call with l.mu held.
func (l *pveLab) quorate() bool {
	if l.faults.get("quorum:"+l.pve.cluster) == "lost" {
		return false
	}
	online := 0
	for _, n := range l.nodes {
		if n.online {
			online++
		}
	}
	return online*2 > len(l.nodes)
}

// -- power: what a BMC or the API does to a node --------------------------------------------

func (l *pveLab) powerOn(s *Server) bool {
	epoch, changed := s.switchPower("On")
	if !changed {
		return false
	}
	time.AfterFunc(s.bootDelay, func() { // booted: corosync joins, the API answers (unless a host fault holds it back)
		if s.stillAt(epoch) && l.faults.get("host:"+s.Name) != "stuck" {
			l.joined(s)
		}
	})
	return true
}

// joined: the node is back in the cluster, its API answering.
func (l *pveLab) joined(s *Server) {
	n := l.nodeOf(s)
	if err := n.api.open(); err != nil {
		return
	}
	l.mu.Lock()
	n.online, n.uptime = true, time.Now()
	l.cephSince = time.Now()
	l.mu.Unlock()
}

func (l *pveLab) powerOff(s *Server) bool {
	if _, changed := s.switchPower("Off"); !changed {
		return false
	}
	n := l.nodeOf(s)
	n.api.shut()
	l.mu.Lock()
	defer l.mu.Unlock()
	n.online = false
	l.cephSince = time.Now()
	for _, g := range l.guests {
		if g.node == n.name && g.status == "running" {
			g.halt() // the power is gone: so are its guests
		}
	}
	return true
}

// shutdown: the node's OS shuts down (API command, or the BMC's ACPI button): its
// running guests are stopped, then it goes off after --host-shutdown-delay.
func (l *pveLab) shutdown(s *Server, thenBoot bool) bool {
	return shutdownAfter(l, s, l.opts.hostShutdownDelay, thenBoot)
}

// serverWatts: a node idles near 90 W; each running guest adds a little; off is off.
func (l *pveLab) serverWatts(s *Server) int {
	if s.powerState() != "On" {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n, running := l.nodeOf(s), 0
	for _, g := range l.guests {
		if g.node == n.name && g.status == "running" {
			running++
		}
	}
	return 90 + 4*running
}

func (l *pveLab) bmcFault(server string, w http.ResponseWriter, r *http.Request) bool {
	return l.faults.bmcFault(server, w, r)
}

func (l *pveLab) bmcLogin() (string, string, bool) {
	return l.opts.bmcUser, l.opts.bmcPassword, !l.opts.bmcNoBasicAuth
}

// -- guests ------------------------------------------------------------------------------------

// startGuest: running at once (a guest's boot is not modelled).
func (l *pveLab) startGuest(g *pveGuest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g.status = "running"
	g.started = time.Now()
	g.epoch++
}

// shutdownGuest: stopped after its shutdown delay, unless it ignores the request; done() is told either way.
func (l *pveLab) shutdownGuest(g *pveGuest, timeout time.Duration, done func(error)) {
	l.mu.Lock()
	g.asked = time.Now()
	epoch, hung, delay := g.epoch, g.hung || l.faults.get("vm:"+g.name) == "ignore-shutdown", g.shutdown
	l.mu.Unlock()
	if hung {
		time.AfterFunc(timeout, func() { done(fmt.Errorf("VM %d quit/powerdown failed - got timeout", g.vmid)) })
		return
	}
	time.AfterFunc(delay, func() {
		l.mu.Lock()
		if g.epoch == epoch && g.status == "running" {
			g.halt()
		}
		l.mu.Unlock()
		done(nil)
	})
}

func (l *pveLab) stopGuest(g *pveGuest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g.halt()
}

// haManager: every HA resource's requested state applied, once a second, while the cluster is quorate.
func (l *pveLab) haManager() {
	for range time.Tick(l.haEvery) {
		l.mu.Lock()
		if command, mode, _ := strings.Cut(l.haQueued, " "); command != "" && l.quorate() {
			l.haQueued = ""
			if command == "disarm-ha" {
				l.haArmed, l.haMode = "disarmed", mode
			} else {
				l.haArmed, l.haMode = "armed", ""
			}
		}
		if l.quorate() && l.haArmed != "disarmed" {
			for sid, state := range l.ha {
				var vmid int
				if _, err := fmt.Sscanf(sid, "vm:%d", &vmid); err != nil {
					continue
				}
				g := l.guests[vmid]
				n := l.node(g.node)
				switch {
				case state == "started" && g.status != "running" && n.online:
					g.status, g.started = "running", time.Now()
					g.epoch++
				case (state == "stopped" || state == "disabled") && g.status == "running":
					g.halt()
				}
			}
		}
		l.mu.Unlock()
	}
}

// -- Ceph: one OSD per node, a pool of size 3, min_size 2 ---------------------------------------

// monitors: the Ceph monitors (on the first --pve-ceph-mons nodes, named after their node as pveceph names them)
// and those in quorum (their node online). Call with l.mu held.
func (l *pveLab) monitors() ([]map[string]interface{}, []string) {
	mons := []map[string]interface{}{}
	quorum := []string{}
	for i, n := range l.nodes {
		if i >= l.pve.cephMons {
			break
		}
		mons = append(mons, map[string]interface{}{"name": n.name, "rank": i, "public_addr": n.ip + ":6789/0"})
		if n.online {
			quorum = append(quorum, n.name)
		}
	}
	return mons, quorum
}

// monQuorum: more than half of the monitors up. Call with l.mu held.
func (l *pveLab) monQuorum() bool {
	mons, quorum := l.monitors()
	return 2*len(quorum) > len(mons)
}

func (l *pveLab) onlineCount() int {
	up := 0
	for _, n := range l.nodes {
		if n.online {
			up++
		}
	}
	return up
}

// cephChecks: ceph status' health checks, as Ceph names them: the flags (OSDMAP_FLAGS), OSDs or monitors down,
// placement groups not active+clean.
func (l *pveLab) cephChecks(pgs string, flags []string, mons []map[string]interface{}, quorum []string) map[string]interface{} {
	checks := map[string]interface{}{}
	check := func(name, summary string) {
		checks[name] = map[string]interface{}{"severity": "HEALTH_WARN", "summary": map[string]interface{}{"message": summary}}
	}
	if len(flags) > 0 {
		check("OSDMAP_FLAGS", strings.Join(flags, ",")+" flag(s) set")
	}
	if up := l.onlineCount(); up < len(l.nodes) {
		check("OSD_DOWN", fmt.Sprintf("%d osds down", len(l.nodes)-up))
	}
	if len(quorum) < len(mons) {
		check("MON_DOWN", fmt.Sprintf("%d/%d mons down, quorum %s", len(mons)-len(quorum), len(mons), strings.Join(quorum, ",")))
	}
	if pgs != "active+clean" {
		check("PG_AVAILABILITY", "Reduced data availability: 128 pgs "+pgs)
	}
	return checks
}

// cephPGs: how the placement groups stand now. Call with l.mu held.
func (l *pveLab) cephPGs() (state string, health string) {
	up := 0
	for _, n := range l.nodes {
		if n.online {
			up++
		}
	}
	want := len(l.nodes)
	if want > 3 {
		want = 3
	}
	peering := time.Since(l.cephSince) < 1500*time.Millisecond || l.faults.get("ceph:"+l.pve.cluster) == "stuck"
	flags := []string{}
	for _, name := range cephFlagNames {
		if l.cephFlags[name] {
			flags = append(flags, name)
		}
	}
	health = "HEALTH_OK"
	if len(flags) > 0 {
		health = "HEALTH_WARN"
	}
	switch {
	case up < 2:
		return "undersized+degraded+peered", "HEALTH_WARN"
	case peering:
		return "peering", "HEALTH_WARN"
	case up < want:
		return "active+undersized+degraded", "HEALTH_WARN"
	}
	return "active+clean", health
}

func (l *pveLab) guestList() []*pveGuest {
	out := make([]*pveGuest, 0, len(l.guests))
	for _, g := range l.guests {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].vmid < out[j].vmid })
	return out
}

func (l *pveLab) close() {
	for _, n := range l.nodes {
		n.api.shut()
		if n.server.bmc != nil {
			_ = n.server.bmc.srv.Close()
		}
	}
}

var _ machines = (*pveLab)(nil)

// serveState answers GET /labsim/pve on the control port (it answers while every node is off): the truth of the
// cluster for the tests, read without labswitch — nodes, guests (when each last started, was last asked to shut
// down, last stopped: the timeline of a run's order), HA, Ceph's flags.
func (l *pveLab) serveState(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	nodes := map[string]interface{}{}
	for _, n := range l.nodes {
		nodes[n.name] = map[string]interface{}{"power": n.server.powerState(), "online": n.online,
			"changed": float64(n.server.changed.UnixNano()) / 1e9} // when its power last changed: the order nodes went
	}
	guests := map[string]interface{}{}
	for _, g := range l.guests {
		entry := map[string]interface{}{"vmid": g.vmid, "node": g.node, "status": g.status, "onboot": g.onboot, "startup": g.startup}
		for key, at := range map[string]time.Time{"started": g.started, "asked": g.asked, "stopped": g.stopped} {
			if !at.IsZero() {
				entry[key] = float64(at.UnixNano()) / 1e9
			}
		}
		guests[g.name] = entry
	}
	flags := []string{}
	for _, name := range cephFlagNames {
		if l.cephFlags[name] {
			flags = append(flags, name)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]interface{}{"nodes": nodes, "guests": guests, "ha": l.ha, "ceph_flags": flags, "quorate": l.quorate(),
		"ha_armed": l.haArmed, "ha_mode": l.haMode, "ceph_flags_set": float64(l.cephFlagsSet.UnixNano()) / 1e9})
}

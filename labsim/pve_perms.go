package main

// Privileges as Proxmox VE checks them (pve-access-control's RPCEnvironment; each call's `permissions` in
// pve-manager PVE/API2/*.pm, qemu-server, pve-container and pve-ha-manager PVE/API2/HA/*.pm). root@pam (the
// ticket) may do everything; the API token root@pam!labswitch too, unless --pve-token-acl gives it privilege
// separation with exactly those ACLs ("PATH=PRIV,PRIV;PATH=PRIV", a bare list meaning "/"; every ACL
// propagates). A call without its privilege answers 403 "Permission check failed (PATH, PRIV)"; lists leave
// out what the caller may not audit (a guest without VM.Audit on /vms/<id> is not in /cluster/resources).
//
// labsim's simplification: roles are not modelled (an ACL grants privileges directly), nor users' own ACLs
// (the token's are the intersection with root@pam's, which holds every privilege), pools or groups.

import (
	"net/http"
	"strings"
)

var allPrivileges = []string{
	"Datastore.Audit", "Sys.Audit", "Sys.Console", "Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog",
	"VM.Audit", "VM.Config.Options", "VM.Console", "VM.PowerMgmt",
}

// parseACL: "PATH=PRIV,PRIV;PATH=PRIV" (a bare "PRIV,PRIV" is on "/"); "" is no restriction (nil).
func parseACL(spec string) map[string]map[string]bool {
	if strings.TrimSpace(spec) == "" {
		return nil
	}
	acl := map[string]map[string]bool{}
	for _, entry := range strings.Split(spec, ";") {
		path, privs, found := strings.Cut(entry, "=")
		if !found {
			path, privs = "/", path
		}
		path = strings.TrimSpace(path)
		if acl[path] == nil {
			acl[path] = map[string]bool{}
		}
		for _, p := range strings.Split(privs, ",") {
			if p = strings.TrimSpace(p); p != "" {
				acl[path][p] = true
			}
		}
	}
	return acl
}

// restricted: the token's ACLs when this request comes with the separated token; nil for root@pam or an unrestricted token.
func (l *pveLab) restricted(r *http.Request) map[string]map[string]bool {
	if strings.HasPrefix(r.Header.Get("Authorization"), "PVEAPIToken=") {
		return l.tokenACL
	}
	return nil
}

// may: whether the caller holds priv on path: the nearest ACL path at or above it decides (every ACL propagates).
func (l *pveLab) may(r *http.Request, path, priv string) bool {
	acl := l.restricted(r)
	if acl == nil {
		return true
	}
	for p := path; ; p = parentPath(p) {
		if privs, ok := acl[p]; ok {
			return privs[priv]
		}
		if p == "/" {
			return false
		}
	}
}

func parentPath(p string) string {
	if i := strings.LastIndex(p, "/"); i > 0 {
		return p[:i]
	}
	return "/"
}

// permissions answers GET /access/permissions: the caller's effective privileges, path -> privilege -> propagate.
func (l *pveLab) permissions(w http.ResponseWriter, r *http.Request) {
	out := map[string]map[string]int{}
	acl := l.restricted(r)
	if acl == nil {
		acl = map[string]map[string]bool{"/": {}}
		for _, p := range allPrivileges {
			acl["/"][p] = true
		}
	}
	if path := r.Form.Get("path"); path != "" {
		privs := map[string]int{}
		for _, p := range allPrivileges {
			if l.may(r, path, p) {
				privs[p] = 1
			}
		}
		pveJSON(w, 200, map[string]map[string]int{path: privs}, "")
		return
	}
	for path, privs := range acl {
		out[path] = map[string]int{}
		for p := range privs {
			out[path][p] = 1
		}
	}
	pveJSON(w, 200, out, "")
}

// required: the privilege a call checks before it runs (path, privilege), "" when it checks none or filters instead.
func required(method string, parts []string) (string, string) {
	write := method != http.MethodGet
	switch {
	case len(parts) == 2 && parts[0] == "cluster" && parts[1] == "status":
		return "/", "Sys.Audit"
	case len(parts) >= 2 && parts[0] == "cluster" && parts[1] == "ha":
		if write {
			return "/", "Sys.Console"
		}
		return "/", "Sys.Audit"
	case len(parts) >= 2 && parts[0] == "cluster" && parts[1] == "ceph":
		if write {
			return "/", "Sys.Modify"
		}
		return "/", "Sys.Audit"
	case len(parts) == 3 && parts[0] == "nodes" && (parts[2] == "status" || parts[2] == "wakeonlan"):
		if write {
			return "/nodes/" + parts[1], "Sys.PowerMgmt"
		}
		return "/nodes/" + parts[1], "Sys.Audit"
	case len(parts) == 3 && parts[0] == "nodes" && (parts[2] == "startall" || parts[2] == "stopall"):
		return "/", "VM.PowerMgmt"
	case len(parts) >= 5 && parts[0] == "nodes" && (parts[2] == "qemu" || parts[2] == "lxc"):
		vm := "/vms/" + parts[3]
		switch {
		case parts[4] == "config" && write:
			return vm, "VM.Config.Options"
		case parts[4] == "status" && len(parts) == 6 && parts[5] != "current":
			return vm, "VM.PowerMgmt"
		}
		return vm, "VM.Audit"
	}
	return "", ""
}

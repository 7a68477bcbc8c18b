package main

// Proxmox VE's two ways in, as pve-docs describe them: a ticket from
// POST /access/ticket (username + password; sent back as the PVEAuthCookie
// cookie, with the CSRFPreventionToken header on every write), or an API token
// (Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET, no CSRF token).
// labsim knows one user, root@pam, and one token, root@pam!labswitch.

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
)

const pveUser = "root@pam"
const pveTokenID = "root@pam!labswitch"

type pveAuth struct {
	password, tokenSecret string
	mu                    sync.Mutex
	tickets               map[string]string // ticket -> its CSRF prevention token
}

func newPVEAuth(password, tokenSecret string) *pveAuth {
	return &pveAuth{password: password, tokenSecret: tokenSecret, tickets: map[string]string{}}
}

func same(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// login answers POST /access/ticket: a ticket and its CSRF token, or 401 with no data.
func (a *pveAuth) login(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if !same(r.PostForm.Get("username"), pveUser) || !same(r.PostForm.Get("password"), a.password) {
		pveJSON(w, http.StatusUnauthorized, nil, "authentication failure")
		return
	}
	ticket := "PVE:" + pveUser + ":" + strings.ToUpper(randomSecret()) + "::" + randomSecret()
	csrf := strings.ToUpper(randomSecret()[:8]) + ":" + randomSecret()
	a.mu.Lock()
	a.tickets[ticket] = csrf
	a.mu.Unlock()
	pveJSON(w, http.StatusOK, map[string]interface{}{"ticket": ticket, "CSRFPreventionToken": csrf, "username": pveUser,
		"cap": map[string]interface{}{}}, "")
}

// check: who may make this request, or the status and message that refuse it.
func (a *pveAuth) check(r *http.Request) (ok bool, status int, message string) {
	if header := r.Header.Get("Authorization"); strings.HasPrefix(header, "PVEAPIToken=") {
		id, secret, _ := strings.Cut(strings.TrimPrefix(header, "PVEAPIToken="), "=")
		if same(id, pveTokenID) && same(secret, a.tokenSecret) {
			return true, 0, ""
		}
		return false, http.StatusUnauthorized, "invalid token value!"
	}
	cookie, err := r.Cookie("PVEAuthCookie")
	if err != nil {
		return false, http.StatusUnauthorized, "No ticket"
	}
	a.mu.Lock()
	csrf, known := a.tickets[cookie.Value]
	a.mu.Unlock()
	if !known {
		return false, http.StatusUnauthorized, "invalid PVE ticket"
	}
	if r.Method != http.MethodGet && !same(r.Header.Get("CSRFPreventionToken"), csrf) {
		return false, http.StatusUnauthorized, "Permission check failed (invalid csrf token)"
	}
	return true, 0, ""
}

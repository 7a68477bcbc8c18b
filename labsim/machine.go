package main

import "net/http"

// machines is what a BMC acts on and reads: the servers of a lab, whose power
// is the truth that the lab's management (vCenter, or a Proxmox VE cluster)
// follows. *Lab (vSphere) and *pveLab (--proxmox) are machines.
type machines interface {
	powerOn(s *Server) bool                 // false: already on
	powerOff(s *Server) bool                // cut at once; false: already off
	shutdown(s *Server, thenBoot bool) bool // the OS shuts down (ACPI button); false: already off
	serverWatts(s *Server) int
	bmcFault(server string, w http.ResponseWriter, r *http.Request) bool // a fault switched on answered the request
	bmcLogin() (user, password string, basicAuth bool)
}

func (l *Lab) bmcFault(server string, w http.ResponseWriter, r *http.Request) bool {
	return l.faults.bmcFault(server, w, r)
}

func (l *Lab) bmcLogin() (string, string, bool) {
	return l.opts.bmcUser, l.opts.bmcPassword, !l.opts.bmcNoBasicAuth
}

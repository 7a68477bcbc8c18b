package main

// Plain servers (--storage N): machines no hypervisor API drives, the NAS or storage box that serves the lab's
// datastores (group "storage", which group "payload" needs: labswitch's [groups.payload] after = ["storage"]).
// Each has an iDRAC-shaped BMC and an OS that, once booted, answers on one TCP port (its NFS: labswitch's
// ready = ["tcp:PORT"]) and refuses it while off or booting. Its OS shuts down on the ACPI power button (the BMC's
// GracefulShutdown) or by its own command: POST /labsim/os-shutdown?server=NAME is what `systemctl poweroff`
// does, run over SSH by labswitch (the tests put OpenSSH's sshd in front of it, with that as its forced command).

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

type storageOS struct {
	machines               // the lab's: its faults and its BMC login
	delay    time.Duration // from the OS's shutdown to off (--host-shutdown-delay)
	mu       sync.Mutex
	ready    map[*Server]*gate // each server's service port: open while its OS runs
	backend  net.Listener      // what an open port passes connections to: accepts, answers nothing
}

// addStorage creates the --storage servers nas01... (on, booted, their port open), each with its BMC.
func (l *Lab) addStorage(conf *tls.Config) error {
	if l.opts.storage == 0 {
		return nil
	}
	st, err := newStorageOS(l, l.opts.hostShutdownDelay, l.opts.listen)
	if err != nil {
		return err
	}
	l.storageOS = st
	for i := 1; i <= l.opts.storage; i++ {
		name := fmt.Sprintf("nas%02d", i)
		s := &Server{Name: name, FQDN: name + ".lab.local", Group: "storage", ServiceTag: fmt.Sprintf("NAS%03d", i),
			power: "On", bootDelay: l.opts.hostBootDelay}
		if err := st.add(s, l.opts.listen); err != nil {
			return err
		}
		if s.bmc, err = startBMC(st, s, conf, l.opts.listen); err != nil {
			return err
		}
		l.storage = append(l.storage, s)
	}
	return nil
}

func newStorageOS(lab machines, delay time.Duration, listen string) (*storageOS, error) {
	backend, err := net.Listen("tcp", net.JoinHostPort(listen, "0"))
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { time.Sleep(time.Second); _ = c.Close() }()
		}
	}()
	return &storageOS{machines: lab, delay: delay, ready: map[*Server]*gate{}, backend: backend}, nil
}

// add a server whose OS runs: its port open.
func (st *storageOS) add(s *Server, listen string) error {
	g, err := newGate(listen, st.backend.Addr().String())
	if err != nil {
		return err
	}
	st.mu.Lock()
	st.ready[s] = g
	st.mu.Unlock()
	return nil
}

func (st *storageOS) port(s *Server) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ready[s].addr
}

func (st *storageOS) powerOn(s *Server) bool {
	epoch, changed := s.switchPower("On")
	if !changed {
		return false
	}
	time.AfterFunc(s.bootDelay, func() { // booted: its service answers
		if s.stillAt(epoch) {
			if err := st.ready[s].open(); err != nil {
				fmt.Printf("%s: its port could not listen again: %v\n", s.Name, err)
			}
		}
	})
	return true
}

func (st *storageOS) powerOff(s *Server) bool {
	if _, changed := s.switchPower("Off"); !changed {
		return false
	}
	st.ready[s].shut()
	return true
}

func (st *storageOS) shutdown(s *Server, thenBoot bool) bool {
	return shutdownAfter(st, s, st.delay, thenBoot)
}

// serverWatts: a small storage box idles near 35 W; off is off.
func (st *storageOS) serverWatts(s *Server) int {
	if s.powerState() != "On" {
		return 0
	}
	return 35
}

// ServeHTTP: POST /labsim/os-shutdown?server=NAME, the OS's own poweroff (202; 409 when it is off already).
func (st *storageOS) ServeHTTP(w http.ResponseWriter, r *http.Request, servers []*Server) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	for _, s := range servers {
		if s.Name == r.URL.Query().Get("server") {
			if st.shutdown(s, false) {
				w.WriteHeader(http.StatusAccepted)
			} else {
				w.WriteHeader(http.StatusConflict)
			}
			return
		}
	}
	http.Error(w, "no storage server "+r.URL.Query().Get("server"), http.StatusNotFound)
}

// portOnly: the port of a server's service (the config's ready = ["tcp:PORT"]).
func (st *storageOS) portOnly(s *Server) string {
	_, port, _ := net.SplitHostPort(st.port(s))
	return port
}

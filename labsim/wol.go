package main

// Servers without a BMC (--wol-hosts): one UDP port for the lab (printed, and
// written to the config as each such server's bmc port) powers a server on
// when a Wake-on-LAN magic packet with its MAC arrives: 6 bytes 0xFF, then the
// MAC 16 times. GET /labsim/wol lists what arrived (MAC -> packets), for tests.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
)

type wolListener struct {
	lab  *Lab
	conn *net.UDPConn
	Addr string // host:port

	mu   sync.Mutex
	seen map[string]int // MAC -> magic packets received
}

// macFor is a server's made-up, locally administered MAC address.
func macFor(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, byte(i >> 8), byte(i)}
}

func startWOL(l *Lab) (*wolListener, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(l.opts.listen)})
	if err != nil {
		return nil, err
	}
	w := &wolListener{lab: l, conn: conn, Addr: conn.LocalAddr().String(), seen: map[string]int{}}
	go w.serve()
	return w, nil
}

func (w *wolListener) serve() {
	buf := make([]byte, 1500)
	for {
		n, _, err := w.conn.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		mac := magicMAC(buf[:n])
		if mac == nil {
			continue
		}
		w.mu.Lock()
		w.seen[mac.String()]++
		w.mu.Unlock()
		for _, s := range w.lab.servers {
			if s.wol && bytes.Equal(s.MAC, mac) {
				w.lab.powerOn(s)
			}
		}
	}
}

// magicMAC is the MAC a magic packet wakes, or nil when it is not one.
func magicMAC(p []byte) net.HardwareAddr {
	i := bytes.Index(p, bytes.Repeat([]byte{0xff}, 6))
	if i < 0 || len(p) < i+6+16*6 {
		return nil
	}
	mac := p[i+6 : i+12]
	for k := 1; k < 16; k++ {
		if !bytes.Equal(p[i+6+6*k:i+12+6*k], mac) {
			return nil
		}
	}
	return net.HardwareAddr(append([]byte(nil), mac...))
}

func (w *wolListener) ServeHTTP(rw http.ResponseWriter, _ *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(w.seen)
}

func (w *wolListener) close() { _ = w.conn.Close() }

func (w *wolListener) String() string { return fmt.Sprintf("WOL %s", w.Addr) }

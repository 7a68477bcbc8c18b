package main

// A gate is a TCP front on a fixed port that refuses connections while shut:
// an ESXi host's port while its server is off or booting, vCenter's port while
// its VM is off or booting (--vcenter-vm-on payload). Open, it passes every
// connection through to the server behind it; shutting drops the connections
// in flight, as a machine losing power does.

import (
	"io"
	"net"
	"sync"
	"time"
)

type gate struct {
	addr   string // host:port, the same while shut and open
	target string // the server behind it

	mu    sync.Mutex
	ln    net.Listener // nil while shut
	conns map[net.Conn]struct{}
	fault func() string // a fault switched on for this port: "hang" (accept, never answer), "eof" (close at once); "" none
}

// newGate binds a free port on host, open, in front of target.
func newGate(host, target string) (*gate, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	g := &gate{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	g.serve(ln)
	return g, nil
}

// open starts accepting again on the same port; a no-op while open.
func (g *gate) open() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		return err
	}
	g.serveLocked(ln)
	return nil
}

// drop closes the connections in flight (a fault switched on applies to the next request of a kept-alive client).
func (g *gate) drop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.conns {
		_ = c.Close()
	}
	g.conns = map[net.Conn]struct{}{}
}

// shut refuses new connections and drops the open ones.
func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		_ = g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		_ = c.Close()
	}
	g.conns = map[net.Conn]struct{}{}
}

func (g *gate) isOpen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ln != nil
}

func (g *gate) serve(ln net.Listener) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.serveLocked(ln)
}

func (g *gate) serveLocked(ln net.Listener) {
	g.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // shut
			}
			go g.pass(c)
		}
	}()
}

// pass copies one connection both ways to the target, tracked so that shut can drop it; a fault holds or cuts it.
func (g *gate) pass(c net.Conn) {
	if g.fault != nil {
		switch g.fault() {
		case "eof": // the handshake cut short: a proxy whose node is off, pveproxy going away
			_ = c.Close()
			return
		case "hang": // accepted, never answered, until the fault goes off or the gate shuts
			g.mu.Lock()
			g.conns[c] = struct{}{}
			g.mu.Unlock()
			for g.fault() == "hang" && g.isOpen() {
				time.Sleep(50 * time.Millisecond)
			}
			g.mu.Lock()
			delete(g.conns, c)
			g.mu.Unlock()
			_ = c.Close()
			return
		}
	}
	back, err := net.Dial("tcp", g.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !g.track(c, back) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(back, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, back); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = back.Close()
	g.mu.Lock()
	delete(g.conns, c)
	delete(g.conns, back)
	g.mu.Unlock()
}

// track registers both ends; false (and both closed) when the gate shut meanwhile.
func (g *gate) track(c, back net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		_ = c.Close()
		_ = back.Close()
		return false
	}
	g.conns[c], g.conns[back] = struct{}{}, struct{}{}
	return true
}

// Command vcsim serves govmomi's vCenter simulator exactly as the library ships it: the VPX model
// (one datacenter, a standalone host, a cluster of three hosts, two VMs on each host), the tagging
// REST endpoints, nothing overridden. It is the second vCenter of labswitch's tests: one that this
// project did not shape (labsim, beside it, extends the same simulator). Its only addition is a
// certificate of its own, since the simulator's built-in one is too weak for OpenSSL's default level.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"

	_ "github.com/vmware/govmomi/vapi/simulator" // tagging REST endpoints
)

func main() {
	listen := flag.String("listen", "127.0.0.1", "address to bind")
	user := flag.String("user", "administrator@vsphere.local", "vCenter user")
	password := flag.String("password", "", "vCenter password (required)")
	certOut := flag.String("cert-out", "", "write the server's certificate (PEM) to PATH")
	flag.Parse()
	if *password == "" {
		log.Fatal("vcsim: --password is required")
	}
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	defer model.Remove()
	cert, pemBytes, sum := selfSigned(*listen)
	if *certOut != "" {
		if err := os.WriteFile(*certOut, pemBytes, 0o600); err != nil {
			log.Fatal(err)
		}
	}
	model.Service.Listen = &url.URL{Host: *listen + ":0", User: url.UserPassword(*user, *password)}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	model.Service.RegisterEndpoints = true
	server := model.Service.NewServer()
	defer server.Close()
	u := *server.URL
	u.User = nil
	fmt.Printf("THUMBPRINT %x\nREADY %s\n", sum, u.String())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

func selfSigned(host string) (tls.Certificate, []byte, [32]byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "vcsim"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true, IPAddresses: []net.IP{net.ParseIP(host)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), sha256.Sum256(der)
}

package main

// Every Proxmox VE node has a certificate of its own (/etc/pve/nodes/<node>/pve-ssl.pem), signed by the
// cluster's CA (/etc/pve/pve-root-ca.pem), as pve-cluster's PVE/Cluster/Setup.pm gen_pve_ssl_cert makes it:
// its SANs the node's name, FQDN, addresses and localhost. GET /nodes gives each node's ssl_fingerprint
// (SHA-256, upper-case hex pairs joined by colons, as Net::SSLeay's X509_get_fingerprint writes it).
//
// labsim's simplification: the cluster CA is labsim's own certificate (the one its BMCs and control port
// serve, written by --cert-out), so one file verifies everything labsim serves.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// nodeCert: a node's certificate signed by the CA of ca (labsim's own), with its SHA-256 fingerprint in PVE's form.
func nodeCert(ca *tls.Config, name, listen string) (*tls.Config, string, error) {
	caCert, err := x509.ParseCertificate(ca.Certificates[0].Certificate[0])
	if err != nil {
		return nil, "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name + ".lab.local", Organization: []string{"PVE Cluster Node"}, OrganizationalUnit: []string{"PVE Cluster Node"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(2 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{name, name + ".lab.local", "localhost"},
		IPAddresses:  []net.IP{net.ParseIP(listen)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.Certificates[0].PrivateKey)
	if err != nil {
		return nil, "", err
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pveFingerprint(der), nil
}

// pveFingerprint: "AB:CD:..." of the certificate's SHA-256.
func pveFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	pairs := make([]string, len(sum))
	for i, b := range sum {
		pairs[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(pairs, ":")
}

package main

// What labsim --proxmox prints and writes: the secrets (as export lines and an
// env file), the certificate, and a ready labswitch config for the cluster.

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	envPVEPassword = "LABSIM_PVE_PASSWORD"
	envPVEToken    = "LABSIM_PVE_TOKEN"
)

// pveFlags: the --pve-* options (only read with --proxmox).
func pveFlags(p *pveOptions) {
	flag.IntVar(&p.nodes, "pve-nodes", 3, "--proxmox: nodes in the cluster (one vote each)")
	flag.IntVar(&p.guestsPerNode, "pve-guests", 3, "--proxmox: guests per node (the first ones start at boot, in order; the last is a scratch guest)")
	flag.IntVar(&p.mgmtNodes, "pve-mgmt-nodes", 0, "--proxmox: the first N nodes are group mgmt (always on); the rest payload")
	flag.BoolVar(&p.ceph, "pve-ceph", false, "--proxmox: the cluster runs Ceph (one OSD per node, size 3, min_size 2)")
	flag.BoolVar(&p.ha, "pve-ha", false, "--proxmox: each node's first guest is an HA resource (requested state started)")
	flag.IntVar(&p.lxcEvery, "pve-lxc-every", 2, "--proxmox: every Nth guest of a node is an LXC container (0: none)")
	flag.StringVar(&p.password, "pve-password", "", "--proxmox: root@pam's password (random when empty; printed)")
	flag.StringVar(&p.tokenSecret, "pve-token-secret", "", "--proxmox: the secret of API token root@pam!labswitch (random when empty; printed)")
	flag.StringVar(&p.hung, "pve-hung", "", "--proxmox: guests that ignore a shutdown request, NAME,...")
	flag.StringVar(&p.cluster, "pve-cluster", "lab", "--proxmox: the cluster's name")
	flag.StringVar(&p.selfNode, "pve-self-node", "", "--proxmox: the node labswitch runs on (its cluster address is --listen's)")
	flag.StringVar(&p.tlsMode, "pve-tls", "ca", "--proxmox: how the written config trusts the nodes' own certificates: ca (tls.ca_file, the cluster CA written as pve-root-ca.pem beside the config) or pin (the first node's thumbprint)")
	flag.StringVar(&p.tokenACL, "pve-token-acl", "", "--proxmox: API token root@pam!labswitch with privilege separation and these ACLs only: PATH=PRIV,PRIV;PATH=... (a bare list is on /); empty: every privilege")
	flag.StringVar(&p.auth, "pve-auth", "password", "--proxmox: the written config logs in with root@pam's password or with the API token (token)")
	flag.StringVar(&p.version, "pve-version", "8.2", "--proxmox: the Proxmox VE release the API reports (9.2+: HA's disarm-ha and arm-ha, pve-ha-manager 5.1.3)")
	flag.IntVar(&p.cephMons, "pve-ceph-mons", 3, "--proxmox --pve-ceph: Ceph monitors on the first N nodes (the others only OSDs)")
	flag.DurationVar(&p.nameLoss, "pve-name-loss", 5*time.Minute, "--proxmox: how long after its node went off a guest's name is still in /cluster/resources")
	flag.StringVar(&p.wolNodes, "pve-wol-nodes", "", "--proxmox: nodes the config wakes through a peer node (bmc.via = \"proxmox\": POST /nodes/{node}/wakeonlan), NAME,...")
}

func (l *pveLab) writeOutputs() error {
	secrets := fmt.Sprintf("%s=%s\n%s=%s\n%s=%s\n", envPVEPassword, l.pve.password, envPVEToken, l.pve.tokenSecret, envBMCPassword, l.opts.bmcPassword)
	if l.opts.writeConfig != "" { // the cluster CA, as /etc/pve/pve-root-ca.pem: what tls.ca_file names
		dir, err := filepath.Abs(filepath.Dir(l.opts.writeConfig))
		if err != nil {
			return err
		}
		l.caFile = filepath.Join(dir, "pve-root-ca.pem")
		if err := os.WriteFile(l.caFile, l.certPEM, 0o644); err != nil {
			return err
		}
	}
	return writeOutputs(l.opts, secrets, l.certPEM, l.config)
}

// apiTLS: the [proxmox] tls the written config uses: the cluster CA, or the first node's own certificate pinned.
func (l *pveLab) apiTLS() string {
	if l.pve.tlsMode == "pin" || l.caFile == "" {
		return fmt.Sprintf(`{ thumbprint = "%s" }`, strings.ToLower(strings.ReplaceAll(l.nodes[0].fingerprint, ":", "")))
	}
	return fmt.Sprintf(`{ ca_file = %q }`, l.caFile)
}

func (l *pveLab) config() string {
	var b strings.Builder
	tls := fmt.Sprintf(`{ thumbprint = "%s" }`, l.thumbprint)
	fmt.Fprintf(&b, "# labswitch configuration for a labsim Proxmox VE cluster (written by labsim --proxmox --write-config).\n")
	fmt.Fprintf(&b, "# Secrets are environment references; labsim printed their values.\n\n")
	if l.pve.auth == "token" {
		fmt.Fprintf(&b, "[proxmox]\nurl = %q\ntoken = %q\ntoken_secret = { env = %q }\ntls = %s\n\n", l.apiURL, pveTokenID, envPVEToken, l.apiTLS())
	} else {
		fmt.Fprintf(&b, "[proxmox]\nurl = %q\nuser = %q\npassword = { env = %q }\ntls = %s\n\n", l.apiURL, pveUser, envPVEPassword, l.apiTLS())
	}
	fmt.Fprintf(&b, "[groups.mgmt]\nalways_on = true\n\n[groups.payload]\nalways_on = false\n")
	for _, n := range l.nodes {
		s := n.server
		fmt.Fprintf(&b, "\n[[servers]]\nname = %q\nnode = %q\ngroup = %q\nproxmox_url = %q\n", s.Name, n.name, s.Group, "https://"+n.api.addr)
		if contains(strings.Split(l.pve.wolNodes, ","), n.name) {
			fmt.Fprintf(&b, "bmc = { driver = \"wol\", via = \"proxmox\", off_after = 2 }\n")
			continue
		}
		fmt.Fprintf(&b, "bmc = { driver = \"redfish\", address = %q, user = %q, password = { env = %q }, tls = %s }\n",
			s.bmc.URL, l.opts.bmcUser, envBMCPassword, tls)
	}
	return b.String()
}

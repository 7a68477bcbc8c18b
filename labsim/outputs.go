package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	envVCenterPassword = "LABSIM_VCENTER_PASSWORD"
	envBMCPassword     = "LABSIM_BMC_PASSWORD"
)

// tagVMs creates category Lab with tag StartUp through the tagging REST API
// (as an admin would) and attaches it to the chosen VMs in one call.
func (l *Lab) tagVMs(vms []types.ManagedObjectReference) error {
	ctx := context.Background()
	u, _ := url.Parse(l.vcURL)
	sc := soap.NewClient(u, true) // labsim talking to itself
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return err
	}
	rc := rest.NewClient(vc)
	if err := rc.Login(ctx, url.UserPassword(l.opts.user, l.opts.password)); err != nil {
		return err
	}
	defer func() { _ = rc.Logout(ctx) }()
	m := tags.NewManager(rc)
	cat, err := m.CreateCategory(ctx, &tags.Category{Name: "Lab", Cardinality: "MULTIPLE",
		AssociableTypes: []string{"VirtualMachine"}, Description: "labswitch start-up and protection"})
	if err != nil {
		return err
	}
	tag, err := m.CreateTag(ctx, &tags.Tag{Name: "StartUp", CategoryID: cat, Description: "started by labswitch up"})
	if err != nil {
		return err
	}
	if len(vms) == 0 {
		return nil
	}
	refs := make([]mo.Reference, len(vms))
	for i := range vms {
		refs[i] = vms[i]
	}
	return m.AttachTagToMultipleObjects(ctx, tag, refs)
}

// writeOutputs prints the secrets as env assignments and writes the optional
// config, secrets and certificate files.
func (l *Lab) writeOutputs() error {
	secrets := fmt.Sprintf("%s=%s\n%s=%s\n%s=%s\n", envVCenterPassword, l.opts.password, envBMCPassword, l.opts.bmcPassword,
		envESXiPassword, l.opts.esxiPassword)
	return writeOutputs(l.opts, secrets, l.certPEM, l.config)
}

// writeOutputs prints the secrets as export lines and writes what the options ask for: the secrets as an env file,
// the certificate, a ready labswitch config (made only when asked). Both labs (vSphere, Proxmox VE) write so.
func writeOutputs(o options, secrets string, certPEM []byte, config func() string) error {
	for _, line := range strings.Split(strings.TrimSpace(secrets), "\n") {
		fmt.Printf("export %s\n", line)
	}
	if o.secretsFile != "" {
		if err := os.WriteFile(o.secretsFile, []byte(secrets), 0o600); err != nil {
			return err
		}
	}
	if o.certOut != "" {
		if err := os.WriteFile(o.certOut, certPEM, 0o644); err != nil {
			return err
		}
	}
	if o.writeConfig != "" {
		return os.WriteFile(o.writeConfig, []byte(config()), 0o644)
	}
	return nil
}

func (l *Lab) config() string {
	var b strings.Builder
	tls := fmt.Sprintf(`{ thumbprint = "%s" }`, l.thumbprint)
	fmt.Fprintf(&b, "# labswitch configuration for a labsim lab (written by labsim --write-config).\n")
	fmt.Fprintf(&b, "# Secrets are environment references; labsim printed their values.\n\n")
	if !l.opts.noVCenter {
		fmt.Fprintf(&b, "[vcenter]\nurl = %q\nuser = %q\npassword = { env = %q }\ntls = %s\n\n", l.vcURL, l.opts.user, envVCenterPassword, tls)
	}
	fmt.Fprintf(&b, "[esxi]\nuser = \"root\"\npassword = { env = %q }\ntls = %s\n\n", envESXiPassword, tls)
	fmt.Fprintf(&b, "[policy]\nstartup_tag = \"Lab/StartUp\"\n\n")
	fmt.Fprintf(&b, "[groups.mgmt]\nalways_on = true\n\n[groups.payload]\nalways_on = false\n")
	if len(l.storage) > 0 {
		fmt.Fprintf(&b, "after = [\"storage\"]  # the datastores' NFS: up before payload, down after it\n\n[groups.storage]\n")
	}
	for _, s := range l.servers {
		if l.opts.noVCenter { // no vCenter names the host: its address is its own API's
			fmt.Fprintf(&b, "\n[[servers]]\nname = %q\nesxi = %q\ngroup = %q\n", s.Name, strings.TrimPrefix(s.agent.URL, "https://"), s.Group)
		} else {
			fmt.Fprintf(&b, "\n[[servers]]\nname = %q\nesxi = %q\ngroup = %q\nesxi_url = %q\n", s.Name, s.FQDN, s.Group, s.agent.URL)
		}
		switch {
		case s.wol: // labsim's ESXi is down at once after its shutdown: a short unreachable window counts as off
			host, port, _ := net.SplitHostPort(l.wol.Addr)
			fmt.Fprintf(&b, "bmc = { driver = \"wol\", mac = %q, broadcast = %q, port = %s, off_after = 3 }\n", s.MAC, host, port)
		case s.plug != nil:
			fmt.Fprintf(&b, "bmc = { driver = %q, address = %q, user = \"admin\", password = { env = %q } }\n", s.plug.kind, s.plug.URL, envBMCPassword)
		default:
			fmt.Fprintf(&b, "bmc = { driver = \"redfish\", address = %q, user = %q, password = { env = %q }, tls = %s }\n",
				s.bmc.URL, l.opts.bmcUser, envBMCPassword, tls)
		}
		if s.meter != nil {
			fmt.Fprintf(&b, "meter = { driver = \"shelly\", address = %q, user = \"admin\", password = { env = %q } }\n", s.meter.URL, envBMCPassword)
		}
	}
	for _, s := range l.storage {
		fmt.Fprintf(&b, "\n[[servers]]\nname = %q\nplatform = \"servers\"\naddress = %q\ngroup = %q\nready = [\"tcp:%s\"]\n", s.Name,
			l.opts.listen, s.Group, l.storageOS.portOnly(s))
		fmt.Fprintf(&b, "bmc = { driver = \"redfish\", address = %q, user = %q, password = { env = %q }, tls = %s }\n",
			s.bmc.URL, l.opts.bmcUser, envBMCPassword, tls)
	}
	return b.String()
}

"""The platforms labswitch drives, one package each. ``servers``: plain machines no hypervisor API drives (a NAS, a
storage box, a firewall: ``platform = "servers"``), reached through their OS (SSH, their services' ports) and their
BMC. vSphere (``labswitch.vsphere``) and Proxmox VE (``labswitch.proxmox``) move here behind one contract (issue 38)."""

variable "course" {
  type        = string
  default     = "os101"
  description = "Course tag: prefix of VM and container names ([a-z0-9-])."
}

variable "domain" {
  type        = string
  default     = "lab.localhost"
  description = "Domain the session hostnames live under."
}

variable "base_image" {
  type        = string
  description = "Base qcow2 every VM is a thin clone of (the rig exports LAB_BASE_IMAGE)."
}

variable "kernel" {
  type        = string
  default     = null
  description = "Direct kernel boot: kernel path on the libvirt host (LAB_KERNEL); null to boot the disk."
}

variable "initrd" {
  type        = string
  default     = null
  description = "Direct kernel boot: initrd path (LAB_INITRD)."
}

variable "cmdline" {
  type        = string
  default     = null
  description = "Direct kernel boot: kernel command line (LAB_CMDLINE)."
}

variable "network" {
  type        = string
  default     = "default"
  description = "libvirt network the VMs join (LAB_NETWORK)."
}

variable "domain_type" {
  type        = string
  default     = "kvm"
  description = "libvirt domain type: kvm on real hosts, qemu (TCG) in nested test machines."
}

variable "ssh_public_key_file" {
  type        = string
  description = "Public key installed for the student user in every VM."
}

variable "ssh_private_key_file" {
  type        = string
  description = "Matching private key, uploaded into each terminal container (0600)."
}

variable "terminal_image" {
  type        = string
  default     = "lab/ttyd-ssh:1"
  description = "Image with ttyd and an ssh client (see docs/resources/terminal.md)."
}

variable "port_base" {
  type        = number
  default     = 7701
  description = "Student n (0-based row of the roster) gets http://127.0.0.1:<port_base + n>."
}

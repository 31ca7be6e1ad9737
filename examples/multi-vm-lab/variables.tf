variable "course" {
  type        = string
  default     = "sec101"
  description = "Course tag: prefix of network, VM and container names ([a-z0-9-])."
}

variable "students" {
  type        = map(number)
  default     = { ada = 0, grace = 1 }
  description = "Student -> lab number: the index of the student's subnet in lab_cidrs. Keep numbers stable (a changed number replaces that lab)."
}

variable "machines" {
  type        = list(string)
  default     = ["attacker", "target"]
  description = "The machines of every lab; the terminal lands on the first."
}

variable "lab_cidrs" {
  type        = string
  default     = "192.168.160.0/20"
  description = "The range the labs' subnets are cut from, one per lab number."
}

variable "lab_prefix" {
  type        = number
  default     = 24
  description = "Prefix length of each lab's subnet (16-27)."
}

variable "domain" {
  type        = string
  default     = "lab.localhost"
  description = "Domain the session hostnames live under."
}

variable "ttl" {
  type        = string
  default     = "4h"
  description = "How long each session lasts."
}

variable "key_dir" {
  type        = string
  description = "Directory of the machines' key pairs: <student>-<machine> and <student>-<machine>.pub."
}

variable "base_image" {
  type        = string
  description = "Base qcow2 every VM is a thin clone of (the rig exports LAB_BASE_IMAGE)."
}

variable "overlay_dir" {
  type        = string
  default     = "/var/lib/libvirt/images"
  description = "Directory of the machines' overlays on the libvirt host."
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

variable "domain_type" {
  type        = string
  default     = "kvm"
  description = "libvirt domain type: kvm on real hosts, qemu (TCG) in nested test machines."
}

variable "memory_mb" {
  type        = number
  default     = 1024
  description = "Memory of each machine (MiB)."
}

variable "terminal_image" {
  type        = string
  default     = "lab/ttyd-ssh:1"
  description = "Image with ttyd and an ssh client (see docs/resources/terminal.md)."
}

variable "gateway_image" {
  type        = string
  default     = "traefik:v3.7.15"
  description = "Traefik v3 image of the gateway (the rig builds lab/traefik:3.7.15: LAB_GATEWAY_IMAGE)."
}

variable "gateway_host_ip" {
  type        = string
  default     = "127.0.0.1"
  description = "Address of the Docker host the gateway listens on."
}

variable "gateway_port" {
  type        = number
  default     = 8080
  description = "Port of the Docker host the gateway listens on: students open http://lab-<id>.<domain>:<port>."
}

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
  default     = "lab/ttyd-ssh:2"
  description = "Image with ttyd, an ssh client and tmux (see docs/resources/terminal.md)."
}

variable "gateway_image" {
  type        = string
  default     = "traefik:v3.7.15"
  description = "Traefik v3 image of the gateway (the rig builds lab/traefik:3.7.15: LAB_GATEWAY_IMAGE)."
}

variable "gateway_host_ip" {
  type        = string
  default     = "127.0.0.1"
  description = "Address of the Docker host the gateway listens on (0.0.0.0 for students on other machines)."
}

variable "gateway_port" {
  type        = number
  default     = 8080
  description = "Port of the Docker host the gateway listens on: students open http://lab-<id>.<domain>:<port>."
}

variable "url_scheme" {
  type        = string
  default     = null
  description = "Scheme of the students' URLs; null: the gateway's (http). Behind a TLS-ending tunnel: https."
}

variable "memory_mb" {
  type        = number
  default     = 1024
  description = "Memory of each student's VM, MiB."
}

variable "instructor_username" {
  type        = string
  default     = "instructor"
  description = "The instructor's username for the class page and the watch views."
}

variable "instructor_password" {
  type        = string
  sensitive   = true
  description = "The instructor's password (8+ characters; scripts/classroom.sh generates one). Only its bcrypt hash reaches the gateway."
}

variable "class_page_image" {
  type        = string
  default     = "lab/class-page:1"
  description = "Image of the class page (busybox httpd + curl; the rig builds lab/class-page:1: LAB_CLASS_PAGE_IMAGE)."
}

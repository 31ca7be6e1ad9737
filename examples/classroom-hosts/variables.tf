variable "hosts" {
  description = "The two hosts (h1, h2): their libvirt URI, Docker host, storage pool (where the base image and overlays go), the Docker socket path on the host (mounted into its gateway), the libvirt network VMs join, the gateway's port, and where its sessions' DNS records point (the gateway's public name; with a provider dns block)."
  type = map(object({
    libvirt_uri   = string
    docker_host   = string
    storage_pool  = optional(string)
    docker_socket = optional(string, "/var/run/docker.sock")
    network       = optional(string, "default")
    gateway_port  = optional(number, 8080)
    dns_target    = optional(string)
  }))
}

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
  description = "Base image file on this machine: uploaded once into each host's pool (lab_image); each VM is a thin clone of its host's copy."
}

variable "kernel" {
  type        = string
  default     = null
  description = "Direct kernel boot: kernel path on the hosts; null to boot the disk."
}

variable "initrd" {
  type        = string
  default     = null
  description = "Direct kernel boot: initrd path."
}

variable "cmdline" {
  type        = string
  default     = null
  description = "Direct kernel boot: kernel command line."
}

variable "domain_type" {
  type        = string
  default     = "kvm"
  description = "libvirt domain type: kvm on real hosts, qemu (TCG) in nested test machines."
}

variable "memory_mb" {
  type        = number
  default     = 512
  description = "Memory of each VM (MiB)."
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
  description = "Image with ttyd and an ssh client, present on every host."
}

variable "gateway_image" {
  type        = string
  default     = "traefik:v3.7.15"
  description = "Traefik v3 image of the gateways, present on every host."
}

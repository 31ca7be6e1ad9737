# A class across hosts (acc_hosts): the provider names its hosts, each host gets its own gateway
# and its own copy of the base image (a lab_image uploaded through its libvirt), and the roster is
# spread over them with element(local.host_names, index). Terraform runs in the
# rig's control namespace: it reaches the hosts' sshd and gateways, never their VMs or containers.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

variable "run_id" { type = string }
variable "students" { type = list(string) }
variable "hosts" {
  description = "name -> where its daemons are (from $LAB_CACHE/hosts/<name>.env)"
  type = map(object({
    libvirt_uri   = string
    docker_host   = string
    storage_pool  = string
    docker_socket = string
    network       = string
  }))
}
variable "base_image" {
  description = "The base image file in the control namespace: uploaded once into each host's pool"
  type        = string
}
variable "class_hosts" {
  description = "The hosts the class is spread over (null: all of var.hosts); [\"h1\"] puts the whole class on h1"
  type        = list(string)
  default     = null
}
variable "kernel" { type = string }
variable "initrd" { type = string }
variable "cmdline" { type = string }
variable "ssh_private_key_file" { type = string }
variable "ssh_public_key_file" { type = string }
variable "terminal_image" { type = string }
variable "gateway_image" { type = string }
variable "gateway_port" { type = number }

# provider.tf (written by the test) names the hosts: `host "h1" { ... }` per host. Block labels must be
# known at validate time, so they are literals there, not a dynamic block over var.hosts.

locals {
  host_names = var.class_hosts == null ? sort(keys(var.hosts)) : var.class_hosts
  # student -> the host they are placed on (round robin over the hosts)
  placement = { for i, s in var.students : s => element(local.host_names, i) }
}

# The base image reaches each host through that host's libvirt (no shared filesystem), into the
# host block's storage_pool; the VMs on the host are thin clones of it.
resource "lab_image" "base" {
  for_each = toset(local.host_names)

  host   = each.key
  name   = "hosts-${var.run_id}-base.qcow2"
  source = var.base_image
}

resource "lab_gateway" "edge" {
  for_each = toset(local.host_names)

  name          = "hosts-${var.run_id}-edge"
  host          = each.key
  image         = var.gateway_image
  docker_socket = var.hosts[each.key].docker_socket
  # On the host's own address: the control namespace reaches it there.
  http = { host_ip = "0.0.0.0", host_port = var.gateway_port }
}

resource "lab_session" "student" {
  for_each = local.placement

  student    = each.key
  ttl        = "1h"
  url_scheme = lab_gateway.edge[each.value].url_scheme
  url_port   = lab_gateway.edge[each.value].url_port
}

resource "lab_vm" "student" {
  for_each = local.placement

  host                = each.value
  name                = "hosts-${var.run_id}-${each.key}"
  base_image          = lab_image.base[each.value].path # overlays: volumes in the host block's storage_pool
  kernel              = var.kernel
  initrd              = var.initrd
  cmdline             = "${var.cmdline} lab.hostname=hosts-${var.run_id}-${each.key}"
  network             = var.hosts[each.value].network
  domain_type         = "qemu"
  memory_mb           = 512
  vcpus               = 1
  ssh_authorized_keys = [trimspace(file(var.ssh_public_key_file))]
  # The VM's address is private to its host: create waits for the lease, and the terminal's
  # readiness checks SSH from its container on that host.
  wait_for = "ip"
}

resource "lab_terminal" "student" {
  for_each = local.placement

  host            = each.value
  name            = "hosts-${var.run_id}-${each.key}"
  gateway         = lab_gateway.edge[each.value].id
  hostname        = lab_session.student[each.key].hostname
  target_host     = lab_vm.student[each.key].ip
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image
}

output "students" {
  value = {
    for s, h in local.placement : s => {
      host     = h
      url      = lab_session.student[s].url
      hostname = lab_session.student[s].hostname
      vm       = lab_vm.student[s].name
      image    = lab_vm.student[s].base_image
      ready    = lab_terminal.student[s].ready
    }
  }
}

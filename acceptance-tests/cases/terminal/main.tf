# Two students, each with a session, a VM and a browser terminal into that VM. Run inside the rig by
# acceptance-tests/terminal.rs, which writes terraform.tfvars from rig.env.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  domain = "lab.localhost"
}

variable "run_id" { type = string }
variable "students" { type = list(string) }
variable "base_image" { type = string }
variable "kernel" { type = string }
variable "initrd" { type = string }
variable "cmdline" { type = string }
variable "network" { type = string }
variable "domain_type" { type = string }
variable "ssh_private_key_file" { type = string }
variable "ssh_public_key_file" { type = string }
variable "overlay_dir" { type = string }
variable "terminal_image" { type = string }
variable "port_base" { type = number }
variable "password" {
  type      = string
  sensitive = true
}

locals {
  index = { for i, s in var.students : s => i }
}

resource "lab_session" "s" {
  for_each = local.index
  student  = "${each.key}@example.edu"
}

resource "lab_vm" "vm" {
  for_each = local.index

  name        = "dockertest-${var.run_id}-${each.key}"
  hostname    = "dockertest-${var.run_id}-${each.key}"
  base_image  = var.base_image
  kernel      = var.kernel
  initrd      = var.initrd
  cmdline     = "${var.cmdline} lab.hostname=dockertest-${var.run_id}-${each.key}"
  network     = var.network
  domain_type = var.domain_type
  overlay_dir = var.overlay_dir
  # One key per line, like authorized_keys.
  ssh_authorized_keys = split("\n", trimspace(file(var.ssh_public_key_file)))
}

resource "lab_terminal" "t" {
  for_each = local.index

  name            = "dockertest-${var.run_id}-${each.key}"
  target_host     = lab_vm.vm[each.key].ip
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image
  traefik         = false
  publish         = { host_ip = "127.0.0.1", host_port = var.port_base + each.value }
  credential      = { username = each.key, password = var.password }
  labels = {
    "lab.session"    = lab_session.s[each.key].id
    "lab.vm"         = lab_vm.vm[each.key].name
    "dockertest.run" = var.run_id
  }
}

output "terminals" {
  value = {
    for k, t in lab_terminal.t : k => {
      url      = t.url
      ready    = t.ready
      expect   = lab_vm.vm[k].name
      username = k
      id       = t.id
      name     = t.name
    }
  }
}

# A persistent terminal (the default) behind a gateway: one student with a session, a VM and a
# terminal. Run inside the rig by acceptance-tests/persist.rs, which writes terraform.tfvars from rig.env.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  domain = "lab.localhost"
}

variable "run_id" { type = string }
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
variable "gateway_image" { type = string }
variable "http_port" { type = number }

resource "lab_gateway" "edge" {
  name       = "persistgw-${var.run_id}"
  image      = var.gateway_image
  http       = { host_ip = "127.0.0.1", host_port = var.http_port }
  url_scheme = "http"
}

resource "lab_session" "s" {
  student    = "ann@example.edu"
  url_scheme = lab_gateway.edge.url_scheme
  url_port   = lab_gateway.edge.url_port
}

resource "lab_vm" "vm" {
  name                = "persist-${var.run_id}"
  hostname            = "persist-${var.run_id}"
  base_image          = var.base_image
  kernel              = var.kernel
  initrd              = var.initrd
  cmdline             = "${var.cmdline} lab.hostname=persist-${var.run_id}"
  network             = var.network
  domain_type         = var.domain_type
  overlay_dir         = var.overlay_dir
  memory_mb           = 512
  ssh_authorized_keys = split("\n", trimspace(file(var.ssh_public_key_file)))
}

resource "lab_terminal" "t" {
  name            = "persist-${var.run_id}"
  gateway         = lab_gateway.edge.id
  hostname        = lab_session.s.hostname
  target_host     = lab_vm.vm.ip
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image
  labels          = { "persist.run" = var.run_id }
}

output "student" {
  value = {
    url              = lab_session.s.url
    vm               = lab_vm.vm.name
    terminal         = lab_terminal.t.name
    persistent       = lab_terminal.t.persistent
    clients          = lab_terminal.t.clients
    last_activity_at = lab_terminal.t.last_activity_at
  }
}

# The instructor's side: a gateway with an instructor credential (so a watch route per terminal
# and a class page), and ann and bob with a session, a VM and a terminal each: ann's terminal is
# watched read-only, bob's with take-over. `stopped` lists the students whose VM is stopped
# (`running = false`). Run inside the rig by acceptance-tests/watch.rs, which writes
# terraform.tfvars from rig.env.
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
variable "overlay_dir" { type = string }
variable "ssh_private_key_file" { type = string }
variable "ssh_public_key_file" { type = string }
variable "terminal_image" { type = string }
variable "gateway_image" { type = string }
variable "class_page_image" { type = string }
variable "http_port" { type = number }
variable "stopped" {
  type    = set(string)
  default = []
}
variable "instructor_password" {
  type      = string
  sensitive = true
}

resource "lab_gateway" "edge" {
  name             = "watchtest-${var.run_id}"
  image            = var.gateway_image
  http             = { host_ip = "127.0.0.1", host_port = var.http_port }
  class_page_image = var.class_page_image
  instructor = {
    username = "prof"
    password = var.instructor_password
  }
}

resource "lab_session" "s" {
  for_each   = toset(["ann", "bob"])
  student    = "${each.key}@example.edu"
  ttl        = "2h"
  url_scheme = lab_gateway.edge.url_scheme
  url_port   = lab_gateway.edge.url_port
}

locals {
  takeover = { ann = false, bob = true }
}

resource "lab_vm" "vm" {
  for_each = local.takeover

  name                = "watchtest-${var.run_id}-${each.key}"
  hostname            = "watchtest-${var.run_id}-${each.key}"
  base_image          = var.base_image
  kernel              = var.kernel
  initrd              = var.initrd
  cmdline             = "${var.cmdline} lab.hostname=watchtest-${var.run_id}-${each.key}"
  network             = var.network
  domain_type         = var.domain_type
  overlay_dir         = var.overlay_dir
  memory_mb           = 512
  ssh_authorized_keys = split("\n", trimspace(file(var.ssh_public_key_file)))
  running             = !contains(var.stopped, each.key)
}

resource "lab_terminal" "t" {
  for_each = local.takeover

  name     = "watchtest-${var.run_id}-${each.key}"
  gateway  = lab_gateway.edge.id
  hostname = lab_session.s[each.key].hostname
  # A stopped VM has no address (null, which a required argument cannot be).
  target_host     = coalesce(lab_vm.vm[each.key].ip, "${lab_vm.vm[each.key].name}.invalid")
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image
  watch_takeover  = each.value
  labels = {
    "watchtest.run"  = var.run_id
    "lab.student"    = each.key
    "lab.vm"         = lab_vm.vm[each.key].name
    "lab.expires_at" = lab_session.s[each.key].expires_at
  }

  lifecycle {
    # The terminal keeps the address its VM had (a restarted VM gets the same lease), so stopping
    # the VM does not replace it: the class page then finds that address not answering.
    ignore_changes = [target_host]
  }
}

output "gateway" {
  value     = lab_gateway.edge
  sensitive = true
}

output "students" {
  value = {
    for k, t in lab_terminal.t : k => {
      url       = lab_session.s[k].url
      watch_url = t.watch_url
      expires   = lab_session.s[k].expires_at
      ready     = t.ready
      vm        = lab_vm.vm[k].name
      running   = lab_vm.vm[k].running
      state     = lab_vm.vm[k].state
    }
  }
}

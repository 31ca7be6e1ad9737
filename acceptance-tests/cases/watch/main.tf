# The instructor's side: a gateway with an instructor credential (so a watch route per terminal
# and a class page), ann with a session and a read-only watched terminal aimed at a stand-in SSH
# port that answers with a banner (her "VM" runs), and bob with a session and a terminal with
# take-over aimed at one that does not (his "VM" does not answer). No VM boots. Run inside the rig
# by acceptance-tests/watch.rs, which writes terraform.tfvars.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  domain = "lab.localhost"
}

variable "run_id" { type = string }
variable "ssh_private_key_file" { type = string }
variable "terminal_image" { type = string }
variable "gateway_image" { type = string }
variable "class_page_image" { type = string }
variable "http_port" { type = number }
variable "stand_in_host" { type = string }
variable "stand_in_port" { type = number }
variable "banner_port" { type = number }
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
  targets = {
    ann = { host = var.stand_in_host, port = var.banner_port, vm = "ann-vm", takeover = false }
    bob = { host = var.stand_in_host, port = var.stand_in_port, vm = "none", takeover = true }
  }
}

resource "lab_terminal" "t" {
  for_each = local.targets

  name            = "watchtest-${var.run_id}-${each.key}"
  gateway         = lab_gateway.edge.id
  hostname        = lab_session.s[each.key].hostname
  target_host     = each.value.host
  target_port     = each.value.port
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image
  watch_takeover  = each.value.takeover
  labels = {
    "watchtest.run"  = var.run_id
    "lab.student"    = each.key
    "lab.vm"         = each.value.vm
    "lab.expires_at" = lab_session.s[each.key].expires_at
  }
}

output "gateway" {
  value = lab_gateway.edge
  sensitive = true
}

output "students" {
  value = {
    for k, t in lab_terminal.t : k => {
      url       = lab_session.s[k].url
      watch_url = t.watch_url
      expires   = lab_session.s[k].expires_at
      ready     = t.ready
    }
  }
}

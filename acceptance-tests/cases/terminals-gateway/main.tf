# A gateway and `terminals` terminals routed through it, all aimed at one stand-in SSH port (no
# VM); with `stalled_port`, one more terminal whose target never answers, so its create keeps
# terraform running (the kill test). Values from terraform.tfvars.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {}

variable "name" { type = string }
variable "terminals" { type = number }
variable "target_host" { type = string }
variable "target_port" { type = number }
variable "stalled_port" {
  type    = number
  default = 0
}
variable "http_port" { type = number }
variable "ssh_private_key_file" { type = string }
variable "terminal_image" { type = string }
variable "gateway_image" { type = string }

resource "lab_gateway" "edge" {
  name  = var.name
  image = var.gateway_image
  http  = { host_ip = "127.0.0.1", host_port = var.http_port }
}

resource "lab_terminal" "t" {
  count = var.terminals

  name            = "${var.name}-${count.index}"
  gateway         = lab_gateway.edge.id
  hostname        = "${var.name}-${count.index}.lab.localhost"
  target_host     = var.target_host
  target_port     = var.target_port
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image
  labels          = { "dockertest.run" = var.name }
}

resource "lab_terminal" "stalled" {
  count = var.stalled_port > 0 ? 1 : 0

  name            = "${var.name}-stalled"
  gateway         = lab_gateway.edge.id
  hostname        = "${var.name}-stalled.lab.localhost"
  target_host     = var.target_host
  target_port     = var.stalled_port
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image
  labels          = { "dockertest.run" = var.name }
}

output "ids" {
  value = concat([lab_gateway.edge.id], lab_terminal.t[*].id)
}

output "ready" {
  value = alltrue(concat([lab_gateway.edge.ready], lab_terminal.t[*].ready, lab_terminal.stalled[*].ready))
}

# A gateway, one VM with a display, its rescue console and its graphical console, both routed
# through the gateway under the VM's hostname (acc_console). Values come from terraform.tfvars, which the test writes from rig.env.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {}

variable "name" { type = string }
variable "base_image" { type = string }
variable "kernel" { type = string }
variable "initrd" { type = string }
variable "cmdline" { type = string }
variable "network" { type = string }
variable "overlay_dir" { type = string }
variable "http_port" { type = number }
variable "gateway_image" { type = string }
variable "console_image" { type = string }
variable "vnc_image" { type = string }

resource "lab_gateway" "edge" {
  name  = var.name
  image = var.gateway_image
  http  = { host_ip = "127.0.0.1", host_port = var.http_port }
}

resource "lab_vm" "vm" {
  name        = var.name
  base_image  = var.base_image
  overlay_dir = var.overlay_dir
  memory_mb   = 512
  vcpus       = 1
  domain_type = "qemu"
  network     = var.network
  kernel      = var.kernel
  initrd      = var.initrd
  cmdline     = var.cmdline
  wait_for    = "ip"
  graphics    = true
}

resource "lab_console" "vm" {
  name     = "${var.name}-console"
  domain   = lab_vm.vm.name
  gateway  = lab_gateway.edge.id
  hostname = "${var.name}.lab.localhost"
  image    = var.console_image
}

resource "lab_console" "screen" {
  type     = "vnc"
  name     = "${var.name}-vnc"
  domain   = lab_vm.vm.name
  gateway  = lab_gateway.edge.id
  hostname = "${var.name}.lab.localhost"
  image    = var.vnc_image
}

output "url" {
  value     = lab_console.vm.url
  sensitive = true
}

output "vnc_url" {
  value     = lab_console.screen.url
  sensitive = true
}

# A VM whose base image cannot boot (an empty disk): create must time out (or be interrupted) and
# undo every step.
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
variable "create_timeout" {
  type    = string
  default = "25s"
}

resource "lab_vm" "broken" {
  name        = var.name
  base_image  = var.base_image
  overlay_dir = var.overlay_dir
  memory_mb   = 256
  vcpus       = 1
  domain_type = "qemu"
  network     = var.network
  kernel      = var.kernel
  initrd      = var.initrd
  cmdline     = var.cmdline
  wait_for    = "ip"

  timeouts {
    create = var.create_timeout
  }
}

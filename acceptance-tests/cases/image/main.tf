# A base image uploaded into the rig's storage pool (LAB_STORAGE_POOL) and, with `with_vm`, one
# VM booted from it. Values come from terraform.tfvars, which the acceptance test writes.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

# libvirt_uri comes from LAB_LIBVIRT_URI (rig.env).
provider "lab" {}

variable "prefix" { type = string }
# The rig's storage pool (LAB_STORAGE_POOL).
variable "pool" { type = string }
variable "source_image" { type = string }
variable "kernel" { type = string }
variable "initrd" { type = string }
variable "cmdline" { type = string }
variable "network" { type = string }
variable "ssh_key" { type = string }
variable "with_vm" {
  type    = bool
  default = true
}

resource "lab_image" "base" {
  name   = "${var.prefix}-base.qcow2"
  pool   = var.pool
  source = var.source_image
  sha256 = filesha256(var.source_image)

  timeouts {
    create = "10m"
  }
}

resource "lab_vm" "student" {
  count = var.with_vm ? 1 : 0

  name                = "${var.prefix}-vm"
  base_image          = lab_image.base.path
  storage_pool        = var.pool
  memory_mb           = 512
  vcpus               = 1
  domain_type         = "qemu"
  network             = var.network
  kernel              = var.kernel
  initrd              = var.initrd
  cmdline             = var.cmdline
  ssh_authorized_keys = [var.ssh_key]

  timeouts {
    create = "5m"
    delete = "2m"
  }
}

output "image" {
  value = lab_image.base
}

output "vm" {
  value = one([for vm in lab_vm.student : { ip = vm.ip, overlay_path = vm.overlay_path }])
}

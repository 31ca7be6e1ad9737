# A base image uploaded into the rig's storage pool (LAB_STORAGE_POOL) and, with `with_vm`, one
# VM booted from it. Values come from terraform.tfvars, which the acceptance test writes.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

# libvirt_uri and storage_pool come from LAB_LIBVIRT_URI and LAB_STORAGE_POOL (rig.env).
provider "lab" {}

variable "prefix" { type = string }
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
  value = var.with_vm ? { ip = lab_vm.student[0].ip, overlay_path = lab_vm.student[0].overlay_path } : null
}

# One VM whose CD-ROM drive the test fills, changes and empties (acc_media). Values come from
# terraform.tfvars, which the test writes from rig.env; `cdrom` is set per step with -var.
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
variable "ssh_key" { type = string }
variable "cdrom" {
  type    = string
  default = null
}

resource "lab_vm" "lab" {
  name                = var.name
  base_image          = var.base_image
  overlay_dir         = var.overlay_dir
  memory_mb           = 512
  vcpus               = 1
  domain_type         = "qemu"
  network             = var.network
  kernel              = var.kernel
  initrd              = var.initrd
  cmdline             = var.cmdline
  ssh_authorized_keys = [var.ssh_key]
  cdrom               = var.cdrom

  timeouts {
    create = "5m"
    delete = "2m"
  }
}

output "vm" {
  value = { id = lab_vm.lab.id, ip = lab_vm.lab.ip, cdrom = lab_vm.lab.cdrom }
}

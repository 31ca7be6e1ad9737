# VMs for acc_faults: guests on one libvirt network with `isolated` as the test sets it, and the
# VM whose create meets a daemon restart. Values come from terraform.tfvars (written from rig.env).
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

# libvirt_uri comes from LAB_LIBVIRT_URI (rig.env of the rig the test runs against).
provider "lab" {}

variable "students" { type = set(string) }
variable "base_image" { type = string }
variable "kernel" { type = string }
variable "initrd" { type = string }
variable "cmdline" { type = string }
variable "network" { type = string }
variable "overlay_dir" { type = string }
variable "ssh_key" { type = string }
variable "isolated" {
  type    = bool
  default = true
}

resource "lab_vm" "student" {
  for_each = var.students

  name                = each.key
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
  isolated            = var.isolated

  timeouts {
    create = "5m"
    delete = "2m"
  }
}

output "vms" {
  value = { for k, vm in lab_vm.student : k => { id = vm.id, ip = vm.ip } }
}

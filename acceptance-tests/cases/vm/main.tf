# Two student VMs from a for_each, booted on the rig (direct kernel boot, TCG). Values come from
# terraform.tfvars, which the acceptance test writes from rig.env.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

# libvirt_uri comes from LAB_LIBVIRT_URI (rig.env).
provider "lab" {}

variable "students" { type = set(string) }
variable "base_image" { type = string }
variable "kernel" { type = string }
variable "initrd" { type = string }
variable "cmdline" { type = string }
variable "network" { type = string }
variable "overlay_dir" { type = string }
variable "ssh_key" { type = string }
variable "memory_mb" {
  type    = number
  default = 512
}
variable "running" {
  type    = bool
  default = true
}
# What create waits for: "ssh", "ip" or "none" (tests that need no guest use "none").
variable "wait_for" {
  type    = string
  default = "ssh"
}
# cloud-init user data per student (a NoCloud seed is attached to those listed).
variable "cloud_init" {
  type    = map(string)
  default = {}
}

resource "lab_vm" "student" {
  for_each = var.students

  name                = each.key
  base_image          = var.base_image
  overlay_dir         = var.overlay_dir
  memory_mb           = var.memory_mb
  vcpus               = 1
  domain_type         = "qemu"
  network             = var.network
  kernel              = var.kernel
  initrd              = var.initrd
  cmdline             = var.cmdline
  ssh_authorized_keys = [var.ssh_key]
  running             = var.running
  wait_for            = var.wait_for
  cloud_init          = lookup(var.cloud_init, each.key, null)

  timeouts {
    create = "5m"
    delete = "2m"
  }
}

output "vms" {
  value = {
    for k, vm in lab_vm.student : k => {
      id = vm.id, ip = vm.ip, mac = vm.mac, state = vm.state, overlay_path = vm.overlay_path, console = vm.console
    }
  }
}

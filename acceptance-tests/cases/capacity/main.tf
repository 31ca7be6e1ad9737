# One VM, only ever planned (nothing boots): the plan-time capacity check against the rig's
# libvirt host. Values from terraform.tfvars, which the acceptance test writes from rig.env.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

variable "strict_capacity" {
  type    = bool
  default = false
}
variable "memory_mb" { type = number }
variable "base_image" { type = string }
variable "network" { type = string }
variable "overlay_dir" { type = string }

# libvirt_uri comes from LAB_LIBVIRT_URI (rig.env).
provider "lab" {
  strict_capacity = var.strict_capacity
}

resource "lab_vm" "big" {
  name        = "capacity-check"
  base_image  = var.base_image
  overlay_dir = var.overlay_dir
  memory_mb   = var.memory_mb
  vcpus       = 1
  domain_type = "qemu"
  network     = var.network
  wait_for    = "none"
}

# One VM of the rig's cloud-init image (systemd boot, Debian's cloud-init): everything per VM reaches it
# through the NoCloud seed. Values come from terraform.tfvars, which acc_cloud_init writes from rig.env.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

# libvirt_uri comes from LAB_LIBVIRT_URI (rig.env).
provider "lab" {}

variable "name" { type = string }
variable "base_image" { type = string }
variable "kernel" { type = string }
variable "initrd" { type = string }
variable "cmdline" { type = string }
variable "network" { type = string }
variable "overlay_dir" { type = string }
variable "cloud_init" { type = string }

resource "lab_vm" "guest" {
  name        = var.name
  base_image  = var.base_image
  overlay_dir = var.overlay_dir
  memory_mb   = 768
  vcpus       = 1
  domain_type = "qemu"
  network     = var.network
  kernel      = var.kernel
  initrd      = var.initrd
  cmdline     = var.cmdline
  cloud_init  = var.cloud_init

  # cloud-init under TCG on a shared 2-core machine: ~1 min to SSH when idle, several when busy.
  timeouts {
    create = "10m"
    delete = "2m"
  }
}

output "ip" {
  value = lab_vm.guest.ip
}

output "overlay_path" {
  value = lab_vm.guest.overlay_path
}

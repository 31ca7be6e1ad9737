variable "students" {
  type    = set(string)
  default = ["ada", "grace", "linus"]
}

resource "lab_vm" "student" {
  for_each = var.students

  name       = "os101-${each.key}"
  base_image = "/var/lib/libvirt/images/base/debian-12-lab.qcow2"
  memory_mb  = 2048
  vcpus      = 2
  network    = "default"

  # Direct kernel boot: the provider appends lab.hostname= and lab.authkey= to the command line.
  kernel  = "/var/lib/libvirt/images/base/vmlinuz"
  initrd  = "/var/lib/libvirt/images/base/initrd.img"
  cmdline = "root=/dev/vda rw console=ttyS0 quiet"

  ssh_authorized_keys = [file("${path.module}/keys/student_ed25519.pub")]

  # An ISO in the VM's CD-ROM drive: change or remove this line to swap or eject it in place.
  cdrom = "/var/lib/libvirt/images/iso/os101-tools.iso"

  timeouts {
    create = "5m"
  }
}

output "ips" {
  value = { for k, vm in lab_vm.student : k => vm.ip }
}

# A rescue console for one student's VM: its serial console in the browser, for when SSH is broken.
resource "lab_gateway" "class" {
  name = "os101"
}

resource "lab_session" "ada" {
  student = "ada@example.edu"
  ttl     = "4h"
}

resource "lab_vm" "ada" {
  name       = "ada"
  base_image = "/var/lib/libvirt/images/debian-12-lab.qcow2"
  kernel     = "/var/lib/libvirt/images/vmlinuz"
  cmdline    = "root=/dev/vda rw console=ttyS0" # the kernel and a getty on the serial console
}

resource "lab_console" "ada" {
  name     = "console-${lab_session.ada.id}"
  domain   = lab_vm.ada.name
  gateway  = lab_gateway.class.id
  hostname = lab_session.ada.hostname # served under https://<hostname>/console/<token>/
}

# Hand it to whoever helps the student (the instructor): the token is the only key to it.
output "rescue_console" {
  value     = lab_console.ada.url
  sensitive = true
}

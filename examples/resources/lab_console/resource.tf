# A rescue console for one student's VM: its serial console in the browser, for when SSH is broken,
# and its graphical console (noVNC).
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
  graphics   = true                             # a VNC display (on the hypervisor's loopback) for type = "vnc"
}

resource "lab_console" "ada" {
  name     = "console-${lab_session.ada.id}"
  domain   = lab_vm.ada.name
  gateway  = lab_gateway.class.id
  hostname = lab_session.ada.hostname # served under https://<hostname>/console/<token>/
}

# The graphical console of the same VM: noVNC in the browser, under https://<hostname>/vnc/<token>/.
resource "lab_console" "ada_screen" {
  type     = "vnc"
  name     = "screen-${lab_session.ada.id}"
  domain   = lab_vm.ada.name
  gateway  = lab_gateway.class.id
  hostname = lab_session.ada.hostname
}

# Hand them to whoever should have them: each token is the only key to its console.
output "rescue_console" {
  value     = lab_console.ada.url
  sensitive = true
}

output "screen" {
  value     = lab_console.ada_screen.url
  sensitive = true
}

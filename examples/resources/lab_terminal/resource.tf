# One browser terminal into one VM, routed by Traefik to the student's session hostname.
resource "lab_session" "ada" {
  student = "ada@example.edu"
  ttl     = "4h"
}

resource "lab_vm" "ada" {
  name       = "ada"
  base_image = "/var/lib/libvirt/images/debian-12-lab.qcow2"
}

resource "lab_terminal" "ada" {
  name            = "lab-${lab_session.ada.id}"
  target_host     = lab_vm.ada.ip
  ssh_private_key = file("${path.module}/keys/student_ed25519")
  image           = "registry.example.edu/lab/ttyd-ssh:1.7.7" # ttyd + an ssh client, see the docs
  network         = "traefik"                                  # the network Traefik watches
  hostname        = lab_session.ada.hostname                   # Traefik routes https://<hostname> here
  labels = {
    "lab.session" = lab_session.ada.id
    "lab.vm"      = lab_vm.ada.name
  }
}

# Without Traefik: publish ttyd on the Docker host's loopback, behind basic auth.
resource "lab_terminal" "local" {
  name            = "ada-local"
  target_host     = lab_vm.ada.ip
  ssh_private_key = file("${path.module}/keys/student_ed25519")
  image           = "registry.example.edu/lab/ttyd-ssh:1.7.7"
  traefik         = false
  publish         = { host_ip = "127.0.0.1", host_port = 8001 }
  credential      = { username = "ada", password = var.ada_password }

  timeouts {
    create = "10m"
  }
}

variable "ada_password" {
  type      = string
  sensitive = true
}

output "ada_terminal" {
  value = lab_terminal.ada.url # https://lab-<id>.<domain>
}

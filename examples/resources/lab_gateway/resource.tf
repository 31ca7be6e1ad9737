# One classroom host: a gateway on the host's loopback, and a session, a VM and a terminal per
# student routed through it. Each student opens http://lab-<id>.lab.localhost:8080 on this machine.
resource "lab_gateway" "edge" {
  name = "os101-edge"
  http = { host_ip = "127.0.0.1", host_port = 8080 }
}

resource "lab_session" "ada" {
  student    = "ada@example.edu"
  url_scheme = lab_gateway.edge.url_scheme # "http"
  url_port   = lab_gateway.edge.url_port   # 8080
}

resource "lab_vm" "ada" {
  name       = "os101-ada"
  base_image = "/var/lib/libvirt/images/debian-12-lab.qcow2"
  memory_mb  = 1024
}

resource "lab_terminal" "ada" {
  name            = "os101-ada"
  gateway         = lab_gateway.edge.id # replaced with the gateway, never left on a dead network
  hostname        = lab_session.ada.hostname
  target_host     = lab_vm.ada.ip
  ssh_private_key = file("${path.module}/keys/student_ed25519")
  image           = "registry.example.edu/lab/ttyd-ssh:1.7.7"
}

# Behind a tunnel that ends TLS (cloudflared -> http://127.0.0.1:80): students get https URLs.
resource "lab_gateway" "tunnel" {
  name       = "os102-edge"
  http       = { host_ip = "127.0.0.1", host_port = 80 }
  url_scheme = "https"
}

# TLS on the gateway itself, with a wildcard certificate for the session domain.
resource "lab_gateway" "tls" {
  name = "os103-edge"
  https = {
    host_ip         = "0.0.0.0"
    host_port       = 443
    certificate_pem = file("${path.module}/tls/wildcard.lab.example.edu.pem")
    private_key_pem = file("${path.module}/tls/wildcard.lab.example.edu.key")
  }
}

output "ada_url" {
  value = lab_session.ada.url # http://lab-<id>.lab.localhost:8080
}

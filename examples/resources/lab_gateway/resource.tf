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
    certificate_pem = var.wildcard_certificate_pem # *.lab.example.edu
    private_key_pem = var.wildcard_private_key_pem
  }
}

# The instructor's credential: the watch view of each terminal (<session URL>/watch) and the class
# page (http://class.<domain>:8080) ask for it; only its bcrypt hash reaches the gateway.
resource "lab_gateway" "watched" {
  name = "os104-edge"
  http = { host_ip = "127.0.0.1", host_port = 8081 }
  instructor = {
    username = "prof"
    password = var.instructor_password
  }
}

variable "instructor_password" {
  type      = string
  sensitive = true
}

variable "wildcard_certificate_pem" { type = string }
variable "wildcard_private_key_pem" {
  type      = string
  sensitive = true
}

output "ada_url" {
  value = lab_session.ada.url # http://lab-<id>.lab.localhost:8080
}

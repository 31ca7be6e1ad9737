# The student's URL end to end: a gateway (real Traefik) with an HTTP and an HTTPS entrypoint, and
# two students with a session, a VM and a terminal routed through it. Run inside the rig by
# acceptance-tests/gateway.rs, which writes terraform.tfvars from rig.env and a test CA.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  domain = "lab.localhost"
}

variable "run_id" { type = string }
variable "students" { type = list(string) }
variable "base_image" { type = string }
variable "kernel" { type = string }
variable "initrd" { type = string }
variable "cmdline" { type = string }
variable "network" { type = string }
variable "domain_type" { type = string }
variable "ssh_private_key_file" { type = string }
variable "ssh_public_key_file" { type = string }
variable "overlay_dir" { type = string }
variable "terminal_image" { type = string }
variable "gateway_image" { type = string }
variable "http_port" { type = number }
variable "https_port" { type = number }
variable "tls_cert_file" { type = string }
variable "tls_key_file" { type = string }

resource "lab_gateway" "edge" {
  name  = "gwtest-${var.run_id}"
  image = var.gateway_image
  http  = { host_ip = "127.0.0.1", host_port = var.http_port }
  https = {
    host_ip         = "127.0.0.1"
    host_port       = var.https_port
    certificate_pem = file(var.tls_cert_file)
    private_key_pem = file(var.tls_key_file)
  }
  # Students open the plain HTTP entrypoint (the HTTPS one is checked with curl).
  url_scheme = "http"
}

resource "lab_session" "s" {
  for_each   = toset(var.students)
  student    = "${each.key}@example.edu"
  url_scheme = lab_gateway.edge.url_scheme
  url_port   = lab_gateway.edge.url_port
}

resource "lab_vm" "vm" {
  for_each = toset(var.students)

  name                = "gwtest-${var.run_id}-${each.key}"
  hostname            = "gwtest-${var.run_id}-${each.key}"
  base_image          = var.base_image
  kernel              = var.kernel
  initrd              = var.initrd
  cmdline             = "${var.cmdline} lab.hostname=gwtest-${var.run_id}-${each.key}"
  network             = var.network
  domain_type         = var.domain_type
  overlay_dir         = var.overlay_dir
  memory_mb           = 512
  ssh_authorized_keys = split("\n", trimspace(file(var.ssh_public_key_file)))
}

resource "lab_terminal" "t" {
  for_each = toset(var.students)

  name            = "gwtest-${var.run_id}-${each.key}"
  gateway         = lab_gateway.edge.id
  hostname        = lab_session.s[each.key].hostname
  target_host     = lab_vm.vm[each.key].ip
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image
  labels          = { "gwtest.run" = var.run_id }
}

output "students" {
  value = {
    for k, s in lab_session.s : k => {
      url          = s.url
      hostname     = s.hostname
      terminal_url = lab_terminal.t[k].url
      ready        = lab_terminal.t[k].ready
      vm           = lab_vm.vm[k].name
    }
  }
}

output "gateway" {
  value = {
    id         = lab_gateway.edge.id
    name       = lab_gateway.edge.name
    network    = lab_gateway.edge.network
    ready      = lab_gateway.edge.ready
    url_scheme = lab_gateway.edge.url_scheme
    url_port   = lab_gateway.edge.url_port
  }
}

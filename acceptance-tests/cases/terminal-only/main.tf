# One terminal without a VM (the test listens on target_port as a stand-in SSH server): plan,
# import, replacement and destroy through the real terraform. Values from terraform.tfvars.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {}

variable "name" { type = string }
variable "target_host" { type = string }
variable "target_port" { type = number }
variable "ssh_private_key_file" { type = string }
variable "terminal_image" { type = string }
variable "course" {
  type    = string
  default = "os101"
}

resource "lab_terminal" "one" {
  name            = var.name
  target_host     = var.target_host
  target_port     = var.target_port
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image
  traefik         = false
  publish         = { host_ip = "127.0.0.1" }
  labels          = { "lab.course" = var.course, "dockertest.run" = var.name }
}

output "terminal" {
  value = { id = lab_terminal.one.id, url = lab_terminal.one.url, ready = lab_terminal.one.ready }
}

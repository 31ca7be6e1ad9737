# One lab network, no guests: drift, adoption, import and an unowned network of the same name.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

# libvirt_uri and docker_host come from LAB_LIBVIRT_URI and DOCKER_HOST (rig.env).
provider "lab" {}

variable "name" { type = string }
variable "cidr" { type = string }

resource "lab_network" "solo" {
  name = var.name
  cidr = var.cidr

  timeouts {
    create = "1m"
  }
}

output "network" {
  value = lab_network.solo
}

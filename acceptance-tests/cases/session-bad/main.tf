terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  domain = "lab.example.edu"
}

variable "ttl" {
  type    = string
  default = "4h"
}

variable "student" {
  type    = string
  default = "ada@example.edu"
}

resource "lab_session" "one" {
  student = var.student
  ttl     = var.ttl
}

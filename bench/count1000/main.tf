terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  domain = "lab.example.edu"
}

resource "lab_session" "s" {
  count   = 1000
  student = "student${count.index}@example.edu"
  ttl     = "4h"
}

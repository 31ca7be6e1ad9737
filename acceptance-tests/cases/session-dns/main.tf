# Sessions with DNS records; the test writes provider.tf (a real Knot server, RFC 2136 + TSIG).
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

variable "students" {
  type    = set(string)
  default = ["ada@example.edu", "alan@example.edu", "grace@example.edu"]
}

resource "lab_session" "s" {
  for_each = var.students

  student = each.key
  ttl     = "4h"
}

output "sessions" {
  value = { for k, s in lab_session.s : k => { id = s.id, hostname = s.hostname, dns_record_id = s.dns_record_id } }
}

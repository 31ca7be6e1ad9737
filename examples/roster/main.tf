# The smallest classroom: one session per student of a CSV roster, printing each student's URL.
# No VMs, no accounts: run it with `terraform apply` (see the README in this folder).
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  domain = var.domain
}

variable "domain" {
  type        = string
  default     = "lab.localhost"
  description = "Domain the session hostnames live under."
}

locals {
  roster = { for row in csvdecode(file("${path.module}/students.csv")) : row.email => row }
}

resource "lab_session" "student" {
  for_each = local.roster

  student = each.key
  ttl     = each.value.ttl
  labels  = { name = each.value.name }
}

output "urls" {
  description = "Each student's URL."
  value       = { for email, s in lab_session.student : email => s.url }
}

terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  domain = "lab.example.edu"
}

variable "students" {
  type    = number
  default = 200
}

variable "ttl" {
  type    = string
  default = "4h"
}

# Overrides for single students, to exercise in-place updates and replacement.
variable "overrides" {
  type    = map(object({ ttl = optional(string), student = optional(string) }))
  default = {}
}

locals {
  roster = toset([for i in range(var.students) : format("student%03d", i)])
}

resource "lab_session" "s" {
  for_each = local.roster

  student = try(var.overrides[each.key].student, null) != null ? var.overrides[each.key].student : "${each.key}@example.edu"
  ttl     = try(var.overrides[each.key].ttl, null) != null ? var.overrides[each.key].ttl : var.ttl
  labels  = { course = "lab-101" }
}

output "urls" {
  value = { for k, s in lab_session.s : k => s.url }
}

output "sessions" {
  value = { for k, s in lab_session.s : k => { id = s.id, hostname = s.hostname, expires_at = s.expires_at, created_at = s.created_at, expired = s.expired } }
}

# A classroom that ends by itself: every roster row carries an `until` time (RFC 3339), and each
# apply keeps only the rows whose time is not up yet. Run `tofu apply` (or `terraform apply`) on a
# schedule and students disappear as their time runs out; see README.md and the CI files at the
# repository root (.github/workflows/scheduled-destroy.yml, .gitlab-ci.yml).
terraform {
  # plantimestamp() appeared in Terraform 1.5 (OpenTofu has it since 1.6).
  required_version = ">= 1.5.0"

  required_providers {
    lab = { source = "classroom/lab" }
  }

  # State must outlive each CI run: the CI files add a remote backend before `init` (README.md).
}

provider "lab" {
  domain = var.domain
}

variable "domain" {
  type        = string
  default     = "lab.localhost"
  description = "Domain the session hostnames live under."
}

variable "roster_file" {
  type        = string
  default     = null
  description = "CSV roster with columns email, name, until (RFC 3339) and optionally ttl. Default: students.csv beside this file."
}

locals {
  roster_file = coalesce(var.roster_file, "${path.module}/students.csv")
  roster      = { for row in csvdecode(file(local.roster_file)) : row.email => row }

  # One timestamp for the whole run: plantimestamp() is fixed when the plan is made, so every row is
  # judged against the same instant (timestamp() would change between plan and apply).
  now = plantimestamp()

  # timecmp(a, b) < 0: a is before b, i.e. this student's time is not up yet.
  active = { for email, row in local.roster : email => row if timecmp(local.now, row.until) < 0 }
  ended  = sort([for email, row in local.roster : email if timecmp(local.now, row.until) >= 0])
}

resource "lab_session" "student" {
  for_each = local.active

  student = each.key
  # Optional per-row session length; an empty cell (or no column) means no expiry of its own.
  ttl = try(each.value.ttl, "") != "" ? each.value.ttl : null
  labels = {
    name  = try(each.value.name, "")
    until = each.value.until
  }
}

output "urls" {
  description = "Each active student's URL."
  value       = { for email, s in lab_session.student : email => s.url }
}

output "sessions" {
  description = "Each active session: hostname, the roster's end time, and the session's own expiry (if ttl is set)."
  value = {
    for email, s in lab_session.student : email => {
      hostname   = s.hostname
      until      = local.active[email].until
      expires_at = s.expires_at
    }
  }
}

output "ended" {
  description = "Students whose time is up: the plan that produced this output removed their sessions."
  value       = local.ended
}

# Idle stop: a classroom whose VMs follow their students. Run `terraform apply` (or `tofu apply`) on a
# schedule, every few minutes, as examples/scheduled-destroy does. Each run
# - stops the VM of every student away for longer than var.idle_limit (no browser attached to their
#   terminal, and no keystroke since then; for a student who never came: since the session began),
# - starts it again once the student is back (a browser attached: the terminal and its tmux session
#   kept running, so the student sees "Reconnecting..." until the VM is up),
# - removes the students whose `until` has passed (session, VM and terminal).
# Activity comes from the terminals themselves (lab_sessions reads each one's tmux session). See README.md.
terraform {
  # plantimestamp() appeared in Terraform 1.5 (OpenTofu has it since 1.6).
  required_version = ">= 1.5.0"

  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  # lab_sessions finds the sessions through their DNS records: this needs a `dns` block (README.md).
  # libvirt_uri and docker_host fall back to LAB_LIBVIRT_URI and DOCKER_HOST.
  domain = var.domain
}

locals {
  roster_file = coalesce(var.roster_file, "${path.module}/students.csv")
  roster      = { for row in csvdecode(file(local.roster_file)) : row.email => row }
  # One instant for the whole run (plantimestamp() is fixed when the plan is made).
  now    = plantimestamp()
  active = { for email, row in local.roster : email => row if timecmp(local.now, row.until) < 0 }
  slug   = { for email, row in local.active : email => trim(replace(lower(split("@", email)[0]), "/[^a-z0-9]+/", "-"), "-") }

  # What each live session's terminal says right now, by student: clients, last_activity_at.
  seen = { for s in data.lab_sessions.live.sessions : s.student => s if s.student != null }
  # Away: no browser attached, and the last keystroke (or the session's start, for a student who
  # never typed) is older than idle_limit. A student without a session yet is not away.
  idle = {
    for email, row in local.active : email => (
      contains(keys(local.seen), email) ? (
        coalesce(local.seen[email].clients, 0) == 0 &&
        timecmp(timeadd(coalesce(local.seen[email].last_activity_at, lab_session.student[email].created_at), var.idle_limit), local.now) < 0
      ) : false
    )
  }
}

# Read at plan time: no dependency on anything this configuration makes.
data "lab_sessions" "live" {}

resource "lab_gateway" "edge" {
  name       = "${var.course}-edge"
  image      = var.gateway_image
  http       = { host_ip = var.gateway_host_ip, host_port = var.gateway_port }
  url_scheme = var.url_scheme
}

resource "lab_session" "student" {
  for_each = local.active

  student    = each.key
  url_scheme = lab_gateway.edge.url_scheme
  url_port   = lab_gateway.edge.url_port
}

resource "lab_vm" "student" {
  for_each = local.active

  name                = "${var.course}-${local.slug[each.key]}"
  hostname            = "${var.course}-${local.slug[each.key]}"
  base_image          = var.base_image
  kernel              = var.kernel
  initrd              = var.initrd
  cmdline             = var.cmdline == null ? null : "${var.cmdline} lab.hostname=${var.course}-${local.slug[each.key]}"
  network             = var.network
  domain_type         = var.domain_type
  memory_mb           = var.memory_mb
  ssh_authorized_keys = split("\n", trimspace(file(var.ssh_public_key_file)))
  running             = !local.idle[each.key]
}

resource "lab_terminal" "student" {
  for_each = local.active

  name     = "${var.course}-${local.slug[each.key]}"
  gateway  = lab_gateway.edge.id
  hostname = lab_session.student[each.key].hostname
  # A stopped VM has no address (null, which a required argument cannot be): see lifecycle below.
  target_host     = coalesce(lab_vm.student[each.key].ip, "${lab_vm.student[each.key].name}.invalid")
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image
  # persistent (the default): the session, and what the student was doing, outlives the VM's stop.

  labels = {
    "lab.course"  = var.course
    "lab.student" = each.value.name
  }

  lifecycle {
    # The terminal keeps the address its VM had when it was made: started again, the VM gets the
    # same one (same MAC, same DHCP lease), so the terminal is not replaced when the VM stops, and
    # its reconnect loop finds the VM again.
    ignore_changes = [target_host]
  }
}

output "urls" {
  description = "Each active student's URL."
  value       = { for email, s in lab_session.student : email => s.url }
}

output "students" {
  description = "Per active student: whether their VM runs, their terminal's clients and last activity, and whether this run found them away."
  value = {
    for email, vm in lab_vm.student : email => {
      running          = vm.running
      vm               = vm.name
      clients          = try(local.seen[email].clients, null)
      last_activity_at = try(local.seen[email].last_activity_at, null)
      idle             = local.idle[email]
    }
  }
}

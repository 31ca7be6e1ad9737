# A classroom: for every student of students.csv, a session, a VM cloned from a base image, and a
# browser terminal into that VM. Outputs one URL per student. See README.md.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  # libvirt_uri, docker_host and domain fall back to LAB_LIBVIRT_URI, DOCKER_HOST and LAB_DOMAIN.
  domain = var.domain
}

locals {
  # email -> { email, name, ttl }; the row order gives each student a stable port offset.
  rows   = csvdecode(file("${path.module}/students.csv"))
  roster = { for i, row in local.rows : row.email => merge(row, { index = i }) }
  # A name usable for VMs and containers: the email's local part, [a-z0-9-] only.
  slug = { for email, row in local.roster : email => trim(replace(lower(split("@", email)[0]), "/[^a-z0-9]+/", "-"), "-") }
}

resource "lab_session" "student" {
  for_each = local.roster

  student = each.key
  ttl     = each.value.ttl
}

resource "lab_vm" "student" {
  for_each = local.roster

  name                = "${var.course}-${local.slug[each.key]}"
  hostname            = "${var.course}-${local.slug[each.key]}"
  base_image          = var.base_image
  kernel              = var.kernel
  initrd              = var.initrd
  cmdline             = var.cmdline == null ? null : "${var.cmdline} lab.hostname=${var.course}-${local.slug[each.key]}"
  network             = var.network
  domain_type         = var.domain_type
  ssh_authorized_keys = split("\n", trimspace(file(var.ssh_public_key_file))) # one key per line
}

resource "lab_terminal" "student" {
  for_each = local.roster

  name            = "${var.course}-${local.slug[each.key]}"
  target_host     = lab_vm.student[each.key].ip
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image

  # Local classroom: ttyd on this machine's loopback, one port per student, no proxy.
  # Behind Traefik instead: traefik = true, hostname = lab_session.student[each.key].hostname,
  # network = "<traefik network>", and drop publish.
  traefik = false
  publish = { host_ip = "127.0.0.1", host_port = var.port_base + each.value.index }

  labels = {
    "lab.session" = lab_session.student[each.key].id
    "lab.vm"      = lab_vm.student[each.key].name
    "lab.course"  = var.course
    "lab.student" = each.value.name
  }
}

output "urls" {
  description = "Each student's terminal URL."
  value       = { for email, t in lab_terminal.student : email => t.url }
}

output "sessions" {
  description = "Each student's session hostname (the URL they get behind Traefik)."
  value       = { for email, s in lab_session.student : email => s.url }
}

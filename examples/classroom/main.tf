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
  # email -> { email, name, ttl }
  roster = { for row in csvdecode(file("${path.module}/students.csv")) : row.email => row }
  # A name usable for VMs and containers: the email's local part, [a-z0-9-] only.
  slug = { for email, row in local.roster : email => trim(replace(lower(split("@", email)[0]), "/[^a-z0-9]+/", "-"), "-") }
}

# The edge of this classroom host: Traefik routes each session hostname to that student's terminal.
resource "lab_gateway" "edge" {
  name  = "${var.course}-edge"
  image = var.gateway_image
  http  = { host_ip = var.gateway_host_ip, host_port = var.gateway_port }
  # Behind a tunnel that ends TLS (cloudflared -> this port): url_scheme = "https".
  url_scheme = var.url_scheme
  # The instructor's credential: the class page (class_url) and each session's watch view
  # (<url>/watch/) ask for it; only its bcrypt hash reaches the gateway.
  instructor = {
    username = var.instructor_username
    password = var.instructor_password
  }
  class_page_image = var.class_page_image
}

resource "lab_session" "student" {
  for_each = local.roster

  student    = each.key
  ttl        = each.value.ttl
  url_scheme = lab_gateway.edge.url_scheme
  url_port   = lab_gateway.edge.url_port
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
  memory_mb           = var.memory_mb
  ssh_authorized_keys = split("\n", trimspace(file(var.ssh_public_key_file))) # one key per line
}

resource "lab_terminal" "student" {
  for_each = local.roster

  name            = "${var.course}-${local.slug[each.key]}"
  gateway         = lab_gateway.edge.id
  hostname        = lab_session.student[each.key].hostname
  target_host     = lab_vm.student[each.key].ip
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image

  labels = {
    "lab.session" = lab_session.student[each.key].id
    "lab.vm"      = lab_vm.student[each.key].name
    "lab.course"  = var.course
    "lab.student" = each.value.name
    # Shown on the class page. A changed ttl moves it, and so replaces the terminal.
    "lab.expires_at" = lab_session.student[each.key].expires_at
  }
}

output "urls" {
  description = "Each student's URL: it opens a terminal on their VM, through the gateway."
  value       = { for email, s in lab_session.student : email => s.url }
}

output "class_url" {
  description = "The instructor's class page (asks for the instructor credential)."
  value       = lab_gateway.edge.class_url
}

output "watch_urls" {
  description = "Each student's session as the instructor sees it (read-only; asks for the instructor credential)."
  value       = { for email, t in lab_terminal.student : email => t.watch_url }
}

output "instructor_username" {
  value = var.instructor_username
}

output "gateway_port" {
  description = "Where the gateway listens on the Docker host."
  value       = var.gateway_port
}

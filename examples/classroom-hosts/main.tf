# A classroom spread over two hosts: each host has its own gateway, and the roster is placed
# round-robin over the hosts with element(local.hosts, index). See README.md.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

# Block labels must be known when Terraform validates, so the host names are literals here; what
# each host's daemons are comes from var.hosts.
provider "lab" {
  domain = var.domain
  host "h1" {
    libvirt_uri  = var.hosts["h1"].libvirt_uri
    docker_host  = var.hosts["h1"].docker_host
    storage_pool = var.hosts["h1"].storage_pool
  }
  host "h2" {
    libvirt_uri  = var.hosts["h2"].libvirt_uri
    docker_host  = var.hosts["h2"].docker_host
    storage_pool = var.hosts["h2"].storage_pool
  }
}

locals {
  hosts  = ["h1", "h2"]
  roster = { for row in csvdecode(file("${path.module}/students.csv")) : row.email => row }
  slug   = { for email, row in local.roster : email => trim(replace(lower(split("@", email)[0]), "/[^a-z0-9]+/", "-"), "-") }
  # email -> host: student i on host i mod 2 (sorted emails, so adding a student moves nobody else
  # unless they sort before them; give each row a `host` column to pin placement instead).
  placement = { for i, email in sort(keys(local.roster)) : email => element(local.hosts, i) }
}

# The base image, from this machine, into each host's pool through that host's libvirt: once per
# host (a second apply uploads nothing). The VMs on a host are thin clones of its copy.
resource "lab_image" "base" {
  for_each = toset(local.hosts)

  host   = each.key
  name   = "${var.course}-base.qcow2"
  source = var.base_image
}

# One gateway per host: a session's URL goes to its host's gateway.
resource "lab_gateway" "edge" {
  for_each = toset(local.hosts)

  name          = "${var.course}-edge"
  host          = each.key
  image         = var.gateway_image
  docker_socket = var.hosts[each.key].docker_socket
  http          = { host_ip = "0.0.0.0", host_port = var.hosts[each.key].gateway_port }
}

resource "lab_session" "student" {
  for_each = local.placement

  student    = each.key
  ttl        = local.roster[each.key].ttl
  url_scheme = lab_gateway.edge[each.value].url_scheme
  url_port   = lab_gateway.edge[each.value].url_port
  # With a provider `dns` block, the session's record points at its own host's gateway.
  dns_target = var.hosts[each.value].dns_target
}

resource "lab_vm" "student" {
  for_each = local.placement

  host                = each.value
  name                = "${var.course}-${local.slug[each.key]}"
  hostname            = "${var.course}-${local.slug[each.key]}"
  base_image          = lab_image.base[each.value].path # overlays: volumes in the host block's storage_pool
  kernel              = var.kernel
  initrd              = var.initrd
  cmdline             = var.cmdline == null ? null : "${var.cmdline} lab.hostname=${var.course}-${local.slug[each.key]}"
  network             = var.hosts[each.value].network
  domain_type         = var.domain_type
  memory_mb           = var.memory_mb
  vcpus               = 1
  ssh_authorized_keys = split("\n", trimspace(file(var.ssh_public_key_file)))
  # The VM's address is private to its host: wait for its lease; the terminal checks SSH from there.
  wait_for = "ip"
}

resource "lab_terminal" "student" {
  for_each = local.placement

  host            = each.value
  name            = "${var.course}-${local.slug[each.key]}"
  gateway         = lab_gateway.edge[each.value].id
  hostname        = lab_session.student[each.key].hostname
  target_host     = lab_vm.student[each.key].ip
  ssh_private_key = file(var.ssh_private_key_file)
  image           = var.terminal_image

  labels = {
    "lab.session" = lab_session.student[each.key].id
    "lab.course"  = var.course
  }
}

output "urls" {
  description = "Each student's URL, served by the gateway of the host their VM is on."
  value       = { for email, s in lab_session.student : email => s.url }
}

output "placement" {
  description = "Which host each student is on."
  value       = local.placement
}

output "gateway_ports" {
  description = "Where each host's gateway listens."
  value       = { for h in local.hosts : h => var.hosts[h].gateway_port }
}

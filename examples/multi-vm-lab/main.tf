# A lab of several VMs per student: each student gets a private network (lab_network) holding one
# VM per machine of var.machines, and a browser terminal that lands on the first machine. Labs are
# isolated from each other; the machines of one lab reach each other. See README.md.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {
  # libvirt_uri, docker_host and domain fall back to LAB_LIBVIRT_URI, DOCKER_HOST and LAB_DOMAIN.
  # The Docker host must be the libvirt host: terminals join the lab's bridge.
  domain = var.domain
}

locals {
  # "ada-attacker" -> { student = "ada", machine = "attacker" }: one VM per student and machine.
  vms = {
    for pair in setproduct(keys(var.students), var.machines) :
    "${pair[0]}-${pair[1]}" => { student = pair[0], machine = pair[1] }
  }
  # Where each student's terminal lands.
  first_machine = var.machines[0]
}

resource "lab_gateway" "edge" {
  name  = "${var.course}-edge"
  image = var.gateway_image
  http  = { host_ip = var.gateway_host_ip, host_port = var.gateway_port }
}

resource "lab_session" "student" {
  for_each = var.students

  student    = each.key
  ttl        = var.ttl
  url_scheme = lab_gateway.edge.url_scheme
  url_port   = lab_gateway.edge.url_port
}

# The student's private network: its own bridge, subnet and DHCP; no NAT, no route to other labs.
resource "lab_network" "lab" {
  for_each = var.students

  name = "${var.course}-${each.key}"
  cidr = cidrsubnet(var.lab_cidrs, var.lab_prefix - tonumber(split("/", var.lab_cidrs)[1]), each.value)
}

resource "lab_vm" "machine" {
  for_each = local.vms

  name     = "${var.course}-${each.key}"
  hostname = "${each.value.machine}-${each.value.student}"
  network  = lab_network.lab[each.value.student].name
  # Machines of one lab talk to each other; the lab network keeps other labs out.
  isolated = false

  base_image  = var.base_image
  overlay_dir = var.overlay_dir
  kernel      = var.kernel
  initrd      = var.initrd
  cmdline     = var.cmdline
  domain_type = var.domain_type
  memory_mb   = var.memory_mb
  vcpus       = 1
  # Each machine its own key: <key_dir>/<student>-<machine>.pub.
  ssh_authorized_keys = [trimspace(file("${var.key_dir}/${each.key}.pub"))]
}

resource "lab_terminal" "student" {
  for_each = var.students

  name     = "${var.course}-${each.key}"
  gateway  = lab_gateway.edge.id
  hostname = lab_session.student[each.key].hostname
  # The terminal joins the lab's network to reach its machines over their bridge.
  lab_network     = lab_network.lab[each.key].docker_network
  target_host     = lab_vm.machine["${each.key}-${local.first_machine}"].ip
  ssh_private_key = file("${var.key_dir}/${each.key}-${local.first_machine}")
  image           = var.terminal_image
}

output "urls" {
  description = "Each student's URL: a terminal on the first machine of their lab."
  value       = { for s, session in lab_session.student : s => session.url }
}

output "machines" {
  description = "Every machine: its lab, hostname and address."
  value = {
    for k, vm in lab_vm.machine : k => {
      student  = local.vms[k].student
      machine  = local.vms[k].machine
      hostname = vm.hostname
      ip       = vm.ip
    }
  }
}

output "networks" {
  description = "Each lab's network: subnet, bridge and the host's address on it."
  value = {
    for s, n in lab_network.lab : s => { name = n.name, cidr = n.cidr, bridge = n.bridge, host = n.host_address }
  }
}

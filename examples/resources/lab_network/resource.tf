# One private network per student: the student's VMs share it, no other lab reaches it.
variable "students" {
  description = "Student -> lab number (the third octet of the lab's subnet); keep numbers stable."
  type        = map(number)
  default     = { ada = 1, grace = 2 }
}

resource "lab_network" "lab" {
  for_each = var.students

  name = "sec101-${each.key}"
  cidr = "192.168.${160 + each.value}.0/24"
  # nat = true lets the guests reach beyond the host; off by default.
}

resource "lab_vm" "attacker" {
  for_each = var.students

  name       = "sec101-${each.key}-attacker"
  base_image = "/var/lib/libvirt/images/base/debian-12-lab.qcow2"
  network    = lab_network.lab[each.key].name
  isolated   = false # the lab's VMs talk to each other
}

output "subnets" {
  value = { for s, n in lab_network.lab : s => { cidr = n.cidr, dhcp = n.dhcp_range, host = n.host_address } }
}

# The base image is uploaded once into the host's pool (the provider's storage_pool unless `pool`
# is set); every VM is a thin clone of it and never writes to it.
variable "image_file" {
  type    = string
  default = "/srv/lab/images/debian-12-lab.qcow2"
}

resource "lab_image" "debian" {
  name   = "debian-12-lab.qcow2"
  source = var.image_file
  sha256 = filesha256(var.image_file)
}

resource "lab_vm" "student" {
  for_each = toset(["ada", "grace"])

  name       = "os101-${each.key}"
  base_image = lab_image.debian.path
  memory_mb  = 2048
  vcpus      = 2
}

# An image is imported as <pool>/<volume name>; its checksum is read back from the host.
terraform import lab_image.debian default/debian-12-lab.qcow2

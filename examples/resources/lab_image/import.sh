# An image is imported as <pool>/<volume name>, or <host>/<pool>/<volume name> on a named host;
# its checksum is read back from the host.
terraform import lab_image.debian default/debian-12-lab.qcow2
terraform import 'lab_image.base["h2"]' h2/lab/debian-12-lab.qcow2

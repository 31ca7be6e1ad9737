# A lab network is imported by its libvirt network name.
terraform import 'lab_network.lab["ada"]' sec101-ada

//! qcow2 overlays (thin clones) over a read-only base image.

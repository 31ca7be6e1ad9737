//! `lab_vm` resource.

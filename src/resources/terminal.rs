//! `lab_terminal` resource.

//! `lab_session` resource.

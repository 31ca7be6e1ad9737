//! Typed APIs to the systems the provider drives. Nothing here knows about Terraform.

pub mod dns;
pub mod docker;
pub mod domain_xml;
pub mod libvirt;
pub mod network_xml;
pub mod qcow2;
pub mod seed;
pub mod volume_xml;
pub mod xml_read;

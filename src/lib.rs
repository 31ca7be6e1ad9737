//! terraform-provider-lab: see ARCHITECTURE.md for the map.
//! Layers, one direction only: main -> protocol -> resources -> backends.

pub mod backends;
pub mod lifecycle;
pub mod protocol;
pub mod provider;
pub mod resources;
pub mod settings;
pub mod validate;

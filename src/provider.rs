//! Provider configuration (`provider "lab" { ... }`) and the clients built from it.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::protocol::resource::{ErasedDataSource, ErasedResource};
use crate::protocol::{Diagnostics, Provider, Schema};

/// The `provider "lab"` block. Filled in by the provider-config work.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabConfig {}

#[derive(Default)]
pub struct LabProvider {}

impl LabProvider {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Provider for LabProvider {
    type Config = LabConfig;

    fn schema(&self) -> Schema {
        Schema::default()
    }

    async fn configure(&self, _config: LabConfig) -> Result<(), Diagnostics> {
        Ok(())
    }

    fn resources(&self) -> Vec<Arc<dyn ErasedResource>> {
        Vec::new()
    }

    fn data_sources(&self) -> Vec<Arc<dyn ErasedDataSource>> {
        Vec::new()
    }
}

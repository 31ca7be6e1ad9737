//! The typed API resources implement. Resource code sees serde state structs and diagnostics,
//! never msgpack, protobuf or `Value` (the protocol layer does the conversions).
//!
//! Plan algorithm (in the protocol layer, before `Resource::plan` is called):
//! 1. start from Terraform's proposed new state;
//! 2. fill `default`s for optional+computed attributes that are null in config;
//! 3. on create, computed attributes null in config become unknown;
//!    on update, if anything differs from prior state, computed attributes null in config and
//!    without `keep_prior` become unknown;
//! 4. attributes with `requires_replace` whose planned value differs from prior are reported;
//! 5. `Resource::plan` may then adjust the planned state (derived values, more replacements,
//!    warnings).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::sync::CancellationToken;

use super::diag::{AttrPath, Diagnostic, Diagnostics};
use super::schema::Schema;

/// A state attribute: null, not yet known (plan time), or known.
/// `serde_bridge` (de)serialises it so that `Unknown` survives the trip through `Value`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Attr<T> {
    #[default]
    Null,
    Unknown,
    Known(T),
}

impl<T> Attr<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Attr::Known(v) => Some(v),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Attr::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Attr::Unknown)
    }
}

impl<T> From<Option<T>> for Attr<T> {
    fn from(o: Option<T>) -> Self {
        o.map_or(Attr::Null, Attr::Known)
    }
}

/// Handed to every operation: cancelled when Terraform sends StopProvider (Ctrl-C).
#[derive(Debug, Clone, Default)]
pub struct OpContext {
    pub cancel: CancellationToken,
    /// Warnings of an operation that succeeds (errors go in `Err`), e.g. an adopted orphan.
    pub warnings: Warnings,
}

/// Warnings an operation collects on its way; the server sends them with its result.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<std::sync::Mutex<Diagnostics>>);

impl Warnings {
    pub fn push(&self, warning: Diagnostic) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(warning);
    }

    pub fn take(&self) -> Diagnostics {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

pub struct PlanRequest<S> {
    /// None when the resource is being created.
    pub prior: Option<S>,
    pub config: S,
    /// Proposed new state after the generic plan steps (defaults, unknowns).
    pub planned: S,
}

pub struct Planned<S> {
    pub state: S,
    /// Extra replacement triggers beyond the schema's `requires_replace` attributes.
    pub requires_replace: Vec<AttrPath>,
    /// Schema replacement triggers to ignore this time, e.g. an imported resource whose state
    /// could not hold an attribute adopting it from the configuration.
    pub adopt_without_replace: Vec<AttrPath>,
    /// Warnings (errors go in `Err`).
    pub diagnostics: Diagnostics,
}

impl<S> Planned<S> {
    pub fn new(state: S) -> Self {
        Planned {
            state,
            requires_replace: Vec::new(),
            adopt_without_replace: Vec::new(),
            diagnostics: Diagnostics::new(),
        }
    }
}

#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// State struct: one field per schema attribute (same names), `Attr<T>` for each.
    type State: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// e.g. "lab_vm".
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;

    /// Static checks of config; values may be unknown. Attribute paths in every diagnostic.
    async fn validate(&self, _config: &Self::State) -> Diagnostics {
        Diagnostics::new()
    }
    /// Adjust the generic plan. Not called for destroy plans.
    async fn plan(&self, req: PlanRequest<Self::State>) -> Result<Planned<Self::State>, Diagnostics> {
        Ok(Planned::new(req.planned))
    }
    async fn create(&self, planned: Self::State, ctx: &OpContext) -> Result<Self::State, Diagnostics>;
    /// `Ok(None)`: the object is gone (deleted out of band); Terraform will plan a re-create.
    async fn read(&self, current: Self::State, ctx: &OpContext) -> Result<Option<Self::State>, Diagnostics>;
    async fn update(
        &self,
        prior: Self::State,
        planned: Self::State,
        ctx: &OpContext,
    ) -> Result<Self::State, Diagnostics>;
    /// Must succeed if the object is already gone.
    async fn delete(&self, current: Self::State, ctx: &OpContext) -> Result<(), Diagnostics>;
    /// Import by the user's id; the returned state is then `read`.
    async fn import(&self, id: &str, ctx: &OpContext) -> Result<Option<Self::State>, Diagnostics>;
}

#[async_trait]
pub trait DataSource: Send + Sync + 'static {
    type State: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, _config: &Self::State) -> Diagnostics {
        Diagnostics::new()
    }
    async fn read(&self, config: Self::State, ctx: &OpContext) -> Result<Self::State, Diagnostics>;
}

/// The provider itself: its config block and the resources it serves.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    type Config: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    fn schema(&self) -> Schema;
    async fn validate(&self, _config: &Self::Config) -> Diagnostics {
        Diagnostics::new()
    }
    /// Called once with the provider block (values known).
    async fn configure(&self, config: Self::Config) -> Result<(), Diagnostics>;
    fn resources(&self) -> Vec<Arc<dyn ErasedResource>>;
    fn data_sources(&self) -> Vec<Arc<dyn ErasedDataSource>>;
}

/// Object-safe forms of the traits above, implemented by the protocol layer for every
/// `Resource`/`DataSource` (blanket impls in `dispatch.rs`). Resources never implement these.
pub use super::dispatch::{ErasedDataSource, ErasedResource, erase_data_source, erase_resource};

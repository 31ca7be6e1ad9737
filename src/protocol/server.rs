//! The gRPC services Terraform talks to: `tfplugin6.Provider` (translating protobuf and
//! DynamicValues to the erased resources of `dispatch.rs`) and go-plugin's controller, stdio and
//! broker. Every failure becomes a diagnostic; panics in handlers become error diagnostics.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::stream::Stream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use super::codec;
use super::diag::{AttrPath, Diagnostic, Diagnostics, PathStep, Severity};
use super::dispatch::{ErasedDataSource, ErasedProvider, ErasedResource};
use super::log;
use super::pb::plugin as gp;
use super::pb::tfplugin6 as tf;
use super::resource::OpContext;
use super::schema::{self, Nesting, Schema};
use super::types_json::type_to_json_bytes;
use super::value::{Type, Value};

/// Largest message either side may send: states of big for_each sets exceed gRPC's 4 MiB default.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

struct Registered<T: ?Sized> {
    imp: Arc<T>,
    schema: Schema,
    ty: Type,
}

/// `tfplugin6.Provider`, over an erased provider.
pub struct ProviderService {
    provider: Arc<dyn ErasedProvider>,
    provider_schema: Schema,
    provider_ty: Type,
    resources: HashMap<String, Registered<dyn ErasedResource>>,
    data_sources: HashMap<String, Registered<dyn ErasedDataSource>>,
    /// Cancelled by StopProvider; operations get a clone in their `OpContext`. A child of
    /// `shutdown`, so that the end of the server (Terraform gone, SIGTERM) cancels them too.
    stop: Mutex<CancellationToken>,
    shutdown: CancellationToken,
    /// Applies run as tasks of their own, so that one whose caller is gone still finishes (or
    /// rolls back); the server waits for them before it exits.
    operations: TaskTracker,
}

impl ProviderService {
    pub fn new(provider: Arc<dyn ErasedProvider>, shutdown: CancellationToken, operations: TaskTracker) -> Self {
        let provider_schema = provider.schema();
        let provider_ty = provider_schema.block.value_type();
        let resources = provider
            .resources()
            .into_iter()
            .map(|imp| {
                let schema = imp.schema();
                let ty = schema.block.value_type();
                (imp.type_name().to_string(), Registered { imp, schema, ty })
            })
            .collect();
        let data_sources = provider
            .data_sources()
            .into_iter()
            .map(|imp| {
                let schema = imp.schema();
                let ty = schema.block.value_type();
                (imp.type_name().to_string(), Registered { imp, schema, ty })
            })
            .collect();
        ProviderService {
            provider,
            provider_schema,
            provider_ty,
            resources,
            data_sources,
            stop: Mutex::new(shutdown.child_token()),
            shutdown,
            operations,
        }
    }

    fn op_context(&self) -> OpContext {
        let token = self.stop.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        OpContext { cancel: token.clone(), ..Default::default() }
    }

    fn resource(&self, type_name: &str) -> Result<&Registered<dyn ErasedResource>, Diagnostics> {
        self.resources.get(type_name).ok_or_else(|| {
            Diagnostic::error(
                "Unknown resource type",
                format!("This provider has no managed resource type {type_name:?}."),
            )
            .into()
        })
    }

    fn data_source(&self, type_name: &str) -> Result<&Registered<dyn ErasedDataSource>, Diagnostics> {
        self.data_sources.get(type_name).ok_or_else(|| {
            Diagnostic::error("Unknown data source", format!("This provider has no data source {type_name:?}.")).into()
        })
    }

    fn capabilities() -> tf::ServerCapabilities {
        tf::ServerCapabilities { plan_destroy: false, get_provider_schema_optional: false, move_resource_state: true }
    }
}

// ---------------------------------------------------------------- conversions

/// A DynamicValue from Terraform: msgpack normally, JSON in a few legacy paths; absent = null.
fn decode_value(dv: Option<&tf::DynamicValue>, ty: &Type, what: &str) -> Result<Value, Diagnostics> {
    let Some(dv) = dv else { return Ok(Value::Null) };
    let decoded = if !dv.msgpack.is_empty() {
        codec::decode_msgpack(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        codec::decode_json(&dv.json, ty)
    } else {
        return Ok(Value::Null);
    };
    decoded.map_err(|e| Diagnostic::from_error(format!("Invalid {what} from Terraform"), &e).into())
}

fn encode_value(value: &Value, ty: &Type, what: &str) -> Result<tf::DynamicValue, Diagnostics> {
    codec::encode_msgpack(value, ty)
        .map(|msgpack| tf::DynamicValue { msgpack, json: Vec::new() })
        .map_err(|e| Diagnostic::from_error(format!("Encoding the {what}"), &e).into())
}

pub fn attr_path_to_pb(path: &AttrPath) -> tf::AttributePath {
    use tf::attribute_path::step::Selector;
    let steps = path
        .0
        .iter()
        .map(|step| tf::attribute_path::Step {
            selector: Some(match step {
                PathStep::Attr(name) => Selector::AttributeName(name.clone()),
                PathStep::Key(key) => Selector::ElementKeyString(key.clone()),
                PathStep::Index(i) => Selector::ElementKeyInt(*i),
            }),
        })
        .collect();
    tf::AttributePath { steps }
}

pub fn diagnostics_to_pb(diags: &Diagnostics) -> Vec<tf::Diagnostic> {
    diags
        .0
        .iter()
        .map(|d| tf::Diagnostic {
            severity: match d.severity {
                Severity::Error => tf::diagnostic::Severity::Error as i32,
                Severity::Warning => tf::diagnostic::Severity::Warning as i32,
            },
            summary: d.summary.clone(),
            detail: d.detail.clone(),
            attribute: d.attribute.as_ref().map(attr_path_to_pb),
        })
        .collect()
}

fn markdown() -> i32 {
    tf::StringKind::Markdown as i32
}

fn attribute_to_pb(attr: &schema::Attribute) -> tf::schema::Attribute {
    let nested_type = attr.nested.as_ref().map(|nested| tf::schema::Object {
        attributes: nested.attributes.iter().map(attribute_to_pb).collect(),
        nesting: match nested.nesting {
            Nesting::Single | Nesting::Group => tf::schema::object::NestingMode::Single,
            Nesting::List => tf::schema::object::NestingMode::List,
            Nesting::Set => tf::schema::object::NestingMode::Set,
            Nesting::Map => tf::schema::object::NestingMode::Map,
        } as i32,
        ..Default::default()
    });
    let ty = match (&nested_type, &attr.ty) {
        (None, Some(ty)) => type_to_json_bytes(ty),
        _ => Vec::new(),
    };
    tf::schema::Attribute {
        name: attr.name.clone(),
        r#type: ty,
        nested_type,
        description: attr.description.clone(),
        required: attr.required,
        optional: attr.optional,
        computed: attr.computed,
        sensitive: attr.sensitive,
        description_kind: markdown(),
        deprecated: attr.deprecated,
        write_only: attr.write_only,
    }
}

fn block_to_pb(block: &schema::Block, version: i64) -> tf::schema::Block {
    use tf::schema::nested_block::NestingMode;
    tf::schema::Block {
        version,
        attributes: block.attributes.iter().map(attribute_to_pb).collect(),
        block_types: block
            .blocks
            .iter()
            .map(|nb| tf::schema::NestedBlock {
                type_name: nb.type_name.clone(),
                block: Some(block_to_pb(&nb.block, 0)),
                nesting: match nb.nesting {
                    Nesting::Single => NestingMode::Single,
                    Nesting::Group => NestingMode::Group,
                    Nesting::List => NestingMode::List,
                    Nesting::Set => NestingMode::Set,
                    Nesting::Map => NestingMode::Map,
                } as i32,
                min_items: nb.min_items,
                max_items: nb.max_items,
            })
            .collect(),
        description: block.description.clone(),
        description_kind: markdown(),
        deprecated: block.deprecated,
    }
}

pub fn schema_to_pb(schema: &Schema) -> tf::Schema {
    tf::Schema { version: schema.version, block: Some(block_to_pb(&schema.block, schema.version)) }
}

/// Runs a handler, turning a panic into an error diagnostic (no backtrace reaches the user).
async fn guarded<T>(rpc: &str, fut: impl Future<Output = Result<T, Diagnostics>>) -> Result<T, Diagnostics> {
    log::trace(&format!("{rpc}: start"));
    let result = match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(Diagnostic::error(
            "Internal error in the lab provider",
            format!("{rpc} failed unexpectedly: {}. Please report this bug.", log::panic_message(&*payload)),
        )
        .into()),
    };
    match &result {
        Err(diags) => {
            let summaries: Vec<&str> = diags.0.iter().map(|d| d.summary.as_str()).collect();
            log::debug(&format!("{rpc}: failed: {}", summaries.join("; ")))
        }
        Ok(_) => log::trace(&format!("{rpc}: done")),
    }
    result
}

/// Diagnostics of a finished call: its warnings on success, its errors on failure.
fn diags_of<T>(result: &Result<T, Diagnostics>) -> Vec<tf::Diagnostic> {
    match result {
        Ok(_) => Vec::new(),
        Err(diags) => diagnostics_to_pb(diags),
    }
}

/// Diagnostics of a validation: whatever it found, or why it could not run.
fn all_diags(result: Result<Diagnostics, Diagnostics>) -> Vec<tf::Diagnostic> {
    match result {
        Ok(diags) | Err(diags) => diagnostics_to_pb(&diags),
    }
}

// ---------------------------------------------------------------- tfplugin6.Provider

#[tonic::async_trait]
impl tf::provider_server::Provider for ProviderService {
    async fn get_metadata(
        &self,
        _request: Request<tf::get_metadata::Request>,
    ) -> Result<Response<tf::get_metadata::Response>, Status> {
        Ok(Response::new(tf::get_metadata::Response {
            server_capabilities: Some(Self::capabilities()),
            resources: self
                .resources
                .keys()
                .map(|name| tf::get_metadata::ResourceMetadata { type_name: name.clone() })
                .collect(),
            data_sources: self
                .data_sources
                .keys()
                .map(|name| tf::get_metadata::DataSourceMetadata { type_name: name.clone() })
                .collect(),
            ..Default::default()
        }))
    }

    async fn get_provider_schema(
        &self,
        _request: Request<tf::get_provider_schema::Request>,
    ) -> Result<Response<tf::get_provider_schema::Response>, Status> {
        Ok(Response::new(tf::get_provider_schema::Response {
            provider: Some(schema_to_pb(&self.provider_schema)),
            resource_schemas: self.resources.iter().map(|(n, r)| (n.clone(), schema_to_pb(&r.schema))).collect(),
            data_source_schemas: self.data_sources.iter().map(|(n, d)| (n.clone(), schema_to_pb(&d.schema))).collect(),
            server_capabilities: Some(Self::capabilities()),
            ..Default::default()
        }))
    }

    async fn get_resource_identity_schemas(
        &self,
        _request: Request<tf::get_resource_identity_schemas::Request>,
    ) -> Result<Response<tf::get_resource_identity_schemas::Response>, Status> {
        Ok(Response::new(tf::get_resource_identity_schemas::Response::default()))
    }

    async fn validate_provider_config(
        &self,
        request: Request<tf::validate_provider_config::Request>,
    ) -> Result<Response<tf::validate_provider_config::Response>, Status> {
        let req = request.into_inner();
        let result = guarded("ValidateProviderConfig", async {
            let config = decode_value(req.config.as_ref(), &self.provider_ty, "provider configuration")?;
            Ok(self.provider.validate(&config).await)
        })
        .await;
        let diagnostics = all_diags(result);
        Ok(Response::new(tf::validate_provider_config::Response { diagnostics }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<tf::validate_resource_config::Request>,
    ) -> Result<Response<tf::validate_resource_config::Response>, Status> {
        let req = request.into_inner();
        let result = guarded("ValidateResourceConfig", async {
            let res = self.resource(&req.type_name)?;
            let config = decode_value(req.config.as_ref(), &res.ty, "configuration")?;
            Ok(res.imp.validate(&config).await)
        })
        .await;
        Ok(Response::new(tf::validate_resource_config::Response { diagnostics: all_diags(result) }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<tf::validate_data_resource_config::Request>,
    ) -> Result<Response<tf::validate_data_resource_config::Response>, Status> {
        let req = request.into_inner();
        let result = guarded("ValidateDataResourceConfig", async {
            let ds = self.data_source(&req.type_name)?;
            let config = decode_value(req.config.as_ref(), &ds.ty, "configuration")?;
            Ok(ds.imp.validate(&config).await)
        })
        .await;
        Ok(Response::new(tf::validate_data_resource_config::Response { diagnostics: all_diags(result) }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<tf::upgrade_resource_state::Request>,
    ) -> Result<Response<tf::upgrade_resource_state::Response>, Status> {
        let req = request.into_inner();
        let result = guarded("UpgradeResourceState", async {
            let res = self.resource(&req.type_name)?;
            if req.version > res.schema.version {
                return Err(Diagnostic::error(
                    "State written by a newer provider",
                    format!(
                        "The stored {} state has schema version {}, but this provider only knows version {}. \
                         Upgrade the provider.",
                        req.type_name, req.version, res.schema.version
                    ),
                )
                .into());
            }
            let raw = req.raw_state.unwrap_or_default();
            let value = if !raw.json.is_empty() {
                codec::decode_json(&raw.json, &res.ty)
            } else if !raw.flatmap.is_empty() {
                codec::decode_flatmap(&raw.flatmap, &res.ty)
            } else {
                Ok(Value::Null)
            }
            .map_err(|e| Diagnostic::from_error("Reading the stored state", &e))?;
            encode_value(&value, &res.ty, "upgraded state")
        })
        .await;
        let diagnostics = diags_of(&result);
        Ok(Response::new(tf::upgrade_resource_state::Response { upgraded_state: result.ok(), diagnostics }))
    }

    async fn upgrade_resource_identity(
        &self,
        request: Request<tf::upgrade_resource_identity::Request>,
    ) -> Result<Response<tf::upgrade_resource_identity::Response>, Status> {
        let type_name = request.into_inner().type_name;
        let diags = Diagnostics::from(Diagnostic::error(
            "Resource identity not supported",
            format!("{type_name:?} has no resource identity in this provider."),
        ));
        Ok(Response::new(tf::upgrade_resource_identity::Response {
            upgraded_identity: None,
            diagnostics: diagnostics_to_pb(&diags),
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<tf::configure_provider::Request>,
    ) -> Result<Response<tf::configure_provider::Response>, Status> {
        let req = request.into_inner();
        log::info(&format!("configuring (Terraform {})", req.terraform_version));
        let result = guarded("ConfigureProvider", async {
            let config = decode_value(req.config.as_ref(), &self.provider_ty, "provider configuration")?;
            self.provider.configure(&config).await
        })
        .await;
        Ok(Response::new(tf::configure_provider::Response { diagnostics: diags_of(&result) }))
    }

    async fn read_resource(
        &self,
        request: Request<tf::read_resource::Request>,
    ) -> Result<Response<tf::read_resource::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.op_context();
        let result = guarded("ReadResource", async {
            let res = self.resource(&req.type_name)?;
            let current = decode_value(req.current_state.as_ref(), &res.ty, "current state")?;
            let refreshed = res.imp.read(&current, &ctx).await?;
            encode_value(&refreshed, &res.ty, "refreshed state")
        })
        .await;
        let diagnostics = diags_of(&result);
        // On failure, hand the state back unchanged so nothing is forgotten.
        let new_state = result.ok().or(req.current_state);
        Ok(Response::new(tf::read_resource::Response {
            new_state,
            diagnostics,
            private: req.private,
            ..Default::default()
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<tf::plan_resource_change::Request>,
    ) -> Result<Response<tf::plan_resource_change::Response>, Status> {
        let req = request.into_inner();
        let result = guarded("PlanResourceChange", async {
            let res = self.resource(&req.type_name)?;
            let prior = decode_value(req.prior_state.as_ref(), &res.ty, "prior state")?;
            let proposed = decode_value(req.proposed_new_state.as_ref(), &res.ty, "proposed new state")?;
            let config = decode_value(req.config.as_ref(), &res.ty, "configuration")?;
            let outcome = res.imp.plan(&prior, &proposed, &config).await?;
            let planned = encode_value(&outcome.planned, &res.ty, "planned state")?;
            Ok((planned, outcome))
        })
        .await;
        let response = match result {
            Ok((planned, outcome)) => tf::plan_resource_change::Response {
                planned_state: Some(planned),
                requires_replace: outcome.requires_replace.iter().map(attr_path_to_pb).collect(),
                planned_private: req.prior_private,
                diagnostics: diagnostics_to_pb(&outcome.diagnostics),
                ..Default::default()
            },
            Err(diags) => {
                tf::plan_resource_change::Response { diagnostics: diagnostics_to_pb(&diags), ..Default::default() }
            }
        };
        Ok(Response::new(response))
    }

    async fn apply_resource_change(
        &self,
        request: Request<tf::apply_resource_change::Request>,
    ) -> Result<Response<tf::apply_resource_change::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.op_context();
        let warnings = ctx.warnings.clone();
        let result = match self.resource(&req.type_name) {
            Err(diags) => Err(diags),
            Ok(res) => {
                let (imp, ty) = (res.imp.clone(), res.ty.clone());
                let (prior, planned) = (req.prior_state.clone(), req.planned_state.clone());
                // If Terraform dies mid-create, its connection drops this handler; the task goes on,
                // sees the cancellation and rolls back instead of being dropped half-done.
                let operation = self.operations.spawn(guarded("ApplyResourceChange", async move {
                    let prior = decode_value(prior.as_ref(), &ty, "prior state")?;
                    let planned = decode_value(planned.as_ref(), &ty, "planned state")?;
                    let new_state = imp.apply(&prior, &planned, &ctx).await?;
                    encode_value(&new_state, &ty, "new state")
                }));
                operation.await.unwrap_or_else(|e| {
                    Err(Diagnostic::error("Internal error in the lab provider", format!("the apply task ended: {e}"))
                        .into())
                })
            }
        };
        let mut diagnostics = diagnostics_to_pb(&warnings.take());
        diagnostics.extend(diags_of(&result));
        // A failed operation leaves the object as it was: the prior state (null for a failed
        // create, whose partial work the resource rolled back).
        let new_state = result.ok().or(req.prior_state);
        Ok(Response::new(tf::apply_resource_change::Response {
            new_state,
            private: req.planned_private,
            diagnostics,
            ..Default::default()
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<tf::import_resource_state::Request>,
    ) -> Result<Response<tf::import_resource_state::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.op_context();
        let result = guarded("ImportResourceState", async {
            let res = self.resource(&req.type_name)?;
            match res.imp.import(&req.id, &ctx).await? {
                Some(state) => encode_value(&state, &res.ty, "imported state"),
                None => Err(Diagnostic::error(
                    "Cannot import non-existent remote object",
                    format!("No {} with id {:?} exists.", req.type_name, req.id),
                )
                .into()),
            }
        })
        .await;
        let diagnostics = diags_of(&result);
        let imported_resources = result
            .ok()
            .map(|state| tf::import_resource_state::ImportedResource {
                type_name: req.type_name.clone(),
                state: Some(state),
                ..Default::default()
            })
            .into_iter()
            .collect();
        Ok(Response::new(tf::import_resource_state::Response { imported_resources, diagnostics, deferred: None }))
    }

    async fn move_resource_state(
        &self,
        request: Request<tf::move_resource_state::Request>,
    ) -> Result<Response<tf::move_resource_state::Response>, Status> {
        let req = request.into_inner();
        let result = guarded("MoveResourceState", async {
            let res = self.resource(&req.target_type_name)?;
            if req.source_type_name != req.target_type_name {
                return Err(Diagnostic::error(
                    "Unsupported resource move",
                    format!(
                        "Cannot move {} ({}) to {}: only moves between addresses of the same type are supported.",
                        req.source_type_name, req.source_provider_address, req.target_type_name
                    ),
                )
                .into());
            }
            if req.source_schema_version > res.schema.version {
                return Err(Diagnostic::error(
                    "State written by a newer provider",
                    format!("The moved state has schema version {}.", req.source_schema_version),
                )
                .into());
            }
            let raw = req.source_state.unwrap_or_default();
            let value = codec::decode_json(&raw.json, &res.ty)
                .map_err(|e| Diagnostic::from_error("Reading the moved state", &e))?;
            encode_value(&value, &res.ty, "moved state")
        })
        .await;
        let diagnostics = diags_of(&result);
        Ok(Response::new(tf::move_resource_state::Response {
            target_state: result.ok(),
            diagnostics,
            target_private: req.source_private,
            target_identity: None,
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<tf::read_data_source::Request>,
    ) -> Result<Response<tf::read_data_source::Response>, Status> {
        let req = request.into_inner();
        let ctx = self.op_context();
        let result = guarded("ReadDataSource", async {
            let ds = self.data_source(&req.type_name)?;
            let config = decode_value(req.config.as_ref(), &ds.ty, "configuration")?;
            let state = ds.imp.read(&config, &ctx).await?;
            encode_value(&state, &ds.ty, "data source state")
        })
        .await;
        let diagnostics = diags_of(&result);
        Ok(Response::new(tf::read_data_source::Response { state: result.ok(), diagnostics, deferred: None }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        request: Request<tf::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<tf::validate_ephemeral_resource_config::Response>, Status> {
        let diagnostics = no_ephemeral(&request.into_inner().type_name);
        Ok(Response::new(tf::validate_ephemeral_resource_config::Response { diagnostics }))
    }

    async fn open_ephemeral_resource(
        &self,
        request: Request<tf::open_ephemeral_resource::Request>,
    ) -> Result<Response<tf::open_ephemeral_resource::Response>, Status> {
        let diagnostics = no_ephemeral(&request.into_inner().type_name);
        Ok(Response::new(tf::open_ephemeral_resource::Response { diagnostics, ..Default::default() }))
    }

    async fn renew_ephemeral_resource(
        &self,
        request: Request<tf::renew_ephemeral_resource::Request>,
    ) -> Result<Response<tf::renew_ephemeral_resource::Response>, Status> {
        let diagnostics = no_ephemeral(&request.into_inner().type_name);
        Ok(Response::new(tf::renew_ephemeral_resource::Response { diagnostics, ..Default::default() }))
    }

    async fn close_ephemeral_resource(
        &self,
        request: Request<tf::close_ephemeral_resource::Request>,
    ) -> Result<Response<tf::close_ephemeral_resource::Response>, Status> {
        let diagnostics = no_ephemeral(&request.into_inner().type_name);
        Ok(Response::new(tf::close_ephemeral_resource::Response { diagnostics }))
    }

    async fn get_functions(
        &self,
        _request: Request<tf::get_functions::Request>,
    ) -> Result<Response<tf::get_functions::Response>, Status> {
        Ok(Response::new(tf::get_functions::Response::default()))
    }

    async fn call_function(
        &self,
        request: Request<tf::call_function::Request>,
    ) -> Result<Response<tf::call_function::Response>, Status> {
        let name = request.into_inner().name;
        Ok(Response::new(tf::call_function::Response {
            result: None,
            error: Some(tf::FunctionError {
                text: format!("This provider has no function {name:?}."),
                function_argument: None,
            }),
        }))
    }

    async fn stop_provider(
        &self,
        _request: Request<tf::stop_provider::Request>,
    ) -> Result<Response<tf::stop_provider::Response>, Status> {
        log::info("StopProvider: cancelling in-flight operations");
        let mut token = self.stop.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        token.cancel();
        // Later calls get a fresh token: stopping is about what runs now.
        *token = self.shutdown.child_token();
        Ok(Response::new(tf::stop_provider::Response { error: String::new() }))
    }
}

fn no_ephemeral(type_name: &str) -> Vec<tf::Diagnostic> {
    diagnostics_to_pb(&Diagnostics::from(Diagnostic::error(
        "Unknown ephemeral resource type",
        format!("This provider has no ephemeral resource type {type_name:?}."),
    )))
}

// ---------------------------------------------------------------- go-plugin services

/// `plugin.GRPCController`: Shutdown triggers the graceful exit.
pub struct Controller {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gp::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _request: Request<gp::Empty>) -> Result<Response<gp::Empty>, Status> {
        log::debug("Shutdown requested by Terraform");
        self.shutdown.cancel();
        Ok(Response::new(gp::Empty {}))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// `plugin.GRPCStdio`: we never write to stdout/stderr outside logs, so the stream stays open
/// and silent until shutdown (ending it then lets the graceful shutdown finish).
pub struct Stdio {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gp::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<gp::StdioData>;

    async fn stream_stdio(&self, _request: Request<()>) -> Result<Response<Self::StreamStdioStream>, Status> {
        let shutdown = self.shutdown.clone();
        let stream = futures::stream::once(async move { shutdown.cancelled_owned().await })
            .filter_map(|()| async { None::<Result<gp::StdioData, Status>> });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// `plugin.GRPCBroker`: Terraform opens the stream but never brokers connections to providers.
pub struct Broker {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gp::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = BoxStream<gp::ConnInfo>;

    async fn start_stream(
        &self,
        request: Request<tonic::Streaming<gp::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut incoming = request.into_inner();
        let shutdown = self.shutdown.clone();
        let drained = async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    message = incoming.message() => if !matches!(message, Ok(Some(_))) { break },
                }
            }
        };
        let stream = futures::stream::once(drained).filter_map(|()| async { None::<Result<gp::ConnInfo, Status>> });
        Ok(Response::new(Box::pin(stream)))
    }
}

use futures::StreamExt;

/// All services on one router, as both the Terraform and the debug mode serve them.
pub async fn router(
    provider: Arc<dyn ErasedProvider>,
    shutdown: CancellationToken,
    operations: TaskTracker,
) -> tonic::transport::server::Router {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status("plugin", tonic_health::ServingStatus::Serving).await;
    let provider_service =
        tf::provider_server::ProviderServer::new(ProviderService::new(provider, shutdown.clone(), operations))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(provider_service)
        .add_service(gp::grpc_controller_server::GrpcControllerServer::new(Controller { shutdown: shutdown.clone() }))
        .add_service(gp::grpc_stdio_server::GrpcStdioServer::new(Stdio { shutdown: shutdown.clone() }))
        .add_service(gp::grpc_broker_server::GrpcBrokerServer::new(Broker { shutdown }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::dispatch::erase_provider;
    use crate::protocol::schema::{Attribute, Block};
    use tf::provider_server::Provider as _;

    #[derive(Default)]
    struct EmptyProvider;

    #[async_trait::async_trait]
    impl crate::protocol::resource::Provider for EmptyProvider {
        type Config = std::collections::BTreeMap<String, Option<String>>;
        fn schema(&self) -> Schema {
            Schema {
                version: 0,
                block: Block { attributes: vec![Attribute::string("domain").optional()], ..Default::default() },
            }
        }
        async fn configure(&self, _config: Self::Config) -> Result<(), Diagnostics> {
            Ok(())
        }
        fn resources(&self) -> Vec<Arc<dyn ErasedResource>> {
            Vec::new()
        }
        fn data_sources(&self) -> Vec<Arc<dyn ErasedDataSource>> {
            Vec::new()
        }
    }

    #[tokio::test]
    async fn stop_provider_cancels_running_operations_only() {
        let service = ProviderService::new(erase_provider(EmptyProvider), CancellationToken::new(), TaskTracker::new());
        let running = service.op_context();
        service.stop_provider(Request::new(tf::stop_provider::Request {})).await.unwrap();
        assert!(running.cancel.is_cancelled());
        assert!(!service.op_context().cancel.is_cancelled());
    }

    #[tokio::test]
    async fn panics_become_error_diagnostics_without_backtraces() {
        let result: Result<(), Diagnostics> =
            guarded("PlanResourceChange", async { panic!("index out of bounds") }).await;
        let diags = result.unwrap_err();
        assert_eq!(diags.0[0].severity, Severity::Error);
        assert!(diags.0[0].detail.contains("index out of bounds"));
        assert!(!diags.0[0].detail.contains("stack backtrace"));
    }

    #[test]
    fn attribute_paths_map_to_protocol_steps() {
        use tf::attribute_path::step::Selector;
        let path = AttrPath::root("disks").index(2).attr("labels").key("course");
        let steps: Vec<Selector> = attr_path_to_pb(&path).steps.into_iter().map(|s| s.selector.unwrap()).collect();
        assert_eq!(
            steps,
            vec![
                Selector::AttributeName("disks".into()),
                Selector::ElementKeyInt(2),
                Selector::AttributeName("labels".into()),
                Selector::ElementKeyString("course".into()),
            ]
        );
    }

    #[tokio::test]
    async fn unknown_types_and_functions_answer_with_diagnostics() {
        let service = ProviderService::new(erase_provider(EmptyProvider), CancellationToken::new(), TaskTracker::new());
        let read = service
            .read_resource(Request::new(tf::read_resource::Request { type_name: "x".into(), ..Default::default() }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read.diagnostics[0].severity, tf::diagnostic::Severity::Error as i32);
        let call = service
            .call_function(Request::new(tf::call_function::Request { name: "f".into(), arguments: vec![] }))
            .await
            .unwrap()
            .into_inner();
        assert!(call.error.is_some());
        let functions = service.get_functions(Request::new(tf::get_functions::Request {})).await.unwrap();
        assert!(functions.into_inner().functions.is_empty());
    }
}

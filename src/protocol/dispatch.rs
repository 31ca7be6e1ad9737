//! Erased resources: `Resource`/`DataSource`/`Provider` impls behind `dyn`, converting
//! `Value` <-> typed state through `serde_bridge`, and the generic plan algorithm described in
//! `resource.rs`. Wire formats (msgpack, protobuf) stay in `server.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};

use super::diag::{AttrPath, Diagnostic, Diagnostics, PathStep};
use super::resource::{DataSource, OpContext, PlanRequest, Provider, Resource};
use super::schema::{Attribute, Block, Nesting, Schema};
use super::serde_bridge::{BridgeError, ValueProblem, from_value, to_value};
use super::value::{Type, Value};

/// A plan as the protocol layer returns it to Terraform.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOutcome {
    pub planned: Value,
    pub requires_replace: Vec<AttrPath>,
    /// Warnings (errors come back as `Err`).
    pub diagnostics: Diagnostics,
}

#[async_trait]
pub trait ErasedResource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, config: &Value) -> Diagnostics;
    /// `prior` is `Value::Null` on create; `proposed` is `Value::Null` on destroy.
    async fn plan(&self, prior: &Value, proposed: &Value, config: &Value) -> Result<PlanOutcome, Diagnostics>;
    /// Create (prior null), update, or delete (planned null; returns null).
    async fn apply(&self, prior: &Value, planned: &Value, ctx: &OpContext) -> Result<Value, Diagnostics>;
    /// `Value::Null` when the object is gone.
    async fn read(&self, current: &Value, ctx: &OpContext) -> Result<Value, Diagnostics>;
    /// `None` when nothing has that id.
    async fn import(&self, id: &str, ctx: &OpContext) -> Result<Option<Value>, Diagnostics>;
}

#[async_trait]
pub trait ErasedDataSource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, config: &Value) -> Diagnostics;
    async fn read(&self, config: &Value, ctx: &OpContext) -> Result<Value, Diagnostics>;
}

#[async_trait]
pub trait ErasedProvider: Send + Sync {
    fn schema(&self) -> Schema;
    async fn validate(&self, config: &Value) -> Diagnostics;
    async fn configure(&self, config: &Value) -> Result<(), Diagnostics>;
    fn resources(&self) -> Vec<Arc<dyn ErasedResource>>;
    fn data_sources(&self) -> Vec<Arc<dyn ErasedDataSource>>;
}

// ---------------------------------------------------------------- conversions

fn decode<S: DeserializeOwned>(block: &Block, what: &str, value: &Value) -> Result<S, Diagnostics> {
    from_value(value).map_err(|e| decode_error(block, what, &e).into())
}

/// A value that does not fit its typed field, as an error on its attribute in the user's words,
/// with the attribute's unit from the schema: "memory_mb must be a whole number of MiB, got 512.5".
fn decode_error(block: &Block, what: &str, err: &BridgeError) -> Diagnostic {
    let BridgeError::FromValue { path, problem } = err else {
        return Diagnostic::from_error(format!("Invalid {what}"), err);
    };
    if path.0.is_empty() {
        return Diagnostic::from_error(format!("Invalid {what}"), err);
    }
    let unit = attribute_at(block, path).map(|a| a.unit.as_str()).filter(|u| !u.is_empty());
    let counted = |n: &str| unit.map_or_else(|| n.to_string(), |u| format!("{n} {u}"));
    let detail = match problem {
        ValueProblem::NotWhole { number } => match unit {
            Some(unit) => format!("{path} must be a whole number of {unit}, got {number}"),
            None => format!("{path} must be a whole number, got {number}"),
        },
        ValueProblem::TooLarge { number, max } => {
            format!("{path} is too large: {} (at most {})", counted(number), counted(max))
        }
        ValueProblem::TooSmall { number, min } => {
            format!("{path} is too small: {} (at least {})", counted(number), counted(min))
        }
        ValueProblem::Other(why) => format!("{path}: {why}"),
    };
    // In a configuration the user is at fault and the path says where; elsewhere (state) it is
    // the provider, and the summary says which value it could not read.
    let summary = if what.ends_with("configuration") { format!("Invalid {path}") } else { format!("Invalid {what}") };
    Diagnostic::attr_error(path.clone(), summary, detail)
}

/// The attribute `path` leads to, through nested blocks, nested attributes and their elements.
fn attribute_at<'a>(block: &'a Block, path: &AttrPath) -> Option<&'a Attribute> {
    let (mut attributes, mut blocks) = (block.attributes.as_slice(), block.blocks.as_slice());
    let mut found = None;
    for step in &path.0 {
        // `[0]` / `["key"]` select an element: the schema is the same for all of them.
        let PathStep::Attr(name) = step else { continue };
        if let Some(attribute) = attributes.iter().find(|a| &a.name == name) {
            found = Some(attribute);
            let nested = attribute.nested.as_ref().map_or(&[][..], |n| n.attributes.as_slice());
            (attributes, blocks) = (nested, &[]);
        } else if let Some(nested) = blocks.iter().find(|b| &b.type_name == name) {
            found = None;
            (attributes, blocks) = (nested.block.attributes.as_slice(), nested.block.blocks.as_slice());
        } else {
            return None;
        }
    }
    found
}

/// The path of a diagnostic as Terraform can find it in the configuration. Terraform follows
/// a path through blocks, then to an attribute, then at most one index step into its value
/// (`ElaborateFromConfigBody` in its `tfdiags`); a step into an object (`publish.host_port` of
/// `publish = { host_port = 70000 }`) makes it underline the whole resource instead. So the
/// step after the attribute travels as a key (`publish["host_port"]`, which Terraform finds in
/// the object's text), and deeper steps are left out: summary and detail name the whole path.
pub fn path_for_terraform(block: &Block, path: AttrPath) -> AttrPath {
    let mut fitted = Vec::with_capacity(path.0.len());
    let mut steps = path.0.into_iter();
    let mut current = block;
    while let Some(step) = steps.next() {
        let PathStep::Attr(name) = &step else {
            fitted.push(step);
            fitted.extend(steps);
            break;
        };
        if let Some(nested) = current.blocks.iter().find(|b| &b.type_name == name) {
            fitted.push(step);
            if !matches!(nested.nesting, Nesting::Single | Nesting::Group)
                && let Some(element) = steps.next()
            {
                fitted.push(element);
            }
            current = &nested.block;
            continue;
        }
        fitted.push(step);
        if let Some(next) = steps.next() {
            fitted.push(match next {
                PathStep::Attr(name) => PathStep::Key(name),
                element => element,
            });
        }
        break;
    }
    AttrPath(fitted)
}

/// `path_for_terraform` on every diagnostic.
fn for_terraform(block: &Block, mut diags: Diagnostics) -> Diagnostics {
    for d in &mut diags.0 {
        if let Some(path) = d.attribute.take() {
            d.attribute = Some(path_for_terraform(block, path));
        }
    }
    diags
}

fn encode<S: Serialize>(what: &str, state: &S, ty: &Type) -> Result<Value, Diagnostics> {
    to_value(state, ty).map_err(|e| Diagnostic::from_error(format!("Provider produced an invalid {what}"), &e).into())
}

// ---------------------------------------------------------------- plan algorithm

fn is_null(value: &Value) -> bool {
    matches!(value, Value::Null)
}

fn attrs_of(value: &Value) -> Option<&BTreeMap<String, Value>> {
    match value {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Steps 1-4 of the plan algorithm (see `resource.rs`), on untyped values.
/// Only top-level attributes carry plan modifiers; nested blocks pass through as proposed.
pub fn generic_plan(schema: &Schema, prior: &Value, proposed: &Value, config: &Value) -> (Value, Vec<AttrPath>) {
    let Value::Object(mut planned) = proposed.clone() else {
        return (proposed.clone(), Vec::new());
    };
    let empty = BTreeMap::new();
    let config_attrs = attrs_of(config).unwrap_or(&empty);
    let prior_attrs = attrs_of(prior);
    let unset_in_config = |name: &str| matches!(config_attrs.get(name), None | Some(Value::Null));

    // 2. defaults; write-only values never reach state.
    for attr in &schema.block.attributes {
        if attr.write_only {
            planned.insert(attr.name.clone(), Value::Null);
        } else if let Some(default) = &attr.default
            && unset_in_config(&attr.name)
        {
            planned.insert(attr.name.clone(), default.clone());
        }
    }

    // 3. computed values not set by config and not defaulted.
    let undetermined = schema
        .block
        .attributes
        .iter()
        .filter(|a| a.computed && a.default.is_none() && !a.write_only && unset_in_config(&a.name));
    match prior_attrs {
        None => {
            for attr in undetermined {
                planned.insert(attr.name.clone(), Value::Unknown);
            }
        }
        Some(prior_attrs) => {
            if prior_attrs != &planned {
                for attr in undetermined.filter(|a| !a.keep_prior) {
                    planned.insert(attr.name.clone(), Value::Unknown);
                }
            }
        }
    }

    // 4. replacement triggers.
    let mut requires_replace = Vec::new();
    if let Some(prior_attrs) = prior_attrs {
        for attr in schema.block.attributes.iter().filter(|a| a.requires_replace) {
            let before = prior_attrs.get(&attr.name).unwrap_or(&Value::Null);
            let after = planned.get(&attr.name).unwrap_or(&Value::Null);
            if before != after {
                requires_replace.push(AttrPath::root(&attr.name));
            }
        }
    }
    (Value::Object(planned), requires_replace)
}

/// Terraform requires planned values to equal the configuration wherever the configuration sets
/// them; the typed round trip may be lossy there (a partly-unknown map reads as `Attr::Unknown`),
/// so configured attributes and all nested blocks are taken from the generic plan.
fn keep_configured(schema: &Schema, config: &Value, generic: &Value, typed: Value) -> Value {
    let (Some(config), Some(generic), Value::Object(mut typed)) = (attrs_of(config), attrs_of(generic), typed.clone())
    else {
        return typed;
    };
    let configured = schema
        .block
        .attributes
        .iter()
        .filter(|a| !matches!(config.get(&a.name), None | Some(Value::Null)))
        .map(|a| &a.name)
        .chain(schema.block.blocks.iter().map(|b| &b.type_name));
    for name in configured {
        if let Some(v) = generic.get(name) {
            typed.insert(name.clone(), v.clone());
        }
    }
    Value::Object(typed)
}

/// Write-only attributes are null in every state Terraform stores.
fn strip_write_only(schema: &Schema, value: Value) -> Value {
    match value {
        Value::Object(mut attrs) => {
            for attr in schema.block.attributes.iter().filter(|a| a.write_only) {
                attrs.insert(attr.name.clone(), Value::Null);
            }
            Value::Object(attrs)
        }
        other => other,
    }
}

// ---------------------------------------------------------------- adapters

struct ResourceAdapter<R> {
    inner: R,
    schema: Schema,
    ty: Type,
}

impl<R: Resource> ResourceAdapter<R> {
    fn block(&self) -> &Block {
        &self.schema.block
    }

    async fn typed_plan(&self, prior: &Value, proposed: &Value, config: &Value) -> Result<PlanOutcome, Diagnostics> {
        if is_null(proposed) {
            return Ok(PlanOutcome {
                planned: Value::Null,
                requires_replace: Vec::new(),
                diagnostics: Diagnostics::new(),
            });
        }
        let block = self.block();
        let (planned, mut requires_replace) = generic_plan(&self.schema, prior, proposed, config);
        let request = PlanRequest {
            prior: if is_null(prior) { None } else { Some(decode::<R::State>(block, "prior state", prior)?) },
            config: decode::<R::State>(block, "configuration", config)?,
            planned: decode::<R::State>(block, "planned state", &planned)?,
        };
        let typed = self.inner.plan(request).await?;
        requires_replace.retain(|path| !typed.adopt_without_replace.contains(path));
        for path in typed.requires_replace {
            if !requires_replace.contains(&path) {
                requires_replace.push(path);
            }
        }
        let typed_planned = encode("planned state", &typed.state, &self.ty)?;
        let planned = strip_write_only(&self.schema, keep_configured(&self.schema, config, &planned, typed_planned));
        Ok(PlanOutcome { planned, requires_replace, diagnostics: typed.diagnostics })
    }

    async fn typed_apply(&self, prior: &Value, planned: &Value, ctx: &OpContext) -> Result<Value, Diagnostics> {
        let block = self.block();
        match (is_null(prior), is_null(planned)) {
            (_, true) => {
                if !is_null(prior) {
                    self.inner.delete(decode(block, "prior state", prior)?, ctx).await?;
                }
                Ok(Value::Null)
            }
            (true, false) => {
                let created = self.inner.create(decode(block, "planned state", planned)?, ctx).await?;
                Ok(strip_write_only(&self.schema, encode("new state", &created, &self.ty)?))
            }
            (false, false) => {
                let (prior, planned) = (decode(block, "prior state", prior)?, decode(block, "planned state", planned)?);
                let updated = self.inner.update(prior, planned, ctx).await?;
                Ok(strip_write_only(&self.schema, encode("new state", &updated, &self.ty)?))
            }
        }
    }

    async fn typed_read(&self, current: &Value, ctx: &OpContext) -> Result<Value, Diagnostics> {
        if is_null(current) {
            return Ok(Value::Null);
        }
        match self.inner.read(decode(self.block(), "current state", current)?, ctx).await? {
            Some(state) => encode("refreshed state", &state, &self.ty),
            None => Ok(Value::Null),
        }
    }
}

/// Every diagnostic leaves through here with its path fitted for Terraform (`for_terraform`).
#[async_trait]
impl<R: Resource> ErasedResource for ResourceAdapter<R> {
    fn type_name(&self) -> &'static str {
        self.inner.type_name()
    }

    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    async fn validate(&self, config: &Value) -> Diagnostics {
        let diags = match decode::<R::State>(self.block(), "configuration", config) {
            Ok(config) => self.inner.validate(&config).await,
            Err(diags) => diags,
        };
        for_terraform(self.block(), diags)
    }

    async fn plan(&self, prior: &Value, proposed: &Value, config: &Value) -> Result<PlanOutcome, Diagnostics> {
        match self.typed_plan(prior, proposed, config).await {
            Ok(outcome) => Ok(PlanOutcome { diagnostics: for_terraform(self.block(), outcome.diagnostics), ..outcome }),
            Err(diags) => Err(for_terraform(self.block(), diags)),
        }
    }

    async fn apply(&self, prior: &Value, planned: &Value, ctx: &OpContext) -> Result<Value, Diagnostics> {
        self.typed_apply(prior, planned, ctx).await.map_err(|d| for_terraform(self.block(), d))
    }

    async fn read(&self, current: &Value, ctx: &OpContext) -> Result<Value, Diagnostics> {
        self.typed_read(current, ctx).await.map_err(|d| for_terraform(self.block(), d))
    }

    async fn import(&self, id: &str, ctx: &OpContext) -> Result<Option<Value>, Diagnostics> {
        let imported = self.inner.import(id, ctx).await.map_err(|d| for_terraform(self.block(), d))?;
        imported.map(|state| encode("imported state", &state, &self.ty)).transpose()
    }
}

struct DataSourceAdapter<D> {
    inner: D,
    schema: Schema,
    ty: Type,
}

#[async_trait]
impl<D: DataSource> ErasedDataSource for DataSourceAdapter<D> {
    fn type_name(&self) -> &'static str {
        self.inner.type_name()
    }

    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    async fn validate(&self, config: &Value) -> Diagnostics {
        let block = &self.schema.block;
        let diags = match decode::<D::State>(block, "configuration", config) {
            Ok(config) => self.inner.validate(&config).await,
            Err(diags) => diags,
        };
        for_terraform(block, diags)
    }

    async fn read(&self, config: &Value, ctx: &OpContext) -> Result<Value, Diagnostics> {
        let block = &self.schema.block;
        let config = decode(block, "configuration", config).map_err(|d| for_terraform(block, d))?;
        let state = self.inner.read(config, ctx).await.map_err(|d| for_terraform(block, d))?;
        encode("data source state", &state, &self.ty)
    }
}

struct ProviderAdapter<P>(P);

#[async_trait]
impl<P: Provider> ErasedProvider for ProviderAdapter<P> {
    fn schema(&self) -> Schema {
        self.0.schema()
    }

    async fn validate(&self, config: &Value) -> Diagnostics {
        let block = self.0.schema().block;
        let diags = match decode::<P::Config>(&block, "provider configuration", config) {
            Ok(config) => self.0.validate(&config).await,
            Err(diags) => diags,
        };
        for_terraform(&block, diags)
    }

    async fn configure(&self, config: &Value) -> Result<(), Diagnostics> {
        let block = self.0.schema().block;
        let config = decode(&block, "provider configuration", config).map_err(|d| for_terraform(&block, d))?;
        self.0.configure(config).await.map_err(|d| for_terraform(&block, d))
    }

    fn resources(&self) -> Vec<Arc<dyn ErasedResource>> {
        self.0.resources()
    }

    fn data_sources(&self) -> Vec<Arc<dyn ErasedDataSource>> {
        self.0.data_sources()
    }
}

pub fn erase_resource<R: Resource>(r: R) -> Arc<dyn ErasedResource> {
    let schema = r.schema();
    let ty = schema.block.value_type();
    Arc::new(ResourceAdapter { inner: r, schema, ty })
}

pub fn erase_data_source<D: DataSource>(d: D) -> Arc<dyn ErasedDataSource> {
    let schema = d.schema();
    let ty = schema.block.value_type();
    Arc::new(DataSourceAdapter { inner: d, schema, ty })
}

pub fn erase_provider<P: Provider>(p: P) -> Arc<dyn ErasedProvider> {
    Arc::new(ProviderAdapter(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::{decode_msgpack, encode_msgpack};
    use crate::protocol::resource::{Attr, Planned};
    use crate::protocol::schema::{Attribute, Block};
    use crate::protocol::value::Number;
    use serde::Deserialize;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    struct Thing {
        name: Attr<String>,
        size: Attr<f64>,
        big: Attr<serde_json::Number>,
        zone: Attr<String>,
        image: Attr<String>,
        secret: Attr<String>,
        id: Attr<String>,
        fingerprint: Attr<String>,
    }

    struct ThingResource;

    #[async_trait]
    impl Resource for ThingResource {
        type State = Thing;
        fn type_name(&self) -> &'static str {
            "test_thing"
        }
        fn schema(&self) -> Schema {
            Schema {
                version: 0,
                block: Block {
                    attributes: vec![
                        Attribute::string("name").required(),
                        Attribute::number("size").optional(),
                        Attribute::number("big").optional(),
                        Attribute::string("zone").default(Value::String("a".into())),
                        Attribute::string("image").optional().requires_replace(),
                        Attribute::string("secret").optional().write_only(),
                        Attribute::string("id").computed().keep_prior(),
                        Attribute::string("fingerprint").computed(),
                    ],
                    ..Default::default()
                },
            }
        }
        async fn plan(&self, req: PlanRequest<Thing>) -> Result<Planned<Thing>, Diagnostics> {
            let mut planned = Planned::new(req.planned);
            if planned.state.name.known().is_some_and(|n| n == "rebuild") {
                planned.requires_replace.push(AttrPath::root("name"));
            }
            if planned.state.name.known().is_some_and(|n| n == "panic") {
                return Err(Diagnostic::attr_error(AttrPath::root("name"), "bad name", "no").into());
            }
            Ok(planned)
        }
        async fn create(&self, mut planned: Thing, _ctx: &OpContext) -> Result<Thing, Diagnostics> {
            planned.id = Attr::Known("id-1".into());
            planned.fingerprint = Attr::Known("fp".into());
            Ok(planned)
        }
        async fn read(&self, current: Thing, _ctx: &OpContext) -> Result<Option<Thing>, Diagnostics> {
            Ok(if current.name.known().is_some_and(|n| n == "gone") { None } else { Some(current) })
        }
        async fn update(&self, _prior: Thing, planned: Thing, _ctx: &OpContext) -> Result<Thing, Diagnostics> {
            Ok(Thing { fingerprint: Attr::Known("fp2".into()), ..planned })
        }
        async fn delete(&self, _current: Thing, _ctx: &OpContext) -> Result<(), Diagnostics> {
            Ok(())
        }
        async fn import(&self, id: &str, _ctx: &OpContext) -> Result<Option<Thing>, Diagnostics> {
            Ok((id == "id-1").then(|| Thing { id: Attr::Known(id.into()), ..Default::default() }))
        }
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        let names = ["name", "size", "big", "zone", "image", "secret", "id", "fingerprint"];
        let mut map: BTreeMap<String, Value> = names.iter().map(|n| (n.to_string(), Value::Null)).collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.clone());
        }
        Value::Object(map)
    }

    /// What Terraform proposes: config values, prior values for computed attributes unset in config.
    fn propose(prior: &Value, config: &Value) -> Value {
        let (Value::Object(prior), Value::Object(config)) = (prior, config) else { return config.clone() };
        let mut out = config.clone();
        for name in ["zone", "id", "fingerprint"] {
            if config[name] == Value::Null {
                out.insert(name.to_string(), prior[name].clone());
            }
        }
        Value::Object(out)
    }

    fn stored() -> Value {
        obj(&[("name", s("x")), ("zone", s("a")), ("image", s("img")), ("id", s("id-1")), ("fingerprint", s("fp"))])
    }

    #[tokio::test]
    async fn create_fills_defaults_and_leaves_computed_unknown() {
        let r = erase_resource(ThingResource);
        let config = obj(&[("name", s("x")), ("secret", s("hunter2"))]);
        let plan = r.plan(&Value::Null, &config, &config).await.unwrap();
        assert_eq!(plan.planned.get_attr("zone"), Some(&s("a")));
        assert_eq!(plan.planned.get_attr("id"), Some(&Value::Unknown));
        assert_eq!(plan.planned.get_attr("fingerprint"), Some(&Value::Unknown));
        assert_eq!(plan.planned.get_attr("secret"), Some(&Value::Null), "write-only never planned");
        assert!(plan.requires_replace.is_empty());
    }

    #[tokio::test]
    async fn unchanged_config_plans_no_change() {
        let r = erase_resource(ThingResource);
        let config = obj(&[("name", s("x")), ("image", s("img"))]);
        let plan = r.plan(&stored(), &propose(&stored(), &config), &config).await.unwrap();
        assert_eq!(plan.planned, stored());
        assert!(plan.requires_replace.is_empty());
    }

    #[tokio::test]
    async fn update_keeps_prior_only_where_asked() {
        let r = erase_resource(ThingResource);
        let config = obj(&[("name", s("y")), ("image", s("img"))]);
        let plan = r.plan(&stored(), &propose(&stored(), &config), &config).await.unwrap();
        assert_eq!(plan.planned.get_attr("name"), Some(&s("y")));
        assert_eq!(plan.planned.get_attr("id"), Some(&s("id-1")), "keep_prior");
        assert_eq!(plan.planned.get_attr("fingerprint"), Some(&Value::Unknown));
        assert_eq!(plan.planned.get_attr("zone"), Some(&s("a")));
        assert!(plan.requires_replace.is_empty());
    }

    #[tokio::test]
    async fn requires_replace_from_schema_and_from_resource() {
        let r = erase_resource(ThingResource);
        let config = obj(&[("name", s("x")), ("image", s("img2"))]);
        let plan = r.plan(&stored(), &propose(&stored(), &config), &config).await.unwrap();
        assert_eq!(plan.requires_replace, vec![AttrPath::root("image")]);

        let config = obj(&[("name", s("rebuild")), ("image", s("img"))]);
        let plan = r.plan(&stored(), &propose(&stored(), &config), &config).await.unwrap();
        assert_eq!(plan.requires_replace, vec![AttrPath::root("name")]);

        // An unknown value (known only after apply) may differ: replace.
        let config = obj(&[("name", s("x")), ("image", Value::Unknown)]);
        let plan = r.plan(&stored(), &propose(&stored(), &config), &config).await.unwrap();
        assert_eq!(plan.requires_replace, vec![AttrPath::root("image")]);
    }

    #[tokio::test]
    async fn destroy_plans_pass_through_and_errors_keep_paths() {
        let r = erase_resource(ThingResource);
        let plan = r.plan(&stored(), &Value::Null, &Value::Null).await.unwrap();
        assert_eq!(plan.planned, Value::Null);

        let config = obj(&[("name", s("panic"))]);
        let err = r.plan(&Value::Null, &config, &config).await.unwrap_err();
        assert_eq!(err.0[0].attribute, Some(AttrPath::root("name")));
    }

    #[tokio::test]
    async fn apply_read_import_lifecycle() {
        let r = erase_resource(ThingResource);
        let ctx = OpContext::default();
        let config = obj(&[("name", s("x")), ("secret", s("hunter2"))]);
        let plan = r.plan(&Value::Null, &config, &config).await.unwrap();
        let created = r.apply(&Value::Null, &plan.planned, &ctx).await.unwrap();
        assert_eq!(created.get_attr("id"), Some(&s("id-1")));
        assert_eq!(created.get_attr("secret"), Some(&Value::Null));
        assert_eq!(r.read(&created, &ctx).await.unwrap(), created);
        let gone = obj(&[("name", s("gone"))]);
        assert_eq!(r.read(&gone, &ctx).await.unwrap(), Value::Null);
        assert_eq!(r.apply(&created, &Value::Null, &ctx).await.unwrap(), Value::Null);
        assert!(r.import("id-1", &ctx).await.unwrap().is_some());
        assert!(r.import("nope", &ctx).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn numbers_and_unknowns_round_trip_through_msgpack_and_typed_state() {
        let r = erase_resource(ThingResource);
        let ty = r.schema().block.value_type();
        let config = obj(&[
            ("name", s("x")),
            ("size", Value::Number(Number::Float(1.5))),
            ("big", Value::Number(Number::parse("1e20").unwrap())),
            ("image", Value::Unknown),
        ]);
        let wire = encode_msgpack(&config, &ty).unwrap();
        let decoded = decode_msgpack(&wire, &ty).unwrap();
        assert_eq!(decoded, config);

        let plan = r.plan(&Value::Null, &decoded, &decoded).await.unwrap();
        let back = decode_msgpack(&encode_msgpack(&plan.planned, &ty).unwrap(), &ty).unwrap();
        assert_eq!(back.get_attr("size"), Some(&Value::Number(Number::Float(1.5))));
        assert_eq!(back.get_attr("big"), Some(&Value::Number(Number::parse("100000000000000000000").unwrap())));
        assert_eq!(back.get_attr("image"), Some(&Value::Unknown));
    }

    /// A block like `lab_vm`'s and `lab_terminal`'s: numbers with units, a nested attribute,
    /// a list of strings, a timeouts block and a list block.
    fn diag_block() -> Block {
        use crate::protocol::schema::{NestedBlock, Nesting};
        let timeouts = Block { attributes: vec![Attribute::string("create").optional()], ..Default::default() };
        Block {
            attributes: vec![
                Attribute::number("memory_mb").optional().unit("MiB"),
                Attribute::number("vcpus").optional(),
                Attribute::nested("publish", Nesting::Single, vec![Attribute::number("host_port").optional()]),
                Attribute::of_type("keys", Type::List(Box::new(Type::String))).optional(),
            ],
            blocks: vec![
                NestedBlock {
                    type_name: "timeouts".into(),
                    block: timeouts.clone(),
                    nesting: Nesting::Single,
                    min_items: 0,
                    max_items: 0,
                },
                NestedBlock {
                    type_name: "disk".into(),
                    block: timeouts,
                    nesting: Nesting::List,
                    min_items: 0,
                    max_items: 0,
                },
            ],
            ..Default::default()
        }
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // read only for its errors
    struct Sized {
        memory_mb: Attr<i64>,
        vcpus: Attr<u32>,
        publish: Attr<Port>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Port {
        host_port: Attr<u16>,
    }

    fn decode_detail(attr: &str, value: Value) -> (String, String, Option<AttrPath>) {
        let config = Value::Object(BTreeMap::from([(attr.to_string(), value)]));
        let d = decode::<Sized>(&diag_block(), "configuration", &config).unwrap_err().0.remove(0);
        (d.summary, d.detail, d.attribute)
    }

    #[test]
    fn decode_errors_sit_on_the_attribute_in_the_users_words() {
        let (summary, detail, path) = decode_detail("memory_mb", Value::Number(Number::parse("512.5").unwrap()));
        assert_eq!(summary, "Invalid memory_mb");
        assert_eq!(detail, "memory_mb must be a whole number of MiB, got 512.5");
        assert_eq!(path, Some(AttrPath::root("memory_mb")));

        let (_, detail, _) = decode_detail("memory_mb", Value::Number(Number::parse("1e20").unwrap()));
        assert_eq!(detail, "memory_mb is too large: 1e20 MiB (at most 9223372036854775807 MiB)");

        // No unit in the schema: the number alone.
        let (_, detail, _) = decode_detail("vcpus", Value::int(-1));
        assert_eq!(detail, "vcpus is too small: -1 (at least 0)");

        let publish = Value::Object(BTreeMap::from([("host_port".to_string(), Value::int(70000))]));
        let (summary, detail, path) = decode_detail("publish", publish);
        assert_eq!(summary, "Invalid publish.host_port");
        assert_eq!(detail, "publish.host_port is too large: 70000 (at most 65535)");
        assert_eq!(path, Some(AttrPath::root("publish").attr("host_port")));

        for d in [decode_detail("memory_mb", Value::Number(Number::Float(1.5))).1, detail] {
            for word in ["i64", "u16", "u32", "out of range"] {
                assert!(!d.contains(word), "{d:?} uses {word:?}");
            }
        }
    }

    #[test]
    fn paths_are_fitted_to_what_terraform_can_find_in_the_configuration() {
        let block = diag_block();
        let fit = |p: AttrPath| path_for_terraform(&block, p).to_string();
        assert_eq!(fit(AttrPath::root("memory_mb")), "memory_mb");
        // Into a nested attribute's object: one key step, which Terraform finds in `{ .. }`.
        assert_eq!(fit(AttrPath::root("publish").attr("host_port")), r#"publish["host_port"]"#);
        assert_eq!(fit(AttrPath::root("keys").index(1)), "keys[1]");
        assert_eq!(fit(AttrPath::root("keys").index(1).attr("deeper")), "keys[1]");
        // Blocks are followed, with the element of a list block.
        assert_eq!(fit(AttrPath::root("timeouts").attr("create")), "timeouts.create");
        assert_eq!(fit(AttrPath::root("disk").index(0).attr("create")), "disk[0].create");
    }

    #[tokio::test]
    async fn validate_returns_paths_fitted_for_terraform() {
        struct Publishing;
        #[async_trait]
        impl Resource for Publishing {
            type State = Thing;
            fn type_name(&self) -> &'static str {
                "test_publishing"
            }
            fn schema(&self) -> Schema {
                Schema { version: 0, block: diag_block() }
            }
            async fn validate(&self, _config: &Thing) -> Diagnostics {
                Diagnostic::attr_error(AttrPath::root("publish").attr("host_port"), "Invalid publish.host_port", "no")
                    .into()
            }
            async fn create(&self, planned: Thing, _ctx: &OpContext) -> Result<Thing, Diagnostics> {
                Ok(planned)
            }
            async fn read(&self, current: Thing, _ctx: &OpContext) -> Result<Option<Thing>, Diagnostics> {
                Ok(Some(current))
            }
            async fn update(&self, _prior: Thing, planned: Thing, _ctx: &OpContext) -> Result<Thing, Diagnostics> {
                Ok(planned)
            }
            async fn delete(&self, _current: Thing, _ctx: &OpContext) -> Result<(), Diagnostics> {
                Ok(())
            }
            async fn import(&self, _id: &str, _ctx: &OpContext) -> Result<Option<Thing>, Diagnostics> {
                Ok(None)
            }
        }
        let diags = erase_resource(Publishing).validate(&Value::Object(BTreeMap::new())).await;
        assert_eq!(diags.0[0].attribute, Some(AttrPath::root("publish").key("host_port")));
        assert_eq!(diags.0[0].summary, "Invalid publish.host_port");
    }
}

//! Typed state structs <-> `Value`, through serde. `Attr<T>` keeps `Unknown` across the trip;
//! a struct field maps to the object attribute of the same name; `Option<T>` is null-or-known.
//!
//! Serialising goes in two steps: a serde `Serializer` builds an untyped value (sequences as
//! tuples, structs and maps as objects), then `conform` shapes it to the schema type (list, set
//! or map; numbers parsed; absent attributes null; dynamic values wrapped). Deserialising reads
//! the `Value` directly; every error names the attribute path (`timeouts.create`, `ports[2]`).
//!
//! Field types for state structs:
//! - `Attr<T>`: null, unknown or known; the right choice for almost every attribute.
//! - `Option<T>`: null or known; an unknown value is an error (fine for blocks and for
//!   attributes that are never computed nor set from other resources).
//! - `Vec<T>` / `BTreeMap<String, T>` / `HashMap<String, T>`: list, set or tuple / map or
//!   object, as the schema type says; null reads as empty (list blocks), unknown is an error.
//! - integers and floats: a Terraform number; a fraction or an out-of-range number read into
//!   an integer field is an error. Unit-variant enums: strings.
//! - `serde_json::Value`: a dynamic attribute (the concrete type is inferred on the way out:
//!   arrays become tuples, objects objects).
//! - `#[serde(flatten)]` and untagged enums buffer values and cannot carry unknowns.

use std::fmt::{self, Display};
use std::marker::PhantomData;

// `de` and `ser` are this module's halves; serde's modules of those names go by their full paths.
use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod de;
mod ser;

use de::ValueDeserializer;
use ser::{RawSerializer, conform};

use super::diag::AttrPath;
use super::resource::Attr;
use super::value::{Type, Value};

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("converting state to a value: {0}")]
    ToValue(String),
    /// `path` is where in the value it happened (empty: the value as a whole).
    #[error("reading {}{problem}", if path.0.is_empty() { String::new() } else { format!("{path}: ") })]
    FromValue { path: AttrPath, problem: ValueProblem },
}

/// What was wrong with a value read into a typed field. The number variants carry the user's
/// number and the field's limit as text, never the Rust type: the protocol layer words them for
/// the attribute (with its unit from the schema).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    #[error("{number} is not a whole number")]
    NotWhole { number: String },
    #[error("{number} is too large (at most {max})")]
    TooLarge { number: String, max: String },
    #[error("{number} is too small (at least {min})")]
    TooSmall { number: String, min: String },
    /// A value of the wrong shape for the struct (a provider bug, or state from another version).
    #[error("{0}")]
    Other(String),
}

/// Serialise a state struct into a Value conforming to `ty` (the schema block's object type):
/// attributes missing from the struct become null; numbers/strings are converted as `ty` says.
/// A struct field that is not an attribute of `ty` is an error (a schema/struct mismatch).
pub fn to_value<T: Serialize>(state: &T, ty: &Type) -> Result<Value, BridgeError> {
    let raw = state.serialize(RawSerializer).map_err(|e| BridgeError::ToValue(e.render()))?;
    conform(raw, ty).map_err(|e| BridgeError::ToValue(e.render()))
}

/// Deserialise a Value into a state struct. Unknown -> `Attr::Unknown`, null -> `Attr::Null`.
/// Attributes without a struct field are ignored; struct fields without an attribute read null.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, BridgeError> {
    T::deserialize(ValueDeserializer::new(value, &Path::Root))
        .map_err(|e| BridgeError::FromValue { path: e.path.unwrap_or_default(), problem: e.reason })
}

// ---------------------------------------------------------------- Attr<T>

/// Unit-struct name by which `Attr::Unknown` announces itself to `RawSerializer`.
const UNKNOWN_TOKEN: &str = "$terraform_provider_lab::Unknown";
/// Newtype-struct name by which `Attr<T>` asks `ValueDeserializer` for null/unknown/known.
const ATTR_TOKEN: &str = "$terraform_provider_lab::Attr";
/// Text of the failure raised when a value that is not known yet meets a plain Rust type.
const NOT_KNOWN_YET: &str = "the value is not known yet";
/// How serde_json (arbitrary_precision) passes a number's exact text through serde.
const JSON_NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Other serializers (serde_json, for logs) see `Unknown` as null.
impl<T: Serialize> Serialize for Attr<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Attr::Null => s.serialize_none(),
            Attr::Unknown => s.serialize_unit_struct(UNKNOWN_TOKEN),
            Attr::Known(v) => s.serialize_some(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Attr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(ATTR_TOKEN, AttrVisitor(PhantomData))
    }
}

struct AttrVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for AttrVisitor<T> {
    type Value = Attr<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value, null or unknown")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Attr<T>, E> {
        Ok(Attr::Null)
    }
    /// Only `ValueDeserializer` calls this, and only for an unknown value.
    fn visit_unit<E: serde::de::Error>(self) -> Result<Attr<T>, E> {
        Ok(Attr::Unknown)
    }
    /// A value with unknowns deep inside that `T` cannot hold (e.g. a `BTreeMap<String, String>`
    /// built from `each.value` at validate time) is not known yet as a whole.
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Attr<T>, D::Error> {
        match T::deserialize(d) {
            Ok(v) => Ok(Attr::Known(v)),
            Err(e) if e.to_string().contains(NOT_KNOWN_YET) => Ok(Attr::Unknown),
            Err(e) => Err(e),
        }
    }
    /// Other formats (serde_json): null or a value.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Attr<T>, D::Error> {
        Option::<T>::deserialize(d).map(Attr::from)
    }
}

// ---------------------------------------------------------------- errors and paths

#[derive(Debug)]
struct BridgeFailure {
    /// Deserializer side: the attribute path; None until the failure passes the deserializer
    /// that raised it.
    path: Option<AttrPath>,
    /// Serializer side: path steps, innermost first.
    steps: Vec<String>,
    reason: ValueProblem,
}

impl BridgeFailure {
    fn new(reason: impl Into<String>) -> Self {
        Self::problem(ValueProblem::Other(reason.into()))
    }
    fn problem(reason: ValueProblem) -> Self {
        BridgeFailure { path: None, steps: Vec::new(), reason }
    }
    fn at(mut self, path: &Path) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_attr_path());
        }
        self
    }
    fn step(mut self, step: String) -> Self {
        self.steps.push(step);
        self
    }
    fn render(self) -> String {
        let path: String = self.steps.iter().rev().map(String::as_str).collect();
        let path = path.trim_start_matches('.');
        if path.is_empty() { self.reason.to_string() } else { format!("{path}: {}", self.reason) }
    }
}

impl Display for BridgeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reason.fmt(f)
    }
}

impl std::error::Error for BridgeFailure {}

impl serde::ser::Error for BridgeFailure {
    fn custom<T: Display>(msg: T) -> Self {
        BridgeFailure::new(msg.to_string())
    }
}

impl serde::de::Error for BridgeFailure {
    fn custom<T: Display>(msg: T) -> Self {
        BridgeFailure::new(msg.to_string())
    }
}

type Res<T> = Result<T, BridgeFailure>;

/// Where the deserializer is, as a chain of borrowed steps: rendered only on error.
enum Path<'a> {
    Root,
    Attr(&'a Path<'a>, &'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn to_attr_path(&self) -> AttrPath {
        match self {
            Path::Root => AttrPath::default(),
            Path::Attr(parent, name) => parent.to_attr_path().attr(name),
            Path::Key(parent, key) => parent.to_attr_path().key(key),
            Path::Index(parent, i) => parent.to_attr_path().index(i64::try_from(*i).unwrap_or(i64::MAX)),
        }
    }
}

impl Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Attr(Path::Root, name) => f.write_str(name),
            Path::Attr(parent, name) => write!(f, "{parent}.{name}"),
            Path::Key(parent, key) => write!(f, "{parent}[{key:?}]"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::protocol::codec::{decode_msgpack, encode_msgpack};
    use crate::protocol::schema::{Attribute, Block, NestedBlock, Nesting};
    use crate::protocol::value::Number;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    struct Timeouts {
        create: Attr<String>,
        delete: Option<String>,
    }

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    struct VmState {
        id: Attr<String>,
        name: Attr<String>,
        memory_mb: Attr<i64>,
        vcpus: Option<u32>,
        port: Attr<u16>,
        disk_bytes: Attr<u64>,
        ratio: Attr<f64>,
        running: Attr<bool>,
        labels: Attr<BTreeMap<String, String>>,
        env: Option<HashMap<String, String>>,
        networks: Attr<Vec<String>>,
        zones: Attr<Vec<String>>,
        meta: Attr<serde_json::Value>,
        timeouts: Vec<Timeouts>,
        console: Option<Timeouts>,
    }

    fn schema_block() -> Block {
        let timeouts = Block {
            attributes: vec![Attribute::string("create").optional(), Attribute::string("delete").optional()],
            ..Default::default()
        };
        Block {
            attributes: vec![
                Attribute::string("id").computed(),
                Attribute::string("name").required(),
                Attribute::number("memory_mb").optional(),
                Attribute::number("vcpus").optional(),
                Attribute::number("port").optional(),
                Attribute::number("disk_bytes").optional(),
                Attribute::number("ratio").optional(),
                Attribute::bool("running").computed(),
                Attribute::of_type("labels", Type::Map(Box::new(Type::String))).optional(),
                Attribute::of_type("env", Type::Map(Box::new(Type::String))).optional(),
                Attribute::of_type("networks", Type::List(Box::new(Type::String))).optional(),
                Attribute::of_type("zones", Type::Set(Box::new(Type::String))).optional(),
                Attribute::dynamic("meta").optional(),
                // In the schema only: the struct has no field for it.
                Attribute::string("legacy").optional(),
            ],
            blocks: vec![
                NestedBlock {
                    type_name: "timeouts".into(),
                    block: timeouts.clone(),
                    nesting: Nesting::List,
                    min_items: 0,
                    max_items: 0,
                },
                NestedBlock {
                    type_name: "console".into(),
                    block: timeouts,
                    nesting: Nesting::Single,
                    min_items: 0,
                    max_items: 1,
                },
            ],
            ..Default::default()
        }
    }

    fn sample_state() -> VmState {
        VmState {
            id: Attr::Unknown,
            name: Attr::Known("vm-1".into()),
            memory_mb: Attr::Known(-7),
            vcpus: Some(4),
            port: Attr::Known(8080),
            disk_bytes: Attr::Known(u64::MAX),
            ratio: Attr::Known(1.5),
            running: Attr::Unknown,
            labels: Attr::Known(BTreeMap::from([("owner".into(), "ann".into())])),
            env: None,
            networks: Attr::Known(vec!["default".into(), "lab".into()]),
            zones: Attr::Unknown,
            meta: Attr::Known(serde_json::json!({"a": [1, "x"], "big": 1e20})),
            timeouts: vec![Timeouts { create: Attr::Unknown, delete: Some("10m".into()) }],
            console: Some(Timeouts { create: Attr::Known("1m".into()), delete: None }),
        }
    }

    #[test]
    fn round_trip_through_value_and_msgpack() {
        let ty = schema_block().value_type();
        let state = sample_state();
        let value = to_value(&state, &ty).unwrap();

        let attr = |name: &str| value.get_attr(name).unwrap().clone();
        assert_eq!(attr("id"), Value::Unknown);
        assert_eq!(attr("legacy"), Value::Null);
        assert_eq!(attr("env"), Value::Null);
        assert_eq!(attr("disk_bytes"), Value::Number(Number::Big("18446744073709551615".into())));
        assert!(matches!(attr("zones"), Value::Unknown));
        assert!(matches!(attr("networks"), Value::List(_)));
        assert!(matches!(attr("labels"), Value::Map(_)));
        assert!(matches!(attr("meta"), Value::Dynamic(Type::Object(_), _)));
        let Value::List(timeouts) = attr("timeouts") else { panic!("timeouts: {:?}", attr("timeouts")) };
        assert_eq!(timeouts[0].get_attr("create"), Some(&Value::Unknown));

        let bytes = encode_msgpack(&value, &ty).unwrap();
        let decoded = decode_msgpack(&bytes, &ty).unwrap();
        assert_eq!(decoded, value);
        let back: VmState = from_value(&decoded).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn nulls_and_missing_attributes() {
        let ty = schema_block().value_type();
        let state = VmState::default();
        let value = to_value(&state, &ty).unwrap();
        assert_eq!(value.get_attr("name"), Some(&Value::Null));
        assert_eq!(value.get_attr("timeouts"), Some(&Value::List(vec![])));
        let back: VmState = from_value(&value).unwrap();
        assert_eq!(back, state);
        // An object lacking attributes the struct has: they read as null.
        let sparse = Value::Object(BTreeMap::from([
            ("name".to_string(), Value::string("x")),
            ("timeouts".to_string(), Value::List(vec![])),
            ("unrelated".to_string(), Value::Bool(true)),
        ]));
        let back: VmState = from_value(&sparse).unwrap();
        assert_eq!(back.name, Attr::Known("x".into()));
        assert_eq!(back.id, Attr::Null);
        // A list block missing from older state reads as no blocks.
        let old_state = Value::Object(BTreeMap::from([("name".to_string(), Value::string("x"))]));
        let back: VmState = from_value(&old_state).unwrap();
        assert!(back.timeouts.is_empty());
    }

    #[test]
    fn numbers_convert_to_the_schema_type() {
        #[derive(Serialize)]
        struct S {
            n: u32,
            text: u16,
            s: String,
        }
        let ty = Type::Object(BTreeMap::from([
            ("n".into(), Type::Number),
            ("text".into(), Type::String),
            ("s".into(), Type::Number),
        ]));
        let v = to_value(&S { n: 3, text: 22, s: "1e400".into() }, &ty).unwrap();
        assert_eq!(v.get_attr("n"), Some(&Value::int(3)));
        assert_eq!(v.get_attr("text"), Some(&Value::string("22")));
        assert_eq!(v.get_attr("s"), Some(&Value::Number(Number::Big("1e400".into()))));
    }

    #[test]
    fn floats_travel_as_the_decimal_users_write() {
        let config = Value::Number(Number::Big("0.1".into()));
        let f: f64 = from_value(&config).unwrap();
        assert_eq!(to_value(&f, &Type::Number).unwrap(), config);
        let f: f32 = from_value(&config).unwrap();
        assert_eq!(to_value(&f, &Type::Number).unwrap(), config);
        assert!(matches!(to_value(&1.5f64, &Type::Number).unwrap(), Value::Number(Number::Float(_))));
        assert!(to_value(&f64::NAN, &Type::Number).is_err());
    }

    #[test]
    fn errors_name_the_attribute_path() {
        let ty = schema_block().value_type();
        let mut value = to_value(&sample_state(), &ty).unwrap();
        let Value::Object(attrs) = &mut value else { unreachable!() };

        let mut bad = attrs.clone();
        bad.insert("memory_mb".into(), Value::Number(Number::Float(1.5)));
        let err = from_value::<VmState>(&Value::Object(bad)).unwrap_err().to_string();
        assert!(err.contains("reading memory_mb:") && err.contains("not a whole number"), "{err}");

        let mut bad = attrs.clone();
        bad.insert("port".into(), Value::int(70000));
        let err = from_value::<VmState>(&Value::Object(bad)).unwrap_err().to_string();
        assert_eq!(err, "reading port: 70000 is too large (at most 65535)");

        let mut bad = attrs.clone();
        bad.insert("memory_mb".into(), Value::Number(Number::parse("1e20").unwrap()));
        let err = from_value::<VmState>(&Value::Object(bad)).unwrap_err();
        let BridgeError::FromValue { path, problem } = &err else { panic!("{err}") };
        assert_eq!(path, &AttrPath::root("memory_mb"));
        assert_eq!(problem, &ValueProblem::TooLarge { number: "1e20".into(), max: i64::MAX.to_string() });

        let mut bad = attrs.clone();
        bad.insert("vcpus".into(), Value::int(-1));
        let err = from_value::<VmState>(&Value::Object(bad)).unwrap_err().to_string();
        assert_eq!(err, "reading vcpus: -1 is too small (at least 0)");

        let err = from_value::<f64>(&Value::Number(Number::parse("-1e400").unwrap())).unwrap_err().to_string();
        assert!(err.starts_with("reading -1e400 is too small (at least -1.7976931348623157e308)"), "{err}");

        let mut bad = attrs.clone();
        bad.insert("console".into(), Value::Object(BTreeMap::from([("create".into(), Value::Bool(true))])));
        let err = from_value::<VmState>(&Value::Object(bad)).unwrap_err().to_string();
        assert!(err.contains("reading console.create:"), "{err}");

        let mut bad = attrs.clone();
        bad.insert(
            "timeouts".into(),
            Value::List(vec![Value::Object(BTreeMap::from([("delete".into(), Value::Unknown)]))]),
        );
        let err = from_value::<VmState>(&Value::Object(bad)).unwrap_err().to_string();
        assert!(err.contains("reading timeouts[0].delete:") && err.contains("Attr"), "{err}");

        let mut bad = attrs.clone();
        bad.insert("labels".into(), Value::Map(BTreeMap::from([("k".into(), Value::int(1))])));
        let err = from_value::<VmState>(&Value::Object(bad)).unwrap_err().to_string();
        assert!(err.contains(r#"reading labels["k"]:"#), "{err}");

        #[derive(Serialize)]
        struct Extra {
            name: String,
            nope: bool,
        }
        let err = to_value(&Extra { name: "a".into(), nope: true }, &ty).unwrap_err().to_string();
        assert!(err.contains("\"nope\" is not an attribute"), "{err}");
        #[derive(Serialize)]
        struct WrongType {
            timeouts: Vec<BTreeMap<String, Vec<String>>>,
        }
        let wrong = WrongType { timeouts: vec![BTreeMap::from([("create".into(), vec![])])] };
        let err = to_value(&wrong, &ty).unwrap_err().to_string();
        assert!(err.contains("timeouts[0].create:"), "{err}");
    }

    #[test]
    fn a_map_with_unknown_values_reads_as_unknown_as_a_whole() {
        let value = Value::Object(
            [(
                "labels".to_string(),
                Value::Map([("a".to_string(), Value::String("x".into())), ("b".to_string(), Value::Unknown)].into()),
            )]
            .into(),
        );
        #[derive(serde::Deserialize)]
        struct Labels {
            labels: Attr<BTreeMap<String, String>>,
        }
        let read: Labels = from_value(&value).unwrap();
        assert_eq!(read.labels, Attr::Unknown);
    }

    #[test]
    fn unknown_at_every_level() {
        let ty = schema_block().value_type();
        // The whole object unknown: only Attr can hold it.
        let whole: Attr<Timeouts> = from_value(&Value::Unknown).unwrap();
        assert_eq!(whole, Attr::Unknown);
        assert_eq!(to_value(&whole, &ty).unwrap(), Value::Unknown);
        // Unknown list element and map value inside known collections.
        let list: Attr<Vec<Attr<String>>> = from_value(&Value::List(vec![Value::string("a"), Value::Unknown])).unwrap();
        assert_eq!(list, Attr::Known(vec![Attr::Known("a".into()), Attr::Unknown]));
        let map_ty = Type::Map(Box::new(Type::String));
        let map = Attr::Known(BTreeMap::from([("k".to_string(), Attr::<String>::Unknown)]));
        let v = to_value(&map, &map_ty).unwrap();
        assert_eq!(v, Value::Map(BTreeMap::from([("k".into(), Value::Unknown)])));
        // Option cannot hold unknown.
        let err = from_value::<Option<String>>(&Value::Unknown).unwrap_err().to_string();
        assert!(err.contains("not known yet"), "{err}");
    }

    #[test]
    fn enums_and_big_numbers_in_json_values() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Mode {
            Bridge,
            Nat,
        }
        let v = to_value(&Mode::Nat, &Type::String).unwrap();
        assert_eq!(v, Value::string("nat"));
        assert_eq!(from_value::<Mode>(&v).unwrap(), Mode::Nat);

        let big = Value::Dynamic(Type::Number, Box::new(Value::Number(Number::Big("1e400".into()))));
        let json: serde_json::Value = from_value(&big).unwrap();
        // serde_json keeps the exact number (spelled 1e+400).
        assert!(json.is_number() && json.to_string().ends_with("400"), "{json}");
        assert_eq!(to_value(&json, &Type::Dynamic).unwrap(), big);

        // serde_json sees Attr as null-or-value.
        let text = serde_json::to_string(&Timeouts { create: Attr::Unknown, delete: Some("1m".into()) }).unwrap();
        assert_eq!(text, r#"{"create":null,"delete":"1m"}"#);
        let t: Timeouts = serde_json::from_str(r#"{"create":"5m","delete":null}"#).unwrap();
        assert_eq!(t.create, Attr::Known("5m".into()));
    }
}

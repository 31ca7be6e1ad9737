//! `DynamicValue` encodings: msgpack (what Terraform sends), JSON (legacy state, UpgradeResourceState)
//! and flatmap (state from SDKv1 days). Decoding is always guided by the schema's type.

mod flatmap;
mod json;
mod msgpack;

pub use flatmap::decode_flatmap;
pub use json::{decode_json, encode_json, json_to_value, value_to_json};
pub use msgpack::{decode_msgpack, encode_msgpack};

use super::types_json::type_to_json;
use super::value::{Type, Value};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("decoding msgpack value of type {ty:?}: {reason}")]
    Msgpack { ty: Type, reason: String },
    #[error("decoding JSON value of type {ty:?}: {reason}")]
    Json { ty: Type, reason: String },
    #[error("decoding flatmap state: {0}")]
    Flatmap(String),
    #[error("encoding value: {0}")]
    Encode(String),
}

/// A failure somewhere inside a value, with the path to it (collected while unwinding).
#[derive(Debug)]
struct Failure {
    /// Path steps, innermost first: each level pushes its own step as the error unwinds.
    steps: Vec<String>,
    reason: String,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Self {
        Failure { steps: Vec::new(), reason: reason.into() }
    }
    fn attr(mut self, name: &str) -> Self {
        self.steps.push(format!(".{name}"));
        self
    }
    fn key(mut self, key: &str) -> Self {
        self.steps.push(format!("[{key:?}]"));
        self
    }
    fn index(mut self, i: usize) -> Self {
        self.steps.push(format!("[{i}]"));
        self
    }
    fn render(self) -> String {
        if self.steps.is_empty() {
            return self.reason;
        }
        let path: String = self.steps.iter().rev().map(String::as_str).collect();
        format!("at {}: {}", path.trim_start_matches('.'), self.reason)
    }
}

type Res<T> = Result<T, Failure>;

/// A tfplugin6 `DynamicValue`: msgpack when Terraform filled it, else JSON; both empty is null
/// (Terraform sends an empty DynamicValue for absent prior state, e.g. on create).
pub fn decode_dynamic_value(msgpack: &[u8], json: &[u8], ty: &Type) -> Result<Value, CodecError> {
    match (msgpack.is_empty(), json.is_empty()) {
        (false, _) => decode_msgpack(msgpack, ty),
        (true, false) => decode_json(json, ty),
        (true, true) => Ok(Value::Null),
    }
}

/// Null and unknown carry no concrete type; everything else remembers it.
fn wrap_dynamic(ty: Type, value: Value) -> Value {
    match value {
        Value::Null | Value::Unknown => value,
        v => Value::Dynamic(ty, Box::new(v)),
    }
}

fn type_name(ty: &Type) -> String {
    type_to_json(ty).to_string()
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Unknown => "unknown",
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::List(_) => "list",
        Value::Set(_) => "set",
        Value::Map(_) => "map",
        Value::Object(_) => "object",
        Value::Tuple(_) => "tuple",
        Value::Dynamic(..) => "dynamic",
    }
}

/// Values and types the codecs' tests share.
#[cfg(test)]
pub(crate) mod test_values {
    use super::*;
    use crate::protocol::value::Number;

    pub(super) fn obj(entries: &[(&str, Value)]) -> Value {
        Value::Object(entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }
    pub(super) fn obj_type(attrs: &[(&str, Type)]) -> Type {
        Type::Object(attrs.iter().map(|(k, t)| (k.to_string(), t.clone())).collect())
    }
    pub(super) fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }
    pub(super) fn num(text: &str) -> Value {
        Value::Number(Number::parse(text).unwrap())
    }
    /// A type exercising every kind, and a value of it with unknowns and nulls inside.
    pub(super) fn sample() -> (Type, Value) {
        let timeouts = obj_type(&[("create", Type::String), ("delete", Type::String)]);
        let ty = obj_type(&[
            ("name", Type::String),
            ("count", Type::Number),
            ("enabled", Type::Bool),
            ("ports", list(Type::Number)),
            ("zones", Type::Set(Box::new(Type::String))),
            ("tags", Type::Map(Box::new(Type::String))),
            ("pair", Type::Tuple(vec![Type::String, Type::Bool])),
            ("timeouts", list(timeouts.clone())),
            ("single", timeouts),
            ("extra", Type::Dynamic),
            ("later", Type::String),
            ("absent", Type::Number),
        ]);
        let value = obj(&[
            ("name", Value::string("vm-1")),
            ("count", Value::int(-7)),
            ("enabled", Value::Bool(true)),
            ("ports", Value::List(vec![num("1.5"), num("1e20"), num(&u64::MAX.to_string()), Value::Unknown])),
            ("zones", Value::Set(vec![Value::string("b"), Value::string("a")])),
            ("tags", Value::Map([("k".to_string(), Value::string("v"))].into())),
            ("pair", Value::Tuple(vec![Value::string("x"), Value::Bool(false)])),
            ("timeouts", Value::List(vec![obj(&[("create", Value::string("5m")), ("delete", Value::Unknown)])])),
            ("single", obj(&[("create", Value::Null), ("delete", Value::string("1m"))])),
            ("extra", Value::Dynamic(list(Type::String), Box::new(Value::List(vec![Value::string("d")])))),
            ("later", Value::Unknown),
            ("absent", Value::Null),
        ]);
        (ty, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_value_picks_its_encoding() {
        assert_eq!(decode_dynamic_value(&[], &[], &Type::String).unwrap(), Value::Null);
        assert_eq!(decode_dynamic_value(&[0xa1, b'm'], b"\"j\"", &Type::String).unwrap(), Value::string("m"));
        assert_eq!(decode_dynamic_value(&[], b"\"j\"", &Type::String).unwrap(), Value::string("j"));
    }
}

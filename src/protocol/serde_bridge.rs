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

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::marker::PhantomData;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};
use serde::{Deserialize, Deserializer, Serializer, de::DeserializeOwned};

use super::resource::Attr;
use super::value::{Number, Type, Value};

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("converting state to a value: {0}")]
    ToValue(String),
    #[error("reading {path}: {reason}")]
    FromValue { path: String, reason: String },
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
        .map_err(|e| BridgeError::FromValue { path: e.path.unwrap_or_default(), reason: e.reason })
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
    fn visit_none<E: de::Error>(self) -> Result<Attr<T>, E> {
        Ok(Attr::Null)
    }
    /// Only `ValueDeserializer` calls this, and only for an unknown value.
    fn visit_unit<E: de::Error>(self) -> Result<Attr<T>, E> {
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
    /// Rendered attribute path; None until the failure passes the deserializer that raised it.
    path: Option<String>,
    /// Serializer side: path steps, innermost first.
    steps: Vec<String>,
    reason: String,
}

impl BridgeFailure {
    fn new(reason: impl Into<String>) -> Self {
        BridgeFailure { path: None, steps: Vec::new(), reason: reason.into() }
    }
    fn at(mut self, path: &Path) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_string());
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
        if path.is_empty() { self.reason } else { format!("{path}: {}", self.reason) }
    }
}

impl Display for BridgeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for BridgeFailure {}

impl ser::Error for BridgeFailure {
    fn custom<T: Display>(msg: T) -> Self {
        BridgeFailure::new(msg.to_string())
    }
}

impl de::Error for BridgeFailure {
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

// ---------------------------------------------------------------- serializing

/// Builds an untyped value: sequences become tuples, maps and structs objects.
struct RawSerializer;

struct RawSeq(Vec<Value>);
struct RawMap {
    entries: BTreeMap<String, Value>,
    next_key: Option<String>,
}
/// A struct being serialised; `json_number` when it is serde_json's number wrapper.
struct RawStruct {
    entries: BTreeMap<String, Value>,
    json_number: bool,
}

impl Serializer for RawSerializer {
    type Ok = Value;
    type Error = BridgeFailure;
    type SerializeSeq = RawSeq;
    type SerializeTuple = RawSeq;
    type SerializeTupleStruct = RawSeq;
    type SerializeTupleVariant = ser::Impossible<Value, BridgeFailure>;
    type SerializeMap = RawMap;
    type SerializeStruct = RawStruct;
    type SerializeStructVariant = ser::Impossible<Value, BridgeFailure>;

    fn serialize_bool(self, v: bool) -> Res<Value> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Res<Value> {
        Ok(Value::int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Res<Value> {
        Ok(Value::int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Res<Value> {
        Ok(Value::int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Res<Value> {
        Ok(Value::int(v))
    }
    fn serialize_i128(self, v: i128) -> Res<Value> {
        Ok(Value::Number(i64::try_from(v).map_or_else(|_| Number::Big(v.to_string()), Number::Int)))
    }
    fn serialize_u8(self, v: u8) -> Res<Value> {
        Ok(Value::int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Res<Value> {
        Ok(Value::int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Res<Value> {
        Ok(Value::int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Res<Value> {
        Ok(Value::Number(Number::from_u64(v)))
    }
    fn serialize_u128(self, v: u128) -> Res<Value> {
        Ok(Value::Number(i64::try_from(v).map_or_else(|_| Number::Big(v.to_string()), Number::Int)))
    }
    fn serialize_f32(self, v: f32) -> Res<Value> {
        float_value(v.into(), v.is_finite().then(|| v.to_string()))
    }
    fn serialize_f64(self, v: f64) -> Res<Value> {
        float_value(v, v.is_finite().then(|| Number::Float(v).to_string()))
    }
    fn serialize_char(self, v: char) -> Res<Value> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Res<Value> {
        Ok(Value::string(v))
    }
    fn serialize_bytes(self, _v: &[u8]) -> Res<Value> {
        Err(BridgeFailure::new("byte arrays have no Terraform type; use a String (e.g. base64)"))
    }
    fn serialize_none(self) -> Res<Value> {
        Ok(Value::Null)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Res<Value> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, name: &'static str) -> Res<Value> {
        Ok(if name == UNKNOWN_TOKEN { Value::Unknown } else { Value::Null })
    }
    /// Enums of unit variants are strings, as in configurations.
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Res<Value> {
        Ok(Value::string(variant))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _name: &'static str, value: &T) -> Res<Value> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Res<Value> {
        let inner = value.serialize(RawSerializer).map_err(|e| e.step(format!(".{variant}")))?;
        Ok(Value::Object([(variant.to_string(), inner)].into()))
    }
    fn serialize_seq(self, len: Option<usize>) -> Res<RawSeq> {
        Ok(RawSeq(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Res<RawSeq> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Res<RawSeq> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Res<Self::SerializeTupleVariant> {
        Err(BridgeFailure::new(format!("enum {name}::{variant}: tuple variants have no Terraform form")))
    }
    fn serialize_map(self, _len: Option<usize>) -> Res<RawMap> {
        Ok(RawMap { entries: BTreeMap::new(), next_key: None })
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Res<RawStruct> {
        Ok(RawStruct { entries: BTreeMap::new(), json_number: name == JSON_NUMBER_TOKEN })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Res<Self::SerializeStructVariant> {
        Err(BridgeFailure::new(format!("enum {name}::{variant}: struct variants have no Terraform form")))
    }
}

/// A float as the decimal a user would write. Terraform reads `0.1` in configuration as the
/// exact decimal, but an f64 0.1 as 0.1000000000000000055...: sending the float would make
/// the planned value differ from the configuration. So a float whose shortest text is not
/// its exact value travels as that text.
fn float_value(exact: f64, shortest: Option<String>) -> Res<Value> {
    let Some(text) = shortest else {
        return Err(BridgeFailure::new(format!("{exact} is not a valid number")));
    };
    let float = Number::Float(exact);
    match Number::parse(&text) {
        Some(decimal) if decimal != float => Ok(Value::Number(decimal)),
        _ => Ok(Value::Number(float)),
    }
}

impl RawSeq {
    fn push<T: ?Sized + Serialize>(&mut self, value: &T) -> Res<()> {
        let i = self.0.len();
        self.0.push(value.serialize(RawSerializer).map_err(|e| e.step(format!("[{i}]")))?);
        Ok(())
    }
}

impl ser::SerializeSeq for RawSeq {
    type Ok = Value;
    type Error = BridgeFailure;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Res<()> {
        self.push(value)
    }
    fn end(self) -> Res<Value> {
        Ok(Value::Tuple(self.0))
    }
}

impl ser::SerializeTuple for RawSeq {
    type Ok = Value;
    type Error = BridgeFailure;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Res<()> {
        self.push(value)
    }
    fn end(self) -> Res<Value> {
        Ok(Value::Tuple(self.0))
    }
}

impl ser::SerializeTupleStruct for RawSeq {
    type Ok = Value;
    type Error = BridgeFailure;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Res<()> {
        self.push(value)
    }
    fn end(self) -> Res<Value> {
        Ok(Value::Tuple(self.0))
    }
}

impl ser::SerializeMap for RawMap {
    type Ok = Value;
    type Error = BridgeFailure;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Res<()> {
        let key = match key.serialize(RawSerializer)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(BridgeFailure::new("map keys must be strings, numbers or bools")),
        };
        self.next_key = Some(key);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Res<()> {
        let key = self.next_key.take().ok_or_else(|| BridgeFailure::new("map value without a key"))?;
        let v = value.serialize(RawSerializer).map_err(|e| e.step(format!("[{key:?}]")))?;
        self.entries.insert(key, v);
        Ok(())
    }
    fn end(self) -> Res<Value> {
        Ok(Value::Object(self.entries))
    }
}

impl ser::SerializeStruct for RawStruct {
    type Ok = Value;
    type Error = BridgeFailure;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Res<()> {
        let v = value.serialize(RawSerializer).map_err(|e| e.step(format!(".{key}")))?;
        self.entries.insert(key.to_string(), v);
        Ok(())
    }
    fn end(self) -> Res<Value> {
        if self.json_number {
            // serde_json's arbitrary-precision number: one field holding the exact text.
            let text = self.entries.values().next().and_then(Value::as_str).unwrap_or_default();
            return Number::parse(text)
                .map(Value::Number)
                .ok_or_else(|| BridgeFailure::new(format!("{text:?} is not a number")));
        }
        Ok(Value::Object(self.entries))
    }
}

/// Shapes an untyped value to `ty`, converting primitives the way Terraform would.
fn conform(raw: Value, ty: &Type) -> Res<Value> {
    let kind = |v: &Value| match v {
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Tuple(_) | Value::List(_) | Value::Set(_) => "a sequence",
        Value::Object(_) | Value::Map(_) => "a struct or map",
        _ => "a value",
    };
    let mismatch = |v: &Value| {
        let expected = super::types_json::type_to_json(ty);
        BridgeFailure::new(format!("{} cannot be stored in an attribute of type {expected}", kind(v)))
    };
    Ok(match (raw, ty) {
        (v @ (Value::Null | Value::Unknown), _) => v,
        (v, Type::Dynamic) => {
            let concrete = v.infer_type();
            Value::Dynamic(concrete, Box::new(v))
        }
        (v @ Value::Bool(_), Type::Bool) => v,
        (Value::String(s), Type::Bool) if s == "true" || s == "false" => Value::Bool(s == "true"),
        (v @ Value::Number(_), Type::Number) => v,
        (Value::String(s), Type::Number) => match Number::parse(&s) {
            Some(n) => Value::Number(n),
            None => return Err(BridgeFailure::new(format!("{s:?} is not a number"))),
        },
        (v @ Value::String(_), Type::String) => v,
        (Value::Number(n), Type::String) => Value::String(n.to_string()),
        (Value::Bool(b), Type::String) => Value::String(b.to_string()),
        (Value::Tuple(items), Type::List(elem) | Type::Set(elem)) => {
            let items = items.into_iter().enumerate();
            let items = items.map(|(i, v)| conform(v, elem).map_err(|e| e.step(format!("[{i}]"))));
            let items = items.collect::<Res<Vec<_>>>()?;
            if matches!(ty, Type::Set(_)) { Value::Set(items) } else { Value::List(items) }
        }
        (Value::Tuple(items), Type::Tuple(elems)) => {
            if items.len() != elems.len() {
                return Err(BridgeFailure::new(format!("tuple of {} elements has {}", elems.len(), items.len())));
            }
            let items = items.into_iter().zip(elems).enumerate();
            Value::Tuple(
                items.map(|(i, (v, t))| conform(v, t).map_err(|e| e.step(format!("[{i}]")))).collect::<Res<_>>()?,
            )
        }
        (Value::Object(entries), Type::Map(elem)) => {
            let entries = entries.into_iter();
            let entries = entries.map(|(k, v)| {
                let v = conform(v, elem).map_err(|e| e.step(format!("[{k:?}]")))?;
                Ok((k, v))
            });
            Value::Map(entries.collect::<Res<_>>()?)
        }
        (Value::Object(mut entries), Type::Object(attrs)) => {
            let mut out = BTreeMap::new();
            for (name, attr_ty) in attrs {
                let v = entries.remove(name).unwrap_or(Value::Null);
                out.insert(name.clone(), conform(v, attr_ty).map_err(|e| e.step(format!(".{name}")))?);
            }
            if let Some(extra) = entries.keys().next() {
                return Err(BridgeFailure::new(format!("field {extra:?} is not an attribute of the schema")));
            }
            Value::Object(out)
        }
        (v, _) => return Err(mismatch(&v)),
    })
}

// ---------------------------------------------------------------- deserializing

struct ValueDeserializer<'de, 'p> {
    value: &'de Value,
    path: &'p Path<'p>,
}

static NULL: Value = Value::Null;

impl<'de, 'p> ValueDeserializer<'de, 'p> {
    fn new(mut value: &'de Value, path: &'p Path<'p>) -> Self {
        // A dynamic attribute's concrete type is of no use to a Rust struct.
        while let Value::Dynamic(_, inner) = value {
            value = inner;
        }
        ValueDeserializer { value, path }
    }

    fn fail(&self, reason: impl Into<String>) -> BridgeFailure {
        BridgeFailure::new(reason).at(self.path)
    }

    fn unexpected(&self, expected: &str) -> BridgeFailure {
        let found = match self.value {
            Value::Unknown => {
                return self.fail(format!("expected {expected}, but {NOT_KNOWN_YET} (declare the field as Attr<..>)"));
            }
            Value::Null => "null (declare the field as Attr<..> or Option<..>)".to_string(),
            Value::Bool(b) => format!("bool {b}"),
            Value::Number(n) => format!("number {n}"),
            Value::String(s) => format!("string {s:?}"),
            Value::List(_) | Value::Set(_) | Value::Tuple(_) => "a collection".to_string(),
            Value::Map(_) | Value::Object(_) => "an object".to_string(),
            Value::Dynamic(..) => "a dynamic value".to_string(),
        };
        self.fail(format!("expected {expected}, found {found}"))
    }

    fn number(&self, expected: &str) -> Res<&'de Number> {
        match self.value {
            Value::Number(n) => Ok(n),
            _ => Err(self.unexpected(expected)),
        }
    }

    /// The number as an integer of type `I`, or an error naming the number and the type.
    fn integer<I: TryFrom<i128>>(&self, type_name: &str) -> Res<I> {
        let n = self.number(&format!("a whole number ({type_name})"))?;
        let Some(i) = n.as_i128() else {
            let why = if n.is_integer() { "is out of range for" } else { "is not a whole number, as needed for" };
            return Err(self.fail(format!("{n} {why} {type_name}")));
        };
        I::try_from(i).map_err(|_| self.fail(format!("{n} is out of range for {type_name}")))
    }
}

macro_rules! deserialize_integer {
    ($method:ident, $ty:ty, $visit:ident) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
            let n: $ty = self.integer(stringify!($ty))?;
            visitor.$visit(n).map_err(|e: BridgeFailure| e.at(self.path))
        }
    };
}

impl<'de> Deserializer<'de> for ValueDeserializer<'de, '_> {
    type Error = BridgeFailure;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let path = self.path;
        match self.value {
            Value::Unknown => Err(self.unexpected("a value")),
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(Number::Int(i)) => visitor.visit_i64(*i),
            Value::Number(Number::Float(f)) => visitor.visit_f64(*f),
            Value::Number(n @ Number::Big(text)) => match n.as_u64() {
                Some(u) => visitor.visit_u64(u),
                // serde_json::Value keeps the exact text through this map form.
                None => visitor.visit_map(JsonNumberAccess(Some(text.trim()))),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                visitor.visit_seq(SeqAccess { items: items.iter(), index: 0, path })
            }
            Value::Map(entries) => {
                visitor.visit_map(MapAccess { entries: entries.iter(), pending: None, path, object: false })
            }
            Value::Object(entries) => {
                visitor.visit_map(MapAccess { entries: entries.iter(), pending: None, path, object: true })
            }
            Value::Dynamic(_, inner) => ValueDeserializer::new(inner, path).deserialize_any(visitor),
        }
        .map_err(|e: BridgeFailure| e.at(path))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(*b).map_err(|e: BridgeFailure| e.at(self.path)),
            _ => Err(self.unexpected("a bool")),
        }
    }

    deserialize_integer!(deserialize_i8, i8, visit_i8);
    deserialize_integer!(deserialize_i16, i16, visit_i16);
    deserialize_integer!(deserialize_i32, i32, visit_i32);
    deserialize_integer!(deserialize_i64, i64, visit_i64);
    deserialize_integer!(deserialize_i128, i128, visit_i128);
    deserialize_integer!(deserialize_u8, u8, visit_u8);
    deserialize_integer!(deserialize_u16, u16, visit_u16);
    deserialize_integer!(deserialize_u32, u32, visit_u32);
    deserialize_integer!(deserialize_u64, u64, visit_u64);
    deserialize_integer!(deserialize_u128, u128, visit_u128);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_f64(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let n = self.number("a number")?;
        let f = n.as_f64().ok_or_else(|| self.fail(format!("{n} is out of range for f64")))?;
        visitor.visit_f64(f).map_err(|e: BridgeFailure| e.at(self.path))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_str(visitor)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.value {
            Value::String(s) => visitor.visit_borrowed_str(s).map_err(|e: BridgeFailure| e.at(self.path)),
            _ => Err(self.unexpected("a string")),
        }
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_str(visitor)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.value {
            Value::String(s) => visitor.visit_borrowed_bytes(s.as_bytes()).map_err(|e: BridgeFailure| e.at(self.path)),
            _ => Err(self.unexpected("a string")),
        }
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_bytes(visitor)
    }

    /// `Option<T>` is null or known: an unknown value is an error (use `Attr<T>`).
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.value {
            Value::Null => visitor.visit_none(),
            Value::Unknown => Err(self.fail(format!("{NOT_KNOWN_YET}: declare the field as Attr<..>, not Option<..>"))),
            _ => visitor.visit_some(ValueDeserializer::new(self.value, self.path)),
        }
        .map_err(|e: BridgeFailure| e.at(self.path))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.value {
            Value::Null => visitor.visit_unit().map_err(|e: BridgeFailure| e.at(self.path)),
            _ => Err(self.unexpected("null")),
        }
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Res<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Res<V::Value> {
        let path = self.path;
        if name == ATTR_TOKEN {
            // The three states of `Attr<T>`: see `AttrVisitor`.
            return match self.value {
                Value::Null => visitor.visit_none(),
                Value::Unknown => visitor.visit_unit(),
                _ => visitor.visit_some(self),
            }
            .map_err(|e: BridgeFailure| e.at(path));
        }
        visitor.visit_newtype_struct(self).map_err(|e: BridgeFailure| e.at(path))
    }

    /// Null reads as an empty sequence: list blocks absent from older state come back as `[]`
    /// (use `Attr<Vec<..>>` where null and empty must stay distinct).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.value {
            Value::Null => visitor.visit_seq(SeqAccess { items: [].iter(), index: 0, path: self.path }),
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => visitor
                .visit_seq(SeqAccess { items: items.iter(), index: 0, path: self.path })
                .map_err(|e: BridgeFailure| e.at(self.path)),
            _ => Err(self.unexpected("a list")),
        }
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Res<V::Value> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _name: &'static str, _len: usize, visitor: V) -> Res<V::Value> {
        self.deserialize_seq(visitor)
    }

    /// Null reads as an empty map, as for sequences.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let path = self.path;
        static EMPTY: BTreeMap<String, Value> = BTreeMap::new();
        match self.value {
            Value::Null => visitor.visit_map(MapAccess { entries: EMPTY.iter(), pending: None, path, object: false }),
            Value::Map(entries) => {
                visitor.visit_map(MapAccess { entries: entries.iter(), pending: None, path, object: false })
            }
            Value::Object(entries) => {
                visitor.visit_map(MapAccess { entries: entries.iter(), pending: None, path, object: true })
            }
            _ => return Err(self.unexpected("a map")),
        }
        .map_err(|e: BridgeFailure| e.at(path))
    }

    /// Every field of the struct is offered, null when the object lacks it; attributes the
    /// struct does not name are never read.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        let entries = match self.value {
            Value::Object(entries) | Value::Map(entries) => entries,
            _ => return Err(self.unexpected("an object")),
        };
        visitor
            .visit_map(StructAccess { entries, fields: fields.iter(), pending: None, path: self.path })
            .map_err(|e: BridgeFailure| e.at(self.path))
    }

    /// Enums of unit variants from strings.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        match self.value {
            Value::String(s) => {
                let access = BorrowedStrDeserializer::<BridgeFailure>::new(s);
                visitor.visit_enum(access).map_err(|e: BridgeFailure| e.at(self.path))
            }
            _ => Err(self.unexpected("a string")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_str(visitor)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_unit()
    }
}

struct SeqAccess<'de, 'p> {
    items: std::slice::Iter<'de, Value>,
    index: usize,
    path: &'p Path<'p>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'de, '_> {
    type Error = BridgeFailure;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Res<Option<T::Value>> {
        let Some(item) = self.items.next() else { return Ok(None) };
        let path = Path::Index(self.path, self.index);
        self.index += 1;
        seed.deserialize(ValueDeserializer::new(item, &path)).map(Some).map_err(|e: BridgeFailure| e.at(&path))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'de, 'p> {
    entries: std::collections::btree_map::Iter<'de, String, Value>,
    pending: Option<(&'de str, &'de Value)>,
    path: &'p Path<'p>,
    /// Object attributes render as `.name` in paths, map keys as `["key"]`.
    object: bool,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de, '_> {
    type Error = BridgeFailure;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        let Some((k, v)) = self.entries.next() else { return Ok(None) };
        self.pending = Some((k, v));
        seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Res<V::Value> {
        let (k, v) = self.pending.take().ok_or_else(|| BridgeFailure::new("map value requested before its key"))?;
        let path = if self.object { Path::Attr(self.path, k) } else { Path::Key(self.path, k) };
        seed.deserialize(ValueDeserializer::new(v, &path)).map_err(|e: BridgeFailure| e.at(&path))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct StructAccess<'de, 'p> {
    entries: &'de BTreeMap<String, Value>,
    fields: std::slice::Iter<'static, &'static str>,
    pending: Option<&'static str>,
    path: &'p Path<'p>,
}

impl<'de> de::MapAccess<'de> for StructAccess<'de, '_> {
    type Error = BridgeFailure;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        let Some(field) = self.fields.next() else { return Ok(None) };
        self.pending = Some(field);
        seed.deserialize(BorrowedStrDeserializer::new(field)).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Res<V::Value> {
        let field =
            self.pending.take().ok_or_else(|| BridgeFailure::new("struct field value requested before its name"))?;
        let value = self.entries.get(field).unwrap_or(&NULL);
        let path = Path::Attr(self.path, field);
        seed.deserialize(ValueDeserializer::new(value, &path)).map_err(|e: BridgeFailure| e.at(&path))
    }
}

/// serde_json's `Value` visitor reads an arbitrary-precision number as a one-entry map whose
/// key is its private token and whose value is the number's text.
struct JsonNumberAccess<'de>(Option<&'de str>);

impl<'de> de::MapAccess<'de> for JsonNumberAccess<'de> {
    type Error = BridgeFailure;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        if self.0.is_none() {
            return Ok(None);
        }
        seed.deserialize(BorrowedStrDeserializer::new(JSON_NUMBER_TOKEN)).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Res<V::Value> {
        let text = self.0.take().ok_or_else(|| BridgeFailure::new("number text requested twice"))?;
        seed.deserialize(BorrowedStrDeserializer::new(text))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::protocol::codec::{decode_msgpack, encode_msgpack};
    use crate::protocol::schema::{Attribute, Block, NestedBlock, Nesting};

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
        assert!(err.contains("reading port:") && err.contains("out of range for u16"), "{err}");

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

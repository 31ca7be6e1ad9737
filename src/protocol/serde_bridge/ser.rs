//! Serializing: a serde `Serializer` builds an untyped value, `conform` shapes it to the schema type.

use std::collections::BTreeMap;

use serde::Serializer;
use serde::ser::{self, Serialize};

use super::{BridgeFailure, JSON_NUMBER_TOKEN, Res, UNKNOWN_TOKEN};
use crate::protocol::value::{Number, Type, Value};

// ---------------------------------------------------------------- serializing

/// Builds an untyped value: sequences become tuples, maps and structs objects.
pub(super) struct RawSerializer;

pub(super) struct RawSeq(Vec<Value>);
pub(super) struct RawMap {
    entries: BTreeMap<String, Value>,
    next_key: Option<String>,
}
/// A struct being serialised; `json_number` when it is serde_json's number wrapper.
pub(super) struct RawStruct {
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
pub(super) fn conform(raw: Value, ty: &Type) -> Res<Value> {
    let kind = |v: &Value| match v {
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Tuple(_) | Value::List(_) | Value::Set(_) => "a sequence",
        Value::Object(_) | Value::Map(_) => "a struct or map",
        _ => "a value",
    };
    let mismatch = |v: &Value| {
        let expected = crate::protocol::types_json::type_to_json(ty);
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

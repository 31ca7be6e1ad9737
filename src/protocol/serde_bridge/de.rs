//! Deserializing: reads a `Value` directly into a serde type, naming the path on every error.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserializer;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Visitor};

use super::{ATTR_TOKEN, BridgeFailure, JSON_NUMBER_TOKEN, NOT_KNOWN_YET, Path, Res, ValueProblem};
use crate::protocol::value::{Number, Value};

// ---------------------------------------------------------------- deserializing

pub(super) struct ValueDeserializer<'de, 'p> {
    value: &'de Value,
    path: &'p Path<'p>,
}

static NULL: Value = Value::Null;

impl<'de, 'p> ValueDeserializer<'de, 'p> {
    pub(super) fn new(mut value: &'de Value, path: &'p Path<'p>) -> Self {
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

    /// The number as an integer of type `I` (`min..=max`), or an error saying what is wrong
    /// with the number in the user's terms: a fraction, or beyond the limit (never the type).
    fn integer<I: TryFrom<i128> + fmt::Display>(&self, min: I, max: I) -> Res<I> {
        let n = self.number("a whole number")?;
        let out_of_range = || {
            let number = n.to_string();
            let problem = if n.canonical_text().starts_with('-') {
                ValueProblem::TooSmall { number, min: min.to_string() }
            } else {
                ValueProblem::TooLarge { number, max: max.to_string() }
            };
            BridgeFailure::problem(problem).at(self.path)
        };
        let Some(i) = n.as_i128() else {
            if n.is_integer() {
                return Err(out_of_range());
            }
            return Err(BridgeFailure::problem(ValueProblem::NotWhole { number: n.to_string() }).at(self.path));
        };
        I::try_from(i).map_err(|_| out_of_range())
    }
}

macro_rules! deserialize_integer {
    ($method:ident, $ty:ty, $visit:ident) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
            let n: $ty = self.integer(<$ty>::MIN, <$ty>::MAX)?;
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
        let f = n.as_f64().ok_or_else(|| {
            let number = n.to_string();
            let problem = if n.canonical_text().starts_with('-') {
                ValueProblem::TooSmall { number, min: format!("{:e}", f64::MIN) }
            } else {
                ValueProblem::TooLarge { number, max: format!("{:e}", f64::MAX) }
            };
            BridgeFailure::problem(problem).at(self.path)
        })?;
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

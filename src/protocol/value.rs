//! Terraform values as the provider sees them: cty types and values, independent of wire format.
//!
//! `codec.rs` turns these into msgpack/JSON `DynamicValue`s and back; `serde_bridge.rs` maps them
//! to typed state structs so resources never see this module directly.

use std::collections::BTreeMap;

/// A cty type. `to_json`/`from_json` (in `types_json.rs`) speak Terraform's type JSON.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Type {
    Bool,
    Number,
    String,
    /// `DynamicPseudoType`: the concrete type travels with the value.
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    /// Attribute types; the set holds the names of optional attributes (only in type constraints).
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

/// Arbitrary-precision number. Terraform numbers are big decimals; we keep the exact decimal
/// text when a value does not fit i64/f64 exactly.
#[derive(Debug, Clone)]
pub enum Number {
    Int(i64),
    Float(f64),
    /// Decimal text, e.g. "1e400" or "123456789012345678901234567890".
    Big(String),
}

/// A cty value. Objects and maps keep their keys sorted, as cty does.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Not known until apply (msgpack extension 0 out; any extension in).
    Unknown,
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
    /// A value of `Type::Dynamic` attributes, carrying its concrete type.
    Dynamic(Type, Box<Value>),
}

// Numbers compare by value, not by representation (1 == 1.0). `codec.rs` owns the full
// implementation; this is the minimal version the skeleton needs.
impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Big(a), Number::Big(b)) => a == b,
            (a, b) => a.as_f64() == b.as_f64(),
        }
    }
}

impl Number {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Number::Int(i) => Some(*i as f64),
            Number::Float(f) => Some(*f),
            Number::Big(s) => s.parse().ok(),
        }
    }
}

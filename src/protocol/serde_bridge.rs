//! Typed state structs <-> `Value`, through serde. `Attr<T>` keeps `Unknown` across the trip;
//! a struct field maps to the object attribute of the same name; `Option<T>` is null-or-known.

use serde::{Serialize, de::DeserializeOwned};

use super::value::{Type, Value};

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("converting state to a value: {0}")]
    ToValue(String),
    #[error("reading {path}: {reason}")]
    FromValue { path: String, reason: String },
}

/// Serialise a state struct into a Value conforming to `ty` (the schema block's object type):
/// attributes missing from the struct become null; numbers/strings are converted as `ty` says.
pub fn to_value<T: Serialize>(_state: &T, _ty: &Type) -> Result<Value, BridgeError> {
    Err(BridgeError::ToValue("not implemented yet".into()))
}

/// Deserialise a Value into a state struct. Unknown -> `Attr::Unknown`, null -> `Attr::Null`.
pub fn from_value<T: DeserializeOwned>(_value: &Value) -> Result<T, BridgeError> {
    Err(BridgeError::FromValue { path: String::new(), reason: "not implemented yet".into() })
}

// Placeholder serde impls for `Attr<T>` so resource state structs compile; the full bridge
// (which keeps `Unknown` across the trip) replaces them.
impl<T: Serialize> Serialize for super::resource::Attr<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            super::resource::Attr::Known(v) => s.serialize_some(v),
            _ => s.serialize_none(),
        }
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for super::resource::Attr<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.into())
    }
}

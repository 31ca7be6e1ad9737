//! `DynamicValue` encodings: msgpack (what Terraform sends), JSON (legacy state, UpgradeResourceState)
//! and flatmap (state from SDKv1 days). Decoding is always guided by the schema's type.

use std::collections::HashMap;

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

/// msgpack -> Value. Every msgpack extension decodes as `Value::Unknown` (Terraform 1.6+ sends
/// refined unknowns as extension 12).
pub fn decode_msgpack(_bytes: &[u8], _ty: &Type) -> Result<Value, CodecError> {
    Err(CodecError::Encode("decode_msgpack: not implemented yet".into()))
}

/// Value -> msgpack. Unknown is extension 0 with an empty payload (`d4 00 00`).
pub fn encode_msgpack(_value: &Value, _ty: &Type) -> Result<Vec<u8>, CodecError> {
    Err(CodecError::Encode("encode_msgpack: not implemented yet".into()))
}

/// JSON -> Value (no unknowns in JSON).
pub fn decode_json(_bytes: &[u8], _ty: &Type) -> Result<Value, CodecError> {
    Err(CodecError::Encode("decode_json: not implemented yet".into()))
}

/// Value -> JSON (errors on unknowns).
pub fn encode_json(_value: &Value, _ty: &Type) -> Result<Vec<u8>, CodecError> {
    Err(CodecError::Encode("encode_json: not implemented yet".into()))
}

/// Flatmap (`"tags.%" = "2"`, `"list.#" = "1"`, `"list.0" = ...`) -> Value.
pub fn decode_flatmap(_flat: &HashMap<String, String>, _ty: &Type) -> Result<Value, CodecError> {
    Err(CodecError::Flatmap("not implemented yet".into()))
}

//! cty type JSON: `"string"`, `["list","string"]`, `["object",{"a":"number"}]`, `"dynamic"`.

use super::value::Type;

#[derive(Debug, thiserror::Error)]
#[error("invalid cty type JSON {json}: {reason}")]
pub struct TypeJsonError {
    pub json: String,
    pub reason: String,
}

pub fn type_to_json(_ty: &Type) -> serde_json::Value {
    serde_json::Value::Null
}

/// Bytes as put in tfplugin6 `Schema.Attribute.type`.
pub fn type_to_json_bytes(ty: &Type) -> Vec<u8> {
    type_to_json(ty).to_string().into_bytes()
}

pub fn type_from_json(json: &serde_json::Value) -> Result<Type, TypeJsonError> {
    Err(TypeJsonError { json: json.to_string(), reason: "not implemented yet".into() })
}

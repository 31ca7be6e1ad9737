//! cty type JSON: `"string"`, `["list","string"]`, `["object",{"a":"number"}]`, `"dynamic"`.

use serde_json::Value as Json;

use super::value::Type;

#[derive(Debug, thiserror::Error)]
#[error("invalid cty type JSON {json}: {reason}")]
pub struct TypeJsonError {
    pub json: String,
    pub reason: String,
}

pub fn type_to_json(ty: &Type) -> Json {
    let tagged = |tag: &str, inner: Json| Json::Array(vec![Json::String(tag.into()), inner]);
    match ty {
        Type::Bool => Json::String("bool".into()),
        Type::Number => Json::String("number".into()),
        Type::String => Json::String("string".into()),
        Type::Dynamic => Json::String("dynamic".into()),
        Type::List(t) => tagged("list", type_to_json(t)),
        Type::Set(t) => tagged("set", type_to_json(t)),
        Type::Map(t) => tagged("map", type_to_json(t)),
        Type::Object(attrs) => {
            tagged("object", Json::Object(attrs.iter().map(|(k, t)| (k.clone(), type_to_json(t))).collect()))
        }
        Type::Tuple(ts) => tagged("tuple", Json::Array(ts.iter().map(type_to_json).collect())),
    }
}

/// Bytes as put in tfplugin6 `Schema.Attribute.type`.
pub fn type_to_json_bytes(ty: &Type) -> Vec<u8> {
    type_to_json(ty).to_string().into_bytes()
}

/// Parses type JSON. The optional-attribute list of object type constraints
/// (`["object",{...},["opt"]]`) is accepted and dropped: values always carry every attribute.
pub fn type_from_json(json: &Json) -> Result<Type, TypeJsonError> {
    let fail = |reason: &str| TypeJsonError { json: json.to_string(), reason: reason.to_string() };
    match json {
        Json::String(s) => match s.as_str() {
            "bool" => Ok(Type::Bool),
            "number" => Ok(Type::Number),
            "string" => Ok(Type::String),
            "dynamic" => Ok(Type::Dynamic),
            _ => Err(fail("unknown primitive type")),
        },
        Json::Array(items) => {
            let tag = items.first().and_then(Json::as_str).ok_or_else(|| fail("expected a type name first"))?;
            let arg = items.get(1).ok_or_else(|| fail("missing element type"))?;
            let max_len = if tag == "object" { 3 } else { 2 };
            if items.len() > max_len {
                return Err(fail("too many elements"));
            }
            match tag {
                "list" => Ok(Type::List(Box::new(type_from_json(arg)?))),
                "set" => Ok(Type::Set(Box::new(type_from_json(arg)?))),
                "map" => Ok(Type::Map(Box::new(type_from_json(arg)?))),
                "object" => {
                    let attrs = arg.as_object().ok_or_else(|| fail("object attributes must be a JSON object"))?;
                    let attrs = attrs.iter().map(|(k, t)| Ok((k.clone(), type_from_json(t)?))).collect::<Result<
                        _,
                        TypeJsonError,
                    >>(
                    )?;
                    if let Some(optional) = items.get(2) {
                        let names = optional.as_array().ok_or_else(|| fail("optional attributes must be a list"))?;
                        if !names.iter().all(Json::is_string) {
                            return Err(fail("optional attribute names must be strings"));
                        }
                    }
                    Ok(Type::Object(attrs))
                }
                "tuple" => {
                    let elems = arg.as_array().ok_or_else(|| fail("tuple element types must be a list"))?;
                    Ok(Type::Tuple(elems.iter().map(type_from_json).collect::<Result<_, _>>()?))
                }
                _ => Err(fail("unknown type kind")),
            }
        }
        _ => Err(fail("expected a string or a list")),
    }
}

/// Parses type JSON bytes (e.g. the first element of a msgpack dynamic value).
pub fn type_from_json_bytes(bytes: &[u8]) -> Result<Type, TypeJsonError> {
    let json: Json = serde_json::from_slice(bytes)
        .map_err(|e| TypeJsonError { json: String::from_utf8_lossy(bytes).into_owned(), reason: e.to_string() })?;
    type_from_json(&json)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let ty = Type::Object(BTreeMap::from([
            ("s".to_string(), Type::String),
            ("n".to_string(), Type::Number),
            ("b".to_string(), Type::Bool),
            ("d".to_string(), Type::Dynamic),
            ("l".to_string(), Type::List(Box::new(Type::String))),
            ("set".to_string(), Type::Set(Box::new(Type::Number))),
            ("m".to_string(), Type::Map(Box::new(Type::Bool))),
            ("t".to_string(), Type::Tuple(vec![Type::String, Type::Number])),
            ("o".to_string(), Type::Object(BTreeMap::from([("x".to_string(), Type::String)]))),
        ]));
        let json = type_to_json(&ty);
        assert_eq!(json["l"], Json::Null); // it is an ["object", {...}] array, not an object
        assert_eq!(json[0], "object");
        assert_eq!(json[1]["l"], json!(["list", "string"]));
        assert_eq!(json[1]["t"], json!(["tuple", ["string", "number"]]));
        assert_eq!(json[1]["o"], json!(["object", {"x": "string"}]));
        assert_eq!(type_from_json(&json).unwrap(), ty);
        assert_eq!(type_from_json_bytes(&type_to_json_bytes(&ty)).unwrap(), ty);
    }

    #[test]
    fn parses_terraform_spellings() {
        assert_eq!(type_from_json(&json!("dynamic")).unwrap(), Type::Dynamic);
        assert_eq!(
            type_from_json(&json!(["object", {"a": "string", "b": "number"}, ["b"]])).unwrap(),
            Type::Object(BTreeMap::from([("a".into(), Type::String), ("b".into(), Type::Number)]))
        );
        assert_eq!(
            type_from_json(&json!(["map", ["list", "bool"]])).unwrap(),
            Type::Map(Box::new(Type::List(Box::new(Type::Bool))))
        );
    }

    #[test]
    fn rejects_bad_json() {
        for bad in [json!("strin"), json!(["list"]), json!(["tuple", "string"]), json!(42), json!(["x", "string"])] {
            let err = type_from_json(&bad).unwrap_err();
            assert!(err.to_string().contains("invalid cty type JSON"), "{err}");
        }
    }
}

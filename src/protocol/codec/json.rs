//! JSON: legacy state and UpgradeResourceState.

use serde_json::Value as Json;

use super::{CodecError, Failure, Res, type_name, value_kind, wrap_dynamic};
use crate::protocol::types_json::{type_from_json, type_to_json};
use crate::protocol::value::{Number, Type, Value};

/// JSON -> Value (no unknowns in JSON).
pub fn decode_json(bytes: &[u8], ty: &Type) -> Result<Value, CodecError> {
    let json: Json =
        serde_json::from_slice(bytes).map_err(|e| CodecError::Json { ty: ty.clone(), reason: e.to_string() })?;
    json_to_value(&json, ty)
}

/// Value -> JSON (errors on unknowns).
pub fn encode_json(value: &Value, ty: &Type) -> Result<Vec<u8>, CodecError> {
    let json = value_to_json(value, ty)?;
    serde_json::to_vec(&json).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Parsed JSON -> Value, for callers that already hold a `serde_json::Value`.
pub fn json_to_value(json: &Json, ty: &Type) -> Result<Value, CodecError> {
    json_to_value_at(json, ty).map_err(|f| CodecError::Json { ty: ty.clone(), reason: f.render() })
}

fn json_to_value_at(json: &Json, ty: &Type) -> Res<Value> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    let mismatch = || Failure::new(format!("expected {}, found {json}", type_name(ty)));
    match ty {
        Type::Bool => match json {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::String(s) if s == "true" => Ok(Value::Bool(true)),
            Json::String(s) if s == "false" => Ok(Value::Bool(false)),
            _ => Err(mismatch()),
        },
        Type::Number => {
            let text = match json {
                Json::Number(n) => n.as_str(),
                Json::String(s) => s.as_str(),
                _ => return Err(mismatch()),
            };
            Number::parse(text).map(Value::Number).ok_or_else(mismatch)
        }
        // cty converts any primitive to a string.
        Type::String => match json {
            Json::String(s) => Ok(Value::String(s.clone())),
            Json::Number(n) => Ok(Value::String(n.as_str().to_string())),
            Json::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(mismatch()),
        },
        Type::List(elem) | Type::Set(elem) => {
            let items = json.as_array().ok_or_else(mismatch)?;
            let items = items.iter().enumerate().map(|(i, j)| json_to_value_at(j, elem).map_err(|f| f.index(i)));
            let items = items.collect::<Res<Vec<_>>>()?;
            Ok(if matches!(ty, Type::Set(_)) { Value::Set(items) } else { Value::List(items) })
        }
        Type::Tuple(elems) => {
            let items = json.as_array().filter(|a| a.len() == elems.len()).ok_or_else(mismatch)?;
            let items = items.iter().zip(elems).enumerate();
            Ok(Value::Tuple(
                items.map(|(i, (j, t))| json_to_value_at(j, t).map_err(|f| f.index(i))).collect::<Res<_>>()?,
            ))
        }
        Type::Map(elem) => {
            let entries = json.as_object().ok_or_else(mismatch)?;
            let entries =
                entries.iter().map(|(k, j)| Ok((k.clone(), json_to_value_at(j, elem).map_err(|f| f.key(k))?)));
            Ok(Value::Map(entries.collect::<Res<_>>()?))
        }
        Type::Object(attrs) => {
            let entries = json.as_object().ok_or_else(mismatch)?;
            let attrs = attrs.iter().map(|(name, t)| {
                let v = match entries.get(name) {
                    Some(j) => json_to_value_at(j, t).map_err(|f| f.attr(name))?,
                    None => Value::Null,
                };
                Ok((name.clone(), v))
            });
            Ok(Value::Object(attrs.collect::<Res<_>>()?))
        }
        Type::Dynamic => {
            // {"value": ..., "type": ...}
            let entries =
                json.as_object().ok_or_else(|| Failure::new("dynamic value must be {\"value\", \"type\"}"))?;
            let (Some(type_json), Some(value_json)) = (entries.get("type"), entries.get("value")) else {
                return Err(Failure::new("dynamic value must have \"value\" and \"type\""));
            };
            let concrete = type_from_json(type_json).map_err(|e| Failure::new(e.to_string()))?;
            Ok(wrap_dynamic(concrete.clone(), json_to_value_at(value_json, &concrete)?))
        }
    }
}

/// Value -> `serde_json::Value` in cty's JSON form.
pub fn value_to_json(value: &Value, ty: &Type) -> Result<Json, CodecError> {
    value_to_json_at(value, ty).map_err(|f| CodecError::Encode(f.render()))
}

fn value_to_json_at(value: &Value, ty: &Type) -> Res<Json> {
    let mismatch = || Failure::new(format!("value {} does not conform to type {}", value_kind(value), type_name(ty)));
    Ok(match (value, ty) {
        (Value::Unknown, _) => return Err(Failure::new("unknown values cannot be written as JSON")),
        (Value::Null, _) => Json::Null,
        (v, Type::Dynamic) => {
            let (concrete, inner) = match v {
                Value::Dynamic(t, inner) => (t.clone(), inner.as_ref()),
                other => (other.infer_type(), other),
            };
            let mut obj = serde_json::Map::new();
            obj.insert("value".into(), value_to_json_at(inner, &concrete)?);
            obj.insert("type".into(), type_to_json(&concrete));
            Json::Object(obj)
        }
        (Value::Dynamic(_, inner), _) => value_to_json_at(inner, ty)?,
        (Value::Bool(b), Type::Bool) => Json::Bool(*b),
        (Value::Number(n), Type::Number) => Json::Number(json_number(n)?),
        (Value::String(s), Type::String) => Json::String(s.clone()),
        (Value::List(items) | Value::Set(items) | Value::Tuple(items), Type::List(elem) | Type::Set(elem)) => {
            let items = items.iter().enumerate().map(|(i, v)| value_to_json_at(v, elem).map_err(|f| f.index(i)));
            Json::Array(items.collect::<Res<_>>()?)
        }
        (Value::Tuple(items) | Value::List(items), Type::Tuple(elems)) if items.len() == elems.len() => {
            let items = items.iter().zip(elems).enumerate();
            Json::Array(items.map(|(i, (v, t))| value_to_json_at(v, t).map_err(|f| f.index(i))).collect::<Res<_>>()?)
        }
        (Value::Map(entries) | Value::Object(entries), Type::Map(elem)) => {
            let entries =
                entries.iter().map(|(k, v)| Ok((k.clone(), value_to_json_at(v, elem).map_err(|f| f.key(k))?)));
            Json::Object(entries.collect::<Res<_>>()?)
        }
        (Value::Object(entries) | Value::Map(entries), Type::Object(attrs)) => {
            if let Some(extra) = entries.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(Failure::new(format!("attribute {extra:?} is not in the schema")));
            }
            let attrs = attrs.iter().map(|(name, t)| {
                let v = entries.get(name).unwrap_or(&Value::Null);
                Ok((name.clone(), value_to_json_at(v, t).map_err(|f| f.attr(name))?))
            });
            Json::Object(attrs.collect::<Res<_>>()?)
        }
        _ => return Err(mismatch()),
    })
}

fn json_number(n: &Number) -> Res<serde_json::Number> {
    let text = n.to_string();
    text.parse::<serde_json::Number>()
        .or_else(|_| n.canonical_text().parse())
        .map_err(|e| Failure::new(format!("number {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::decode_msgpack;
    use crate::protocol::codec::test_values::*;

    /// The same resource's attributes from the state file after `terraform apply`.
    #[test]
    fn decodes_json_state_written_by_terraform() {
        let json = br#"{"id": "d74173f4-9ef9-21d5-831f-ddcbe41e93f9", "input": {"value": {"big": 100000000000000000000, "flag": true, "half": 1.5, "huge": 123456789012345678901234567890, "list": ["a", "b"], "neg": -7, "tenth": 0.1}, "type": ["object", {"big": "number", "flag": "bool", "half": "number", "huge": "number", "list": ["tuple", ["string", "string"]], "neg": "number", "tenth": "number"}]}, "triggers_replace": null}"#;
        let ty = obj_type(&[
            ("id", Type::String),
            ("input", Type::Dynamic),
            ("output", Type::Dynamic),
            ("triggers_replace", Type::Dynamic),
        ]);
        let v = decode_json(json, &ty).unwrap();
        let msgpack = decode_msgpack(include_bytes!("../testdata/terraform_data_plan.msgpack"), &ty).unwrap();
        // Same input as planned, by value (1e20 arrives as a float in msgpack, as text here).
        assert_eq!(v.get_attr("input"), msgpack.get_attr("input"));
        assert_eq!(v.get_attr("output"), Some(&Value::Null));
        let again = encode_json(&v, &ty).unwrap();
        assert_eq!(decode_json(&again, &ty).unwrap(), v);
        let text = String::from_utf8(again).unwrap();
        assert!(text.contains(r#""huge":123456789012345678901234567890"#), "{text}");
    }

    #[test]
    fn json_round_trips_and_rejects_unknown() {
        let (ty, value) = sample();
        assert!(encode_json(&value, &ty).unwrap_err().to_string().contains("unknown"));
        let known = obj(&[
            ("name", Value::string("vm-1")),
            ("count", num("1234567890123456789012345678901234567890")),
            ("ports", Value::List(vec![num("1.5"), num("1e400"), num("-7")])),
            ("timeouts", Value::List(vec![obj(&[("create", Value::string("5m")), ("delete", Value::Null)])])),
            ("extra", Value::Dynamic(Type::Bool, Box::new(Value::Bool(true)))),
        ]);
        let bytes = encode_json(&known, &ty).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("1234567890123456789012345678901234567890"), "{text}");
        assert!(text.contains(r#""extra":{"type":"bool","value":true}"#), "{text}");
        let decoded = decode_json(&bytes, &ty).unwrap();
        // Encoding filled every attribute; decoding must give the same, with nulls for the absent.
        let Value::Object(mut expected) = known else { unreachable!() };
        let Type::Object(attrs) = &ty else { unreachable!() };
        for name in attrs.keys() {
            expected.entry(name.clone()).or_insert(Value::Null);
        }
        assert_eq!(decoded, Value::Object(expected));
    }

    #[test]
    fn json_state_from_terraform() {
        let ty = obj_type(&[("id", Type::String), ("size", Type::Number), ("d", Type::Dynamic), ("gone", Type::Bool)]);
        let json = br#"{"id":"x","size":"42","d":{"value":["a",1],"type":["tuple",["string","number"]]},"old":1}"#;
        let v = decode_json(json, &ty).unwrap();
        assert_eq!(v.get_attr("size"), Some(&Value::int(42)));
        assert_eq!(v.get_attr("gone"), Some(&Value::Null));
        assert_eq!(
            v.get_attr("d"),
            Some(&Value::Dynamic(
                Type::Tuple(vec![Type::String, Type::Number]),
                Box::new(Value::Tuple(vec![Value::string("a"), Value::int(1)]))
            ))
        );
    }
}

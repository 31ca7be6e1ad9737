//! Flatmap: state from SDKv1 days.

use std::collections::{BTreeSet, HashMap};

use super::{CodecError, Failure, Res, type_name};
use crate::protocol::value::{Number, Type, Value};

/// The flatmap marker SDKv1 wrote for unknown values.
const FLATMAP_UNKNOWN: &str = "74D93920-ED26-11E3-AC10-0800200C9A66";

/// Flatmap (`"tags.%" = "2"`, `"list.#" = "1"`, `"list.0" = ...`) -> Value.
pub fn decode_flatmap(flat: &HashMap<String, String>, ty: &Type) -> Result<Value, CodecError> {
    let Type::Object(attrs) = ty else {
        return Err(CodecError::Flatmap(format!("top-level type must be an object, not {}", type_name(ty))));
    };
    let attrs = attrs.iter().map(|(name, t)| Ok((name.clone(), flat_value(flat, name, t).map_err(|f| f.attr(name))?)));
    Ok(Value::Object(attrs.collect::<Res<_>>().map_err(|f| CodecError::Flatmap(f.render()))?))
}

fn flat_value(flat: &HashMap<String, String>, prefix: &str, ty: &Type) -> Res<Value> {
    match ty {
        Type::Bool | Type::Number | Type::String | Type::Dynamic => {
            let Some(text) = flat.get(prefix) else { return Ok(Value::Null) };
            if text == FLATMAP_UNKNOWN {
                return Ok(Value::Unknown);
            }
            match ty {
                Type::Bool => match text.as_str() {
                    "true" | "1" => Ok(Value::Bool(true)),
                    "false" | "0" => Ok(Value::Bool(false)),
                    _ => Err(Failure::new(format!("{text:?} is not a bool"))),
                },
                Type::Number => Number::parse(text)
                    .map(Value::Number)
                    .ok_or_else(|| Failure::new(format!("{text:?} is not a number"))),
                Type::Dynamic => Ok(Value::Dynamic(Type::String, Box::new(Value::String(text.clone())))),
                _ => Ok(Value::String(text.clone())),
            }
        }
        Type::Object(attrs) => {
            // Objects nested in flatmap have no count key; an object with no keys at all is null.
            let inner = format!("{prefix}.");
            if !flat.keys().any(|k| k.starts_with(&inner)) {
                return Ok(Value::Null);
            }
            let attrs = attrs.iter().map(|(name, t)| {
                Ok((name.clone(), flat_value(flat, &format!("{prefix}.{name}"), t).map_err(|f| f.attr(name))?))
            });
            Ok(Value::Object(attrs.collect::<Res<_>>()?))
        }
        Type::List(elem) => {
            let count = match flat_count(flat, prefix, "#")? {
                Count::Known(n) => n,
                Count::Null => return Ok(Value::Null),
                Count::Unknown => return Ok(Value::Unknown),
            };
            let items = (0..count).map(|i| flat_value(flat, &format!("{prefix}.{i}"), elem).map_err(|f| f.index(i)));
            Ok(Value::List(items.collect::<Res<_>>()?))
        }
        Type::Tuple(elems) => {
            let count = match flat_count(flat, prefix, "#")? {
                Count::Known(n) => n,
                Count::Null => return Ok(Value::Null),
                Count::Unknown => return Ok(Value::Unknown),
            };
            if count != elems.len() {
                return Err(Failure::new(format!("tuple of {} elements has {count}", elems.len())));
            }
            let items = elems.iter().enumerate();
            let items = items.map(|(i, t)| flat_value(flat, &format!("{prefix}.{i}"), t).map_err(|f| f.index(i)));
            Ok(Value::Tuple(items.collect::<Res<_>>()?))
        }
        Type::Set(elem) => {
            match flat_count(flat, prefix, "#")? {
                Count::Known(_) => {}
                Count::Null => return Ok(Value::Null),
                Count::Unknown => return Ok(Value::Unknown),
            }
            // Set elements are keyed by hash codes, not indices.
            let items = child_keys(flat, prefix, "#", false).into_iter().map(|k| {
                let v = flat_value(flat, &format!("{prefix}.{k}"), elem).map_err(|f| f.key(&k))?;
                Ok(v)
            });
            Ok(Value::Set(items.collect::<Res<_>>()?))
        }
        Type::Map(elem) => {
            match flat_count(flat, prefix, "%")? {
                Count::Known(_) => {}
                Count::Null => return Ok(Value::Null),
                Count::Unknown => return Ok(Value::Unknown),
            }
            // Keys of maps of primitives may contain dots; keys of maps of collections cannot.
            let whole_keys = matches!(**elem, Type::Bool | Type::Number | Type::String | Type::Dynamic);
            let entries = child_keys(flat, prefix, "%", whole_keys).into_iter().map(|k| {
                let v = flat_value(flat, &format!("{prefix}.{k}"), elem).map_err(|f| f.key(&k))?;
                Ok((k, v))
            });
            Ok(Value::Map(entries.collect::<Res<_>>()?))
        }
    }
}

enum Count {
    Null,
    Unknown,
    Known(usize),
}

/// The element count at `prefix.#` (lists, sets) or `prefix.%` (maps).
fn flat_count(flat: &HashMap<String, String>, prefix: &str, marker: &str) -> Res<Count> {
    match flat.get(&format!("{prefix}.{marker}")) {
        None => Ok(Count::Null),
        Some(text) if text == FLATMAP_UNKNOWN => Ok(Count::Unknown),
        Some(text) => {
            text.parse().map(Count::Known).map_err(|_| Failure::new(format!("element count {text:?} is not a number")))
        }
    }
}

/// Distinct child keys under `prefix.`, skipping the count key.
fn child_keys(flat: &HashMap<String, String>, prefix: &str, count_key: &str, whole: bool) -> BTreeSet<String> {
    let inner = format!("{prefix}.");
    flat.keys()
        .filter_map(|k| k.strip_prefix(&inner))
        .map(|rest| if whole { rest } else { rest.split('.').next().unwrap_or(rest) })
        .filter(|k| *k != count_key)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::test_values::*;

    #[test]
    fn flatmap_from_old_state() {
        let timeouts = obj_type(&[("create", Type::String)]);
        let ty = obj_type(&[
            ("id", Type::String),
            ("size", Type::Number),
            ("on", Type::Bool),
            ("tags", Type::Map(Box::new(Type::String))),
            ("ports", list(Type::Number)),
            ("zones", Type::Set(Box::new(Type::String))),
            ("timeouts", list(timeouts)),
            ("rules", Type::Set(Box::new(obj_type(&[("port", Type::Number)])))),
            ("later", Type::String),
            ("none", list(Type::String)),
            ("empty", list(Type::String)),
            ("pending", Type::Map(Box::new(Type::String))),
        ]);
        let flat: HashMap<String, String> = [
            ("id", "vm-1"),
            ("size", "20"),
            ("on", "true"),
            ("tags.%", "2"),
            ("tags.owner", "ann"),
            ("tags.dotted.key", "yes"),
            ("ports.#", "2"),
            ("ports.0", "22"),
            ("ports.1", "80"),
            ("zones.#", "2"),
            ("zones.1234", "a"),
            ("zones.5678", "b"),
            ("timeouts.#", "1"),
            ("timeouts.0.create", "5m"),
            ("rules.#", "1"),
            ("rules.999.port", "443"),
            ("later", FLATMAP_UNKNOWN),
            ("empty.#", "0"),
            ("pending.%", FLATMAP_UNKNOWN),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let v = decode_flatmap(&flat, &ty).unwrap();
        let expected = obj(&[
            ("id", Value::string("vm-1")),
            ("size", Value::int(20)),
            ("on", Value::Bool(true)),
            (
                "tags",
                Value::Map(
                    [("owner".to_string(), Value::string("ann")), ("dotted.key".to_string(), Value::string("yes"))]
                        .into(),
                ),
            ),
            ("ports", Value::List(vec![Value::int(22), Value::int(80)])),
            ("zones", Value::Set(vec![Value::string("b"), Value::string("a")])),
            ("timeouts", Value::List(vec![obj(&[("create", Value::string("5m"))])])),
            ("rules", Value::Set(vec![obj(&[("port", Value::int(443))])])),
            ("later", Value::Unknown),
            ("none", Value::Null),
            ("empty", Value::List(vec![])),
            ("pending", Value::Unknown),
        ]);
        assert_eq!(v, expected);
        let bad: HashMap<String, String> = [("size".to_string(), "big".to_string())].into();
        let err = decode_flatmap(&bad, &ty).unwrap_err().to_string();
        assert!(err.contains("at size:"), "{err}");
    }
}

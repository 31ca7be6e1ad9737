//! msgpack, what Terraform sends and expects in every `DynamicValue`.

use std::collections::BTreeMap;

use rmp::Marker;

use super::{CodecError, Failure, Res, type_name, value_kind, wrap_dynamic};
use crate::protocol::types_json::{type_from_json_bytes, type_to_json_bytes};
use crate::protocol::value::{Number, Type, Value};

/// What Terraform writes for an unknown value: fixext1, extension type 0, one zero byte.
const UNKNOWN_MSGPACK: [u8; 3] = [0xd4, 0, 0];

/// msgpack -> Value. Every msgpack extension decodes as `Value::Unknown` (Terraform 1.6+ sends
/// refined unknowns as extension 12).
pub fn decode_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, CodecError> {
    let fail = |f: Failure| CodecError::Msgpack { ty: ty.clone(), reason: f.render() };
    let mut reader = Reader { buf: bytes, pos: 0 };
    let value = reader.value(ty).map_err(fail)?;
    if reader.pos != bytes.len() {
        return Err(fail(Failure::new(format!("{} trailing bytes", bytes.len() - reader.pos))));
    }
    Ok(value)
}

/// Value -> msgpack. Unknown is extension 0 with an empty payload (`d4 00 00`).
pub fn encode_msgpack(value: &Value, ty: &Type) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    write_msgpack(&mut out, value, ty).map_err(|f| CodecError::Encode(f.render()))?;
    Ok(out)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let end = end.ok_or_else(|| Failure::new("unexpected end of msgpack data"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> Res<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Res<usize> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }
    fn u32(&mut self) -> Res<usize> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }
    fn marker(&mut self) -> Res<Marker> {
        Ok(Marker::from_u8(self.u8()?))
    }

    /// Payload length of an extension marker, or None for other markers.
    fn ext_len(&mut self, marker: Marker) -> Res<Option<usize>> {
        Ok(Some(match marker {
            Marker::FixExt1 => 1,
            Marker::FixExt2 => 2,
            Marker::FixExt4 => 4,
            Marker::FixExt8 => 8,
            Marker::FixExt16 => 16,
            Marker::Ext8 => self.u8()? as usize,
            Marker::Ext16 => self.u16()?,
            Marker::Ext32 => self.u32()?,
            _ => return Ok(None),
        }))
    }

    fn str_len(&mut self, marker: Marker) -> Res<Option<usize>> {
        Ok(Some(match marker {
            Marker::FixStr(n) => n as usize,
            Marker::Str8 | Marker::Bin8 => self.u8()? as usize,
            Marker::Str16 | Marker::Bin16 => self.u16()?,
            Marker::Str32 | Marker::Bin32 => self.u32()?,
            _ => return Ok(None),
        }))
    }

    fn array_len(&mut self, marker: Marker) -> Res<Option<usize>> {
        Ok(Some(match marker {
            Marker::FixArray(n) => n as usize,
            Marker::Array16 => self.u16()?,
            Marker::Array32 => self.u32()?,
            _ => return Ok(None),
        }))
    }

    fn map_len(&mut self, marker: Marker) -> Res<Option<usize>> {
        Ok(Some(match marker {
            Marker::FixMap(n) => n as usize,
            Marker::Map16 => self.u16()?,
            Marker::Map32 => self.u32()?,
            _ => return Ok(None),
        }))
    }

    fn string(&mut self, marker: Marker) -> Res<Option<String>> {
        match self.str_len(marker)? {
            Some(len) => {
                let bytes = self.take(len)?;
                let text = std::str::from_utf8(bytes).map_err(|_| Failure::new("string is not valid UTF-8"))?;
                Ok(Some(text.to_string()))
            }
            None => Ok(None),
        }
    }

    fn number(&mut self, marker: Marker) -> Res<Option<Number>> {
        let n = match marker {
            Marker::FixPos(n) => Number::Int(i64::from(n)),
            Marker::FixNeg(n) => Number::Int(i64::from(n)),
            Marker::U8 => Number::Int(i64::from(self.u8()?)),
            Marker::U16 => Number::Int(self.u16()? as i64),
            Marker::U32 => Number::Int(self.u32()? as i64),
            Marker::U64 => Number::from_u64(u64::from_be_bytes(self.be()?)),
            Marker::I8 => Number::Int(i64::from(i8::from_be_bytes(self.be()?))),
            Marker::I16 => Number::Int(i64::from(i16::from_be_bytes(self.be()?))),
            Marker::I32 => Number::Int(i64::from(i32::from_be_bytes(self.be()?))),
            Marker::I64 => Number::Int(i64::from_be_bytes(self.be()?)),
            Marker::F32 => finite(f64::from(f32::from_be_bytes(self.be()?)))?,
            Marker::F64 => finite(f64::from_be_bytes(self.be()?))?,
            _ => match self.string(marker)? {
                // cty sends numbers that fit neither int64 nor float64 as decimal strings.
                Some(text) => Number::parse(&text).ok_or_else(|| Failure::new(format!("{text:?} is not a number")))?,
                None => return Ok(None),
            },
        };
        Ok(Some(n))
    }

    fn value(&mut self, ty: &Type) -> Res<Value> {
        let marker = self.marker()?;
        if let Some(len) = self.ext_len(marker)? {
            self.take(len + 1)?; // extension type byte + payload: refinements we do not use
            return Ok(Value::Unknown);
        }
        if marker == Marker::Null {
            return Ok(Value::Null);
        }
        let mismatch = || Failure::new(format!("expected {}, found msgpack {marker:?}", type_name(ty)));
        match ty {
            Type::Bool => match marker {
                Marker::True => Ok(Value::Bool(true)),
                Marker::False => Ok(Value::Bool(false)),
                _ => Err(mismatch()),
            },
            Type::Number => self.number(marker)?.map(Value::Number).ok_or_else(mismatch),
            Type::String => self.string(marker)?.map(Value::String).ok_or_else(mismatch),
            Type::List(elem) | Type::Set(elem) => {
                let len = self.array_len(marker)?.ok_or_else(mismatch)?;
                let mut items = Vec::with_capacity(len.min(1024));
                for i in 0..len {
                    items.push(self.value(elem).map_err(|f| f.index(i))?);
                }
                Ok(if matches!(ty, Type::Set(_)) { Value::Set(items) } else { Value::List(items) })
            }
            Type::Tuple(elems) => {
                let len = self.array_len(marker)?.ok_or_else(mismatch)?;
                if len != elems.len() {
                    return Err(Failure::new(format!("tuple of {} elements has {len}", elems.len())));
                }
                let items = elems.iter().enumerate().map(|(i, t)| self.value(t).map_err(|f| f.index(i)));
                Ok(Value::Tuple(items.collect::<Res<_>>()?))
            }
            Type::Map(elem) => {
                let len = self.map_len(marker)?.ok_or_else(mismatch)?;
                let mut entries = BTreeMap::new();
                for _ in 0..len {
                    let key = self.key()?;
                    let v = self.value(elem).map_err(|f| f.key(&key))?;
                    entries.insert(key, v);
                }
                Ok(Value::Map(entries))
            }
            Type::Object(attrs) => {
                let len = self.map_len(marker)?.ok_or_else(mismatch)?;
                let mut entries = BTreeMap::new();
                for _ in 0..len {
                    let key = self.key()?;
                    match attrs.get(&key) {
                        Some(t) => {
                            let v = self.value(t).map_err(|f| f.attr(&key))?;
                            entries.insert(key, v);
                        }
                        // Lenient: an attribute the schema does not know is dropped.
                        None => self.skip().map_err(|f| f.attr(&key))?,
                    }
                }
                for name in attrs.keys() {
                    entries.entry(name.clone()).or_insert(Value::Null);
                }
                Ok(Value::Object(entries))
            }
            Type::Dynamic => {
                // [type JSON, value]
                if self.array_len(marker)? != Some(2) {
                    return Err(Failure::new(format!("dynamic value must be a [type, value] pair, found {marker:?}")));
                }
                let type_marker = self.marker()?;
                let len = self.str_len(type_marker)?.ok_or_else(|| Failure::new("dynamic value type is not bytes"))?;
                let concrete =
                    type_from_json_bytes(self.take(len)?).map_err(|e| Failure::new(format!("dynamic value: {e}")))?;
                let inner = self.value(&concrete)?;
                Ok(wrap_dynamic(concrete, inner))
            }
        }
    }

    fn key(&mut self) -> Res<String> {
        let marker = self.marker()?;
        self.string(marker)?.ok_or_else(|| Failure::new(format!("map key must be a string, found {marker:?}")))
    }

    /// Skips one value of any kind.
    fn skip(&mut self) -> Res<()> {
        let marker = self.marker()?;
        if let Some(len) = self.ext_len(marker)? {
            self.take(len + 1)?;
        } else if let Some(len) = self.str_len(marker)? {
            self.take(len)?;
        } else if let Some(len) = self.array_len(marker)? {
            for _ in 0..len {
                self.skip()?;
            }
        } else if let Some(len) = self.map_len(marker)? {
            for _ in 0..len * 2 {
                self.skip()?;
            }
        } else if self.number(marker)?.is_none() && !matches!(marker, Marker::Null | Marker::True | Marker::False) {
            return Err(Failure::new(format!("unsupported msgpack marker {marker:?}")));
        }
        Ok(())
    }
}

/// cty numbers may be infinite (sent as float64 infinities), never NaN.
fn finite(f: f64) -> Res<Number> {
    if f.is_nan() { Err(Failure::new("NaN is not a valid number")) } else { Ok(Number::Float(f)) }
}

fn io_fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(format!("writing msgpack: {e}"))
}

fn write_msgpack(out: &mut Vec<u8>, value: &Value, ty: &Type) -> Res<()> {
    let mismatch = || Failure::new(format!("value {} does not conform to type {}", value_kind(value), type_name(ty)));
    match (value, ty) {
        (Value::Unknown, _) => out.extend_from_slice(&UNKNOWN_MSGPACK),
        (Value::Null, _) => rmp::encode::write_nil(out).map_err(io_fail)?,
        (Value::Dynamic(concrete, inner), Type::Dynamic) => {
            rmp::encode::write_array_len(out, 2).map_err(io_fail)?;
            rmp::encode::write_bin(out, &type_to_json_bytes(concrete)).map_err(io_fail)?;
            write_msgpack(out, inner, concrete)?;
        }
        (v, Type::Dynamic) => {
            let concrete = v.infer_type();
            rmp::encode::write_array_len(out, 2).map_err(io_fail)?;
            rmp::encode::write_bin(out, &type_to_json_bytes(&concrete)).map_err(io_fail)?;
            write_msgpack(out, v, &concrete)?;
        }
        // A dynamic wrapper where the schema has a concrete type: the wrapper adds nothing.
        (Value::Dynamic(_, inner), _) => write_msgpack(out, inner, ty)?,
        (Value::Bool(b), Type::Bool) => rmp::encode::write_bool(out, *b).map_err(io_fail)?,
        (Value::Number(n), Type::Number) => write_number(out, n)?,
        (Value::String(s), Type::String) => rmp::encode::write_str(out, s).map_err(io_fail)?,
        (Value::List(items) | Value::Set(items) | Value::Tuple(items), Type::List(elem) | Type::Set(elem)) => {
            rmp::encode::write_array_len(out, len32(items.len())?).map_err(io_fail)?;
            for (i, item) in items.iter().enumerate() {
                write_msgpack(out, item, elem).map_err(|f| f.index(i))?;
            }
        }
        (Value::Tuple(items) | Value::List(items), Type::Tuple(elems)) => {
            if items.len() != elems.len() {
                return Err(mismatch());
            }
            rmp::encode::write_array_len(out, len32(items.len())?).map_err(io_fail)?;
            for (i, (item, elem)) in items.iter().zip(elems).enumerate() {
                write_msgpack(out, item, elem).map_err(|f| f.index(i))?;
            }
        }
        (Value::Map(entries) | Value::Object(entries), Type::Map(elem)) => {
            rmp::encode::write_map_len(out, len32(entries.len())?).map_err(io_fail)?;
            for (k, v) in entries {
                rmp::encode::write_str(out, k).map_err(io_fail)?;
                write_msgpack(out, v, elem).map_err(|f| f.key(k))?;
            }
        }
        (Value::Object(entries) | Value::Map(entries), Type::Object(attrs)) => {
            if let Some(extra) = entries.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(Failure::new(format!("attribute {extra:?} is not in the schema")));
            }
            rmp::encode::write_map_len(out, len32(attrs.len())?).map_err(io_fail)?;
            for (name, attr_ty) in attrs {
                rmp::encode::write_str(out, name).map_err(io_fail)?;
                let v = entries.get(name).unwrap_or(&Value::Null);
                write_msgpack(out, v, attr_ty).map_err(|f| f.attr(name))?;
            }
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// As cty: integers that fit int64 as ints, other exact floats as float64, the rest as text.
fn write_number(out: &mut Vec<u8>, n: &Number) -> Res<()> {
    if let Some(i) = n.as_i64() {
        rmp::encode::write_sint(out, i).map_err(io_fail)?;
        return Ok(());
    }
    match n {
        Number::Int(i) => rmp::encode::write_sint(out, *i).map(drop).map_err(io_fail),
        Number::Float(f) => rmp::encode::write_f64(out, *f).map_err(io_fail),
        Number::Big(_) => match n.as_f64().filter(|f| Number::Float(*f) == *n) {
            Some(f) => rmp::encode::write_f64(out, f).map_err(io_fail),
            None => rmp::encode::write_str(out, &n.to_string()).map_err(io_fail),
        },
    }
}

fn len32(len: usize) -> Res<u32> {
    u32::try_from(len).map_err(|_| Failure::new("collection too large for msgpack"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::test_values::*;

    #[test]
    fn msgpack_round_trips_every_type() {
        let (ty, value) = sample();
        let bytes = encode_msgpack(&value, &ty).unwrap();
        assert_eq!(decode_msgpack(&bytes, &ty).unwrap(), value);
    }

    #[test]
    fn msgpack_numbers() {
        for text in
            ["1.5", "1e20", "-7", "18446744073709551615", "1234567890123456789012345678901234567890", "1e400", "0"]
        {
            let v = num(text);
            let bytes = encode_msgpack(&v, &Type::Number).unwrap();
            assert_eq!(decode_msgpack(&bytes, &Type::Number).unwrap(), v, "{text}");
        }
        // -7 travels as a negative fixint, 1e20 as float64, 1e400 as text.
        assert_eq!(encode_msgpack(&num("-7"), &Type::Number).unwrap(), [0xf9]);
        assert_eq!(encode_msgpack(&num("1e20"), &Type::Number).unwrap()[0], 0xcb);
        assert_eq!(encode_msgpack(&num("1e400"), &Type::Number).unwrap(), b"\xa51e400");
        let big = decode_msgpack(b"\xa51e400", &Type::Number).unwrap();
        assert!(matches!(big, Value::Number(Number::Big(ref s)) if s == "1e400"));
        // Every integer width and float32.
        let cases: [(&[u8], Value); 8] = [
            (&[0xcc, 0xff], Value::int(255)),
            (&[0xcd, 0x01, 0x00], Value::int(256)),
            (&[0xce, 0, 1, 0, 0], Value::int(65536)),
            (&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], num("18446744073709551615")),
            (&[0xd0, 0x80], Value::int(-128)),
            (&[0xd1, 0x80, 0x00], Value::int(-32768)),
            (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], Value::int(i64::MIN)),
            (&[0xca, 0x3f, 0xc0, 0, 0], num("1.5")),
        ];
        let inf = [0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode_msgpack(&inf, &Type::Number).unwrap(), Value::Number(Number::Float(f64::INFINITY)));
        assert_eq!(encode_msgpack(&Value::Number(Number::Float(f64::INFINITY)), &Type::Number).unwrap(), inf);
        assert!(decode_msgpack(&[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0], &Type::Number).is_err());
        for (bytes, expected) in cases {
            assert_eq!(decode_msgpack(bytes, &Type::Number).unwrap(), expected, "{bytes:02x?}");
        }
    }

    #[test]
    fn terraform_unknowns_decode_as_unknown() {
        // Plain unknown (ext 0) and a refined unknown string (ext 12, Terraform 1.6+).
        assert_eq!(decode_msgpack(&[0xd4, 0, 0], &Type::String).unwrap(), Value::Unknown);
        assert_eq!(decode_msgpack(&[0xc7, 3, 12, 0x81, 0x01, 0xc2], &Type::String).unwrap(), Value::Unknown);
        // Inside an object: {"id": unknown, "name": "a", "n": refined unknown (fixext2)}.
        let ty = obj_type(&[("id", Type::String), ("name", Type::String), ("n", Type::Number), ("d", Type::Dynamic)]);
        let mut bytes = vec![0x84, 0xa2, b'i', b'd', 0xd4, 0, 0, 0xa4, b'n', b'a', b'm', b'e', 0xa1, b'a'];
        bytes.extend([0xa1, b'n', 0xd5, 12, 0x01, 0x02]);
        bytes.extend([0xa1, b'd', 0xd4, 0, 0]); // unknown dynamic: a bare extension
        let expected =
            obj(&[("id", Value::Unknown), ("name", Value::string("a")), ("n", Value::Unknown), ("d", Value::Unknown)]);
        assert_eq!(decode_msgpack(&bytes, &ty).unwrap(), expected);
        assert_eq!(encode_msgpack(&Value::Unknown, &Type::Bool).unwrap(), [0xd4, 0, 0]);
    }

    /// Bytes Terraform 1.11.4 itself wrote: the planned `terraform_data` object of
    /// `testdata/terraform_data_plan.tf`, cut from the plan file (`terraform plan -out`).
    #[test]
    fn decodes_msgpack_written_by_terraform() {
        let bytes = include_bytes!("../testdata/terraform_data_plan.msgpack");
        let ty = obj_type(&[
            ("id", Type::String),
            ("input", Type::Dynamic),
            ("output", Type::Dynamic),
            ("triggers_replace", Type::Dynamic),
        ]);
        let v = decode_msgpack(bytes, &ty).unwrap();
        // id: a refined unknown (extension 12); output: [type, unknown]; triggers_replace: null.
        assert_eq!(v.get_attr("id"), Some(&Value::Unknown));
        assert_eq!(v.get_attr("output"), Some(&Value::Unknown));
        assert_eq!(v.get_attr("triggers_replace"), Some(&Value::Null));
        let Some(Value::Dynamic(input_ty, input)) = v.get_attr("input") else { panic!("input: {v:?}") };
        assert!(
            matches!(input_ty, Type::Object(attrs) if attrs["list"] == Type::Tuple(vec![Type::String, Type::String]))
        );
        let get = |name: &str| input.get_attr(name).unwrap().clone();
        assert_eq!(get("half"), num("1.5"));
        assert_eq!(get("big"), Value::Number(Number::Float(1e20)));
        assert_eq!(get("huge"), num("123456789012345678901234567890"));
        assert_eq!(get("neg"), Value::int(-7));
        // 0.1 has no exact float64: Terraform sends its decimal text.
        assert!(matches!(get("tenth"), Value::Number(Number::Big(ref s)) if s == "0.1"));
        assert_eq!(get("flag"), Value::Bool(true));
        // And back: what we write decodes to the same value.
        let again = encode_msgpack(&v, &ty).unwrap();
        assert_eq!(decode_msgpack(&again, &ty).unwrap(), v);
    }

    #[test]
    fn msgpack_dynamic_is_type_value_pair() {
        let bytes = [&[0x92, 0xa8][..], b"\"string\"", &[0xa2, b'h', b'i']].concat();
        let v = decode_msgpack(&bytes, &Type::Dynamic).unwrap();
        assert_eq!(v, Value::Dynamic(Type::String, Box::new(Value::string("hi"))));
        let again = encode_msgpack(&v, &Type::Dynamic).unwrap();
        assert_eq!(decode_msgpack(&again, &Type::Dynamic).unwrap(), v);
        // A plain value in a dynamic attribute gets its inferred type.
        let plain = encode_msgpack(&Value::int(3), &Type::Dynamic).unwrap();
        assert_eq!(
            decode_msgpack(&plain, &Type::Dynamic).unwrap(),
            Value::Dynamic(Type::Number, Box::new(Value::int(3)))
        );
        assert_eq!(decode_msgpack(&[0xc0], &Type::Dynamic).unwrap(), Value::Null);
    }

    #[test]
    fn msgpack_lenient_objects_and_errors_with_paths() {
        let ty = obj_type(&[("a", Type::String), ("b", Type::Number)]);
        // {"a": "x", "zzz": [1, 2]}: unknown attribute dropped, missing one null.
        let bytes = [0x82, 0xa1, b'a', 0xa1, b'x', 0xa3, b'z', b'z', b'z', 0x92, 0x01, 0x02];
        assert_eq!(decode_msgpack(&bytes, &ty).unwrap(), obj(&[("a", Value::string("x")), ("b", Value::Null)]));
        // {"b": "oops"}: the error names the attribute.
        let err = decode_msgpack(&[0x81, 0xa1, b'b', 0xa4, b'o', b'o', b'p', b's'], &ty).unwrap_err().to_string();
        assert!(err.contains("at b:"), "{err}");
        let err = decode_msgpack(&[0x92, 0x01], &list(Type::Number)).unwrap_err().to_string();
        assert!(err.contains("unexpected end"), "{err}");
        let err = encode_msgpack(&obj(&[("c", Value::Null)]), &ty).unwrap_err().to_string();
        assert!(err.contains("\"c\" is not in the schema"), "{err}");
        let nested = obj_type(&[("t", list(ty.clone()))]);
        let err = encode_msgpack(&obj(&[("t", Value::List(vec![obj(&[("a", Value::int(1))])]))]), &nested)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at t[0].a:"), "{err}");
    }
}

//! Terraform values as the provider sees them: cty types and values, independent of wire format.
//!
//! `codec.rs` turns these into msgpack/JSON `DynamicValue`s and back; `serde_bridge.rs` maps them
//! to typed state structs so resources never see this module directly.

use std::collections::BTreeMap;
use std::fmt;

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
    /// Attribute types. Optional-attribute markers of type constraints are not kept: providers
    /// only ever see concrete object types.
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
#[derive(Debug, Clone)]
pub enum Value {
    /// Not known until apply (msgpack extension 0 out; any extension in).
    Unknown,
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    /// Element order carries no meaning: equality ignores it.
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
    /// A value of `Type::Dynamic` attributes, carrying its concrete type.
    Dynamic(Type, Box<Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Unknown, Value::Unknown) | (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => a == b,
            (Value::Set(a), Value::Set(b)) => same_elements(a, b),
            (Value::Map(a), Value::Map(b)) | (Value::Object(a), Value::Object(b)) => a == b,
            (Value::Dynamic(ta, a), Value::Dynamic(tb, b)) => ta == tb && a == b,
            _ => false,
        }
    }
}

/// Multiset equality; sets are small in provider schemas, so quadratic is fine.
fn same_elements(a: &[Value], b: &[Value]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|x| match (0..b.len()).find(|&i| !used[i] && b[i] == *x) {
        Some(i) => {
            used[i] = true;
            true
        }
        None => false,
    })
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
    /// True when no unknown appears anywhere inside.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => v.iter().all(Value::is_wholly_known),
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            Value::Dynamic(_, v) => v.is_wholly_known(),
            _ => true,
        }
    }
    pub fn string(s: impl Into<String>) -> Self {
        Value::String(s.into())
    }
    pub fn int(i: i64) -> Self {
        Value::Number(Number::Int(i))
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Dynamic(_, v) => v.as_str(),
            _ => None,
        }
    }
    /// Attribute of an object value (None for other values and absent attributes).
    pub fn get_attr(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.get(name),
            _ => None,
        }
    }

    /// The type cty would infer for this value when it sits in a dynamic attribute: sequences
    /// are tuples and key/value collections objects unless the value says otherwise. Null and
    /// unknown have no type of their own: `Dynamic`.
    pub fn infer_type(&self) -> Type {
        match self {
            Value::Unknown | Value::Null => Type::Dynamic,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::List(v) => Type::List(Box::new(common_type(v))),
            Value::Set(v) => Type::Set(Box::new(common_type(v))),
            Value::Map(m) => Type::Map(Box::new(common_type(m.values()))),
            Value::Object(m) => Type::Object(m.iter().map(|(k, v)| (k.clone(), v.infer_type())).collect()),
            Value::Tuple(v) => Type::Tuple(v.iter().map(Value::infer_type).collect()),
            Value::Dynamic(t, _) => t.clone(),
        }
    }
}

/// The element type shared by all elements, or `Dynamic` when they disagree or there are none.
fn common_type<'a>(values: impl IntoIterator<Item = &'a Value>) -> Type {
    let mut found: Option<Type> = None;
    for v in values {
        let t = v.infer_type();
        if t == Type::Dynamic {
            continue;
        }
        match &found {
            None => found = Some(t),
            Some(f) if *f == t => {}
            Some(_) => return Type::Dynamic,
        }
    }
    found.unwrap_or(Type::Dynamic)
}

// Numbers compare by value, not by representation: 1 == 1.0 == "1e0", and a float compares by
// its exact binary value, as cty (big.Float) does.
impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (a, b) => match (a.to_decimal(), b.to_decimal()) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            },
        }
    }
}

impl Number {
    /// Parses decimal text (`-12`, `1.5`, `1e400`, `123456789012345678901234567890`): integers
    /// that fit i64 become `Int`, everything else keeps its exact text as `Big`.
    pub fn parse(text: &str) -> Option<Number> {
        let text = text.trim();
        Decimal::parse(text)?;
        if let Ok(i) = text.parse::<i64>() {
            return Some(Number::Int(i));
        }
        Some(Number::Big(text.to_string()))
    }

    /// None for NaN and infinities, which Terraform numbers cannot hold.
    pub fn from_f64(f: f64) -> Option<Number> {
        f.is_finite().then_some(Number::Float(f))
    }

    pub fn from_u64(u: u64) -> Number {
        i64::try_from(u).map_or_else(|_| Number::Big(u.to_string()), Number::Int)
    }

    /// Nearest f64; None when the number is beyond f64's range.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Number::Int(i) => Some(*i as f64),
            Number::Float(f) => Some(*f),
            Number::Big(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        }
    }

    /// Exact integer value, when the number is an integer within i128.
    pub fn as_i128(&self) -> Option<i128> {
        match self {
            Number::Int(i) => Some(i128::from(*i)),
            _ => self.to_decimal()?.to_i128(),
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            _ => self.as_i128().and_then(|i| i64::try_from(i).ok()),
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        self.as_i128().and_then(|i| u64::try_from(i).ok())
    }

    pub fn is_integer(&self) -> bool {
        match self {
            Number::Int(_) => true,
            _ => self.to_decimal().is_some_and(|d| d.is_integer()),
        }
    }

    /// Scientific text of the exact value (`-1.25e3`, `0`); valid for JSON and cty.
    pub fn canonical_text(&self) -> String {
        let Some(d) = self.to_decimal() else { return self.to_string() };
        let Some((first, rest)) = d.digits.split_first() else { return "0".to_string() };
        let sign = if d.negative { "-" } else { "" };
        let rest: String = rest.iter().map(|b| char::from(b'0' + b)).collect();
        let dot = if rest.is_empty() { "" } else { "." };
        format!("{sign}{first}{dot}{rest}e{}", d.exp - 1)
    }

    fn to_decimal(&self) -> Option<Decimal> {
        match self {
            Number::Int(i) => Some(Decimal::from_i128(i128::from(*i))),
            Number::Float(f) => Decimal::from_f64(*f),
            Number::Big(s) => Decimal::parse(s.trim()),
        }
    }
}

/// Decimal text that cty parses back to the same value (Rust's float formatting is shortest
/// round-trip, so a Float prints as the decimal that denotes exactly that f64 after rounding).
impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) if x.fract() == 0.0 && x.abs() < 1e21 => write!(f, "{x:.0}"),
            Number::Float(x) if x.abs() >= 1e21 || x.abs() < 1e-6 => write!(f, "{x:e}"),
            Number::Float(x) => write!(f, "{x}"),
            Number::Big(s) => f.write_str(s.trim()),
        }
    }
}

/// Canonical exact decimal: value = 0.d1d2d3... × 10^exp, digits without leading or trailing
/// zeros (empty for zero). Two equal numbers have equal `Decimal`s.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl Decimal {
    fn new(negative: bool, mut digits: Vec<u8>, mut exp: i64) -> Decimal {
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..leading);
        exp -= leading as i64;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Decimal { negative: false, digits, exp: 0 };
        }
        Decimal { negative, digits, exp }
    }

    /// `[+-]digits[.digits][(e|E)[+-]digits]`; None for anything else (inf, nan, hex).
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let exp10: i64 = match exponent {
            Some(e) if !e.is_empty() && e.trim_start_matches(['+', '-']).bytes().all(|b| b.is_ascii_digit()) => {
                e.parse().ok()?
            }
            Some(_) => return None,
            None => 0,
        };
        let digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).map(|b| b - b'0').collect();
        Some(Decimal::new(negative, digits, exp10.checked_add(int_part.len() as i64)?))
    }

    fn from_i128(i: i128) -> Decimal {
        let digits: Vec<u8> = i.unsigned_abs().to_string().bytes().map(|b| b - b'0').collect();
        let len = digits.len() as i64;
        Decimal::new(i < 0, digits, len)
    }

    /// The exact value of the f64 (every finite binary float is a finite decimal).
    fn from_f64(f: f64) -> Option<Decimal> {
        if !f.is_finite() {
            return None;
        }
        let bits = f.to_bits();
        let negative = bits >> 63 == 1;
        let biased = ((bits >> 52) & 0x7ff) as i64;
        let fraction = bits & ((1 << 52) - 1);
        let (mantissa, exp2) = if biased == 0 { (fraction, -1074) } else { (fraction | (1 << 52), biased - 1075) };
        let mut big = BigUint::from_u64(mantissa);
        // value = mantissa × 2^exp2; for negative exp2 use 2^-k = 5^k / 10^k.
        let exp10 = if exp2 >= 0 {
            big.mul_pow(2, exp2 as u32);
            0
        } else {
            big.mul_pow(5, (-exp2) as u32);
            exp2
        };
        let digits = big.to_digits();
        let len = digits.len() as i64;
        Some(Decimal::new(negative, digits, len + exp10))
    }

    fn is_integer(&self) -> bool {
        self.digits.len() as i64 <= self.exp
    }

    fn to_i128(&self) -> Option<i128> {
        if !self.is_integer() || self.exp > 39 {
            return None;
        }
        let mut acc: i128 = 0;
        for i in 0..self.exp as usize {
            let d = i128::from(self.digits.get(i).copied().unwrap_or(0));
            acc = acc.checked_mul(10)?.checked_add(d)?;
        }
        Some(if self.negative { -acc } else { acc })
    }
}

/// Just enough unsigned big-integer arithmetic to expand a float exactly.
struct BigUint {
    /// Base 10^9, least significant limb first.
    limbs: Vec<u32>,
}

impl BigUint {
    const BASE: u64 = 1_000_000_000;

    fn from_u64(mut n: u64) -> BigUint {
        let mut limbs = Vec::new();
        while n > 0 {
            limbs.push((n % Self::BASE) as u32);
            n /= Self::BASE;
        }
        BigUint { limbs }
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.limbs {
            let x = u64::from(*limb) * u64::from(m) + carry;
            *limb = (x % Self::BASE) as u32;
            carry = x / Self::BASE;
        }
        while carry > 0 {
            self.limbs.push((carry % Self::BASE) as u32);
            carry /= Self::BASE;
        }
    }

    /// self *= base^exp, for base 2 or 5, in chunks that keep the multiplier below 2^32.
    fn mul_pow(&mut self, base: u32, mut exp: u32) {
        let chunk = if base == 2 { 31 } else { 13 };
        while exp > 0 {
            let step = exp.min(chunk);
            self.mul_small(base.pow(step));
            exp -= step;
        }
    }

    fn to_digits(&self) -> Vec<u8> {
        let mut text = String::new();
        for (i, limb) in self.limbs.iter().rev().enumerate() {
            if i == 0 {
                text.push_str(&limb.to_string());
            } else {
                text.push_str(&format!("{limb:09}"));
            }
        }
        text.bytes().map(|b| b - b'0').collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(Number::Int(1), Number::Float(1.0));
        assert_eq!(Number::Int(-7), Number::Big("-7.000".into()));
        assert_eq!(Number::Float(1e20), Number::Big("100000000000000000000".into()));
        assert_eq!(Number::Float(1.5), Number::Big("15e-1".into()));
        assert_eq!(Number::Big("1e400".into()), Number::Big("10e399".into()));
        assert_ne!(Number::Big("1e400".into()), Number::Big("1e401".into()));
        assert_ne!(Number::Int(1), Number::Float(1.5));
        // 0.1 as f64 is not exactly one tenth, as in cty.
        assert_ne!(Number::Float(0.1), Number::Big("0.1".into()));
        assert_eq!(Number::Int(0), Number::Big("-0.0".into()));
        assert_eq!(Number::from_u64(u64::MAX), Number::Big("18446744073709551615".into()));
    }

    #[test]
    fn number_conversions() {
        assert_eq!(Number::parse("42"), Some(Number::Int(42)));
        assert!(matches!(Number::parse("123456789012345678901234567890"), Some(Number::Big(_))));
        assert_eq!(Number::parse("abc"), None);
        assert_eq!(Number::parse("inf"), None);
        assert_eq!(Number::Float(3.0).as_i64(), Some(3));
        assert_eq!(Number::Float(3.5).as_i64(), None);
        assert_eq!(Number::Big("18446744073709551615".into()).as_u64(), Some(u64::MAX));
        assert_eq!(Number::Big("1e400".into()).as_f64(), None);
        assert_eq!(Number::Big("1e400".into()).as_i64(), None);
        assert_eq!(Number::Float(1e20).to_string(), "100000000000000000000");
        assert_eq!(Number::Float(1.5).to_string(), "1.5");
        assert_eq!(Number::Float(5e-324), Number::Float(5e-324));
        assert!(Number::Float(f64::MAX).is_integer());
        assert_eq!(Number::Big("+.0125".into()).canonical_text(), "1.25e-2");
        assert_eq!(Number::Int(-1250).canonical_text(), "-1.25e3");
    }

    #[test]
    fn sets_compare_without_order() {
        let a = Value::Set(vec![Value::string("a"), Value::string("b")]);
        let b = Value::Set(vec![Value::string("b"), Value::string("a")]);
        assert_eq!(a, b);
        assert_ne!(
            Value::List(vec![Value::string("a"), Value::string("b")]),
            Value::List(vec![Value::string("b"), Value::string("a")])
        );
    }
}

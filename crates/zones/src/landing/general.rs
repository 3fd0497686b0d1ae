//! The general path: any JSON text, read with serde_json, which also names
//! what is wrong (the field, the position). It makes the two lossless value
//! repairs ([`Repair::IntegralFloat`], [`Repair::NumberAsString`]) and
//! refuses a duplicate key. The flat scanner (`super::flat`) must agree with
//! it wherever the scanner takes a line.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::columns::Cell;
use super::{LineError, Repair, RepairSet};
use crate::quarantine::QuarantineReason;
use crate::schema::{ColumnType, LandingSchema};

/// Reads one JSON text (one record) into `cells` (one per schema column, in
/// schema order), noting the value repairs it made in `repairs`. On error,
/// the reason and a detail naming the field and position.
pub(crate) fn parse_with_serde<'a>(
    schema: &LandingSchema,
    text: &'a str,
    cells: &mut Vec<Cell<'a>>,
    repairs: &mut RepairSet,
) -> Result<(), LineError> {
    cells.clear();
    cells.resize(schema.columns.len(), Cell::Absent);
    let mut de = serde_json::Deserializer::from_str(text);
    let mut state = RowState {
        schema,
        cells,
        repairs,
        saw_object: false,
        bad_field: None,
        duplicate: false,
    };
    let parsed = (&mut de)
        .deserialize_any(RowVisitor { state: &mut state })
        .and_then(|()| de.end());
    if let Err(e) = parsed {
        let reason = match e.classify() {
            serde_json::error::Category::Data if state.duplicate => QuarantineReason::DuplicateKey,
            serde_json::error::Category::Data if !state.saw_object => QuarantineReason::NotAnObject,
            serde_json::error::Category::Data => QuarantineReason::WrongType,
            _ => QuarantineReason::MalformedJson,
        };
        let detail = match state.bad_field.take() {
            Some(field) => format!("field `{field}`: {e}"),
            None => e.to_string(),
        };
        return Err((reason, detail));
    }
    Ok(())
}

struct RowState<'s, 'c, 'r, 'a> {
    schema: &'s LandingSchema,
    cells: &'c mut Vec<Cell<'a>>,
    repairs: &'r mut RepairSet,
    saw_object: bool,
    bad_field: Option<String>,
    duplicate: bool,
}

struct RowVisitor<'v, 's, 'c, 'r, 'a> {
    state: &'v mut RowState<'s, 'c, 'r, 'a>,
}

impl<'de> Visitor<'de> for RowVisitor<'_, '_, '_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.state;
        state.saw_object = true;
        while let Some(key) = map.next_key::<StrCow<'de>>()? {
            // Keys match case-insensitively, as Athena's OpenX JSON SerDe does:
            // `timeStamp` in older accelerometer files is `timestamp`.
            let columns = &state.schema.columns;
            let exact = columns.iter().position(|c| c.name == key.0);
            let Some(index) = exact.or_else(|| {
                columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(&key.0))
            }) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let column = &columns[index];
            if !matches!(state.cells[index], Cell::Absent) {
                // Never last-wins: which of the two values is meant is a guess.
                state.bad_field = Some(column.name.clone());
                state.duplicate = true;
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{}` (keys compare case-insensitively)",
                    key.0
                )));
            }
            let value = match column.ty {
                ColumnType::String => map
                    .next_value::<Option<&'de RawValue>>()
                    .and_then(|raw| raw.map(|r| string_cell(r.get(), state.repairs)).transpose()),
                ColumnType::BigInt | ColumnType::Int => {
                    map.next_value::<Option<&'de RawValue>>().and_then(|raw| {
                        raw.map(|r| integer_cell(r.get(), column.ty, state.repairs))
                            .transpose()
                    })
                }
                ColumnType::Double => map.next_value::<Option<f64>>().map(|v| v.map(Cell::Float)),
            };
            match value {
                Ok(v) => state.cells[index] = v.unwrap_or(Cell::Null),
                Err(e) => {
                    state.bad_field = Some(column.name.clone());
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// What a JSON value that is not the expected kind is, for the error.
fn unexpected<E: de::Error>(raw: &str, expected: &str) -> E {
    let text;
    let found = match raw.as_bytes().first() {
        Some(b'"') => {
            text = serde_json::from_str::<String>(raw).unwrap_or_default();
            de::Unexpected::Str(&text)
        }
        Some(b't') => de::Unexpected::Bool(true),
        Some(b'f') => de::Unexpected::Bool(false),
        Some(b'{') => de::Unexpected::Map,
        Some(b'[') => de::Unexpected::Seq,
        // A number as written: a double would show `…0.0000001` rounded away.
        _ if raw.bytes().any(|c| matches!(c, b'.' | b'e' | b'E')) => {
            text = format!("floating point `{raw}`");
            de::Unexpected::Other(&text)
        }
        _ => {
            text = format!("integer `{raw}` (out of range)");
            de::Unexpected::Other(&text)
        }
    };
    E::invalid_type(found, &expected)
}

/// A `string` column's value: a string as it is; a number or a boolean as
/// its JSON text (`5550100000` -> "5550100000"), a [`Repair::NumberAsString`].
fn string_cell<'de, E: de::Error>(raw: &'de str, repairs: &mut RepairSet) -> Result<Cell<'de>, E> {
    match raw.as_bytes()[0] {
        b'"' => {
            let inner = &raw[1..raw.len() - 1];
            if inner.contains('\\') {
                let s: String = serde_json::from_str(raw).map_err(E::custom)?;
                Ok(Cell::Str(Cow::Owned(s)))
            } else {
                Ok(Cell::Str(Cow::Borrowed(inner)))
            }
        }
        b'-' | b'0'..=b'9' | b't' | b'f' => {
            repairs.insert(Repair::NumberAsString);
            Ok(Cell::Str(Cow::Borrowed(raw)))
        }
        _ => Err(unexpected(raw, "a string")),
    }
}

/// A `bigint` or `int` column's value: an integer literal in range; or a
/// number written as a float whose value is exactly an integer in range
/// (`1655564100000.0`, `1.6555641E12`), a [`Repair::IntegralFloat`]. Anything
/// else (a fraction, out of range, a string) is an error.
fn integer_cell<'de, E: de::Error>(
    raw: &str,
    ty: ColumnType,
    repairs: &mut RepairSet,
) -> Result<Cell<'de>, E> {
    if !matches!(raw.as_bytes()[0], b'-' | b'0'..=b'9') {
        return Err(unexpected(raw, "i64"));
    }
    let (value, float_literal) = exact_integer(raw).ok_or_else(|| unexpected(raw, "i64"))?;
    if ty == ColumnType::Int && i32::try_from(value).is_err() {
        return Err(E::invalid_value(
            de::Unexpected::Signed(value),
            &"a 32-bit integer",
        ));
    }
    if float_literal {
        repairs.insert(Repair::IntegralFloat);
    }
    Ok(Cell::Int(value))
}

/// The exact value of a JSON number literal when it is an integer within
/// i64, computed from its digits (not through a double, which would round),
/// and whether it was written with a fraction or an exponent. None when the
/// value has a fractional part or does not fit.
pub(crate) fn exact_integer(literal: &str) -> Option<(i64, bool)> {
    let b = literal.as_bytes();
    let negative = b.first() == Some(&b'-');
    let mut i = usize::from(negative);
    let mut digits: Vec<u8> = Vec::with_capacity(b.len());
    while let Some(&d @ b'0'..=b'9') = b.get(i) {
        digits.push(d);
        i += 1;
    }
    let mut fraction = 0i64;
    let mut float_literal = false;
    if b.get(i) == Some(&b'.') {
        float_literal = true;
        i += 1;
        while let Some(&d @ b'0'..=b'9') = b.get(i) {
            digits.push(d);
            fraction += 1;
            i += 1;
        }
    }
    let mut exponent = 0i64;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        float_literal = true;
        i += 1;
        let negative_exponent = b.get(i) == Some(&b'-');
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        while let Some(&d @ b'0'..=b'9') = b.get(i) {
            // Saturates far beyond any exponent an i64 could need.
            exponent = (exponent * 10 + i64::from(d - b'0')).min(1_000_000);
            i += 1;
        }
        if negative_exponent {
            exponent = -exponent;
        }
    }
    if i != b.len() || digits.is_empty() {
        return None;
    }
    let first = digits.iter().position(|&d| d != b'0');
    let Some(first) = first else {
        return Some((0, float_literal));
    };
    let mut significant = &digits[first..];
    let scale = exponent - fraction;
    let mut magnitude: i128 = 0;
    if scale < 0 {
        let cut = usize::try_from(-scale).ok()?;
        if cut >= significant.len() {
            return None; // 0.x: a fraction
        }
        let (whole, rest) = significant.split_at(significant.len() - cut);
        if rest.iter().any(|&d| d != b'0') {
            return None;
        }
        significant = whole;
    }
    let zeros = scale.max(0) as usize;
    if significant.len() + zeros > 19 {
        return None;
    }
    for &d in significant {
        magnitude = magnitude * 10 + i128::from(d - b'0');
    }
    magnitude *= 10i128.pow(zeros as u32);
    let value = if negative { -magnitude } else { magnitude };
    Some((i64::try_from(value).ok()?, float_literal))
}

/// A string that borrows from the input when it has no escapes.
struct StrCow<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for StrCow<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrCow<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StrCow(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrCow(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(StrCow(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

impl<'de> DeserializeSeed<'de> for RowVisitor<'_, '_, '_, '_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

#[cfg(test)]
mod tests {
    use super::exact_integer;

    #[test]
    fn integral_floats_are_read_exactly_from_their_digits() {
        assert_eq!(exact_integer("1655564100000"), Some((1655564100000, false)));
        assert_eq!(
            exact_integer("1655564100000.0"),
            Some((1655564100000, true))
        );
        assert_eq!(exact_integer("1.6555641E12"), Some((1655564100000, true)));
        assert_eq!(
            exact_integer("16555641000000e-1"),
            Some((1655564100000, true))
        );
        assert_eq!(exact_integer("-0"), Some((0, false)));
        assert_eq!(exact_integer("-0.0"), Some((0, true)));
        assert_eq!(exact_integer("-12.000"), Some((-12, true)));
        assert_eq!(
            exact_integer("9223372036854775807"),
            Some((i64::MAX, false))
        );
        assert_eq!(
            exact_integer("-9223372036854775808"),
            Some((i64::MIN, false))
        );
        // A double would round these to an integer; the digits do not.
        assert_eq!(exact_integer("1655564100000.0000001"), None);
        assert_eq!(exact_integer("9007199254740993.5"), None);
        assert_eq!(exact_integer("1.5"), None);
        assert_eq!(exact_integer("0.5"), None);
        assert_eq!(exact_integer("9223372036854775808"), None);
        assert_eq!(exact_integer("1e19"), None);
        assert_eq!(exact_integer("1e999999999"), None);
        assert_eq!(exact_integer("0e999999999"), Some((0, true)));
    }
}

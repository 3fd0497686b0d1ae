//! The flat scanner: the fast path for the common line, one flat object of
//! plain strings, numbers and nulls, read without serde. Where it takes a
//! line it must fill the cells exactly as the serde path would; anything
//! else it leaves to that path (a property test holds the two together).

use std::borrow::Cow;

use super::columns::Cell;
use crate::schema::{ColumnType, LandingSchema};

/// The common line, without serde: one flat object whose strings have no
/// escapes and whose values are strings, numbers or null of the column's
/// type. Fills `cells` exactly as `super::general::parse_with_serde` would and returns
/// true; on anything else (escapes, nesting, booleans, a duplicate key, a
/// type mismatch, a syntax error) returns false, and the line takes the
/// general path, which also names what is wrong.
pub(crate) fn parse_flat<'a>(
    schema: &LandingSchema,
    text: &'a str,
    cells: &mut Vec<Cell<'a>>,
) -> bool {
    cells.clear();
    cells.resize(schema.columns.len(), Cell::Absent);
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    let mut guess = 0;
    if b.get(i) != Some(&b'{') {
        return false;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return skip_ws(b, i + 1) == b.len();
    }
    let columns = &schema.columns;
    loop {
        // Producers write keys in one order, usually the schema's: try the
        // column after the previous key first, in place (its name between
        // quotes: a plain name has nothing to escape), then search.
        let (index, after_key) = match columns.get(guess) {
            Some(c) if quoted_at(b, i, c.name.as_bytes()) => (Some(guess), i + c.name.len() + 2),
            _ => {
                let Some((key, after_key)) = plain_string(text, i) else {
                    return false;
                };
                let index = columns.iter().position(|c| c.name == key).or_else(|| {
                    columns
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(key))
                });
                (index, after_key)
            }
        };
        i = skip_ws(b, after_key);
        if b.get(i) != Some(&b':') {
            return false;
        }
        i = skip_ws(b, i + 1);
        guess = index.map_or(guess, |k| k + 1);
        let ty = index.map(|k| columns[k].ty);
        let (cell, next) = match b.get(i) {
            Some(b'"') => match (plain_string(text, i), ty) {
                (Some((v, next)), Some(ColumnType::String)) => (Cell::Str(Cow::Borrowed(v)), next),
                (Some((_, next)), None) => (Cell::Absent, next),
                _ => return false,
            },
            Some(b'n') if b[i..].starts_with(b"null") => (Cell::Null, i + 4),
            Some(b'-' | b'0'..=b'9') => {
                let Some((number, next)) = number(b, i) else {
                    return false;
                };
                let cell = match (ty, number) {
                    (Some(ColumnType::BigInt), Number::Int(v)) => Cell::Int(v),
                    (Some(ColumnType::Int), Number::Int(v)) if i32::try_from(v).is_ok() => {
                        Cell::Int(v)
                    }
                    (Some(ColumnType::Double), Number::Int(v)) => Cell::Float(v as f64),
                    (Some(ColumnType::Double), Number::Float(v)) => Cell::Float(v),
                    // A long mantissa or an exponent: serde_json rounds those
                    // its own way (not always as `str::parse` does), and the
                    // two paths must give the same double, so serde reads it.
                    (None, _) => Cell::Absent,
                    _ => return false,
                };
                (cell, next)
            }
            _ => return false,
        };
        if let Some(k) = index {
            if !matches!(cells[k], Cell::Absent) {
                return false; // a duplicate key: the general path decides
            }
            cells[k] = cell;
        }
        i = skip_ws(b, next);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return skip_ws(b, i + 1) == b.len(),
            _ => return false,
        }
    }
}

pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Whether `b[i..]` starts with `name` between double quotes.
fn quoted_at(b: &[u8], i: usize, name: &[u8]) -> bool {
    let end = i + name.len() + 1;
    b.get(i) == Some(&b'"') && b.get(end) == Some(&b'"') && &b[i + 1..end] == name
}

/// The JSON string starting at `text[i] == '"'` when it has no escape and
/// no control character; with the index after its closing quote.
fn plain_string(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = b[start..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    let end = start + len;
    (b[end] == b'"').then(|| (&text[start..end], end + 1))
}

/// A JSON number as [`number`] reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    /// An integer of at most 18 digits, which always fits an i64.
    Int(i64),
    /// A number without exponent whose digits, read as one integer, are
    /// below 2^53 (or `-0`, which serde_json also reads as the double -0.0):
    /// correctly rounded, since that integer and the power of ten are exact
    /// doubles and one division rounds correctly.
    Float(f64),
    /// Any other valid number: longer, or with an exponent. The scanner
    /// leaves these to serde (for a known column).
    Long,
}

/// The JSON number starting at `b[i]`, read in the same pass that checks
/// its syntax, and the index after it.
pub(crate) fn number(b: &[u8], mut i: usize) -> Option<(Number, usize)> {
    // Exact doubles, as is every integer below 2^53.
    const POWERS_OF_TEN: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let negative = b.get(i) == Some(&b'-');
    i += usize::from(negative);
    // Digits accumulate wrapping: the value is used only when there are at
    // most 19, which cannot wrap.
    let mut mantissa = 0u64;
    let digits = |i: &mut usize, mantissa: &mut u64| {
        let start = *i;
        while let Some(&d @ b'0'..=b'9') = b.get(*i) {
            *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            *i += 1;
        }
        *i - start
    };
    let integer_digits = match b.get(i) {
        Some(b'0') => {
            i += 1;
            1
        }
        Some(b'1'..=b'9') => digits(&mut i, &mut mantissa),
        _ => return None,
    };
    let mut fraction_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        fraction_digits = digits(&mut i, &mut mantissa);
        if fraction_digits == 0 {
            return None;
        }
    }
    let mut exponent = false;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        exponent = true;
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i, &mut 0) == 0 {
            return None;
        }
    }
    let total_digits = integer_digits + fraction_digits;
    let number = match (exponent, fraction_digits) {
        (false, 0) if negative && mantissa == 0 => Number::Float(-0.0),
        (false, 0) if total_digits <= 18 => {
            let magnitude = mantissa as i64;
            Number::Int(if negative { -magnitude } else { magnitude })
        }
        (false, _) if total_digits <= 19 && mantissa < 1 << 53 => {
            let magnitude = mantissa as i64 as f64 / POWERS_OF_TEN[fraction_digits];
            Number::Float(if negative { -magnitude } else { magnitude })
        }
        _ => Number::Long,
    };
    Some((number, i))
}

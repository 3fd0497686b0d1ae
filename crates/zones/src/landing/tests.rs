//! The flat scanner against the serde path, and the slow path's splitting.

use proptest::prelude::*;

use super::flat::{Number, number, parse_flat};
use super::general::parse_with_serde;
use super::*;
use crate::schema::{ColumnType, Dataset};

/// Where the flat path takes a line, it must fill the cells exactly as serde does.
fn agree(dataset: Dataset, line: &str) -> bool {
    let schema = dataset.landing_schema();
    let (mut flat, mut general) = (Vec::new(), Vec::new());
    let taken = parse_flat(schema, line, &mut flat);
    let mut repairs = RepairSet::default();
    let by_serde = parse_with_serde(schema, line, &mut general, &mut repairs);
    if taken {
        assert!(by_serde.is_ok(), "flat accepted what serde rejects: {line}");
        assert_eq!(flat, general, "{line}");
        assert_eq!(
            repairs,
            RepairSet::default(),
            "flat took a line serde repairs: {line}"
        );
    }
    taken
}

#[test]
fn numbers_read_in_the_scan_equal_the_standard_parse() {
    let exact = |literal: &str| {
        let (number, end) = number(literal.as_bytes(), 0).expect("a JSON number");
        assert_eq!(end, literal.len(), "{literal}");
        let expected: f64 = literal.parse().expect("a number");
        match number {
            Number::Int(v) => assert_eq!(v, literal.parse::<i64>().expect("an integer")),
            Number::Float(v) => assert_eq!(v.to_bits(), expected.to_bits(), "{literal}"),
            Number::Long => {}
        }
        number
    };
    assert_eq!(exact("1655582000264"), Number::Int(1655582000264));
    assert_eq!(exact("-12"), Number::Int(-12));
    assert_eq!(
        exact("999999999999999999"),
        Number::Int(999_999_999_999_999_999)
    );
    assert_eq!(exact("1000000000000000000"), Number::Long);
    assert_eq!(exact("-0"), Number::Float(-0.0));
    assert_eq!(exact("-0.0"), Number::Float(-0.0));
    assert_eq!(exact("1.0"), Number::Float(1.0));
    assert_eq!(exact("0.1"), Number::Float(0.1));
    assert_eq!(exact("2.5e-3"), Number::Long);
    assert_eq!(exact("0.123456789012345"), Number::Float(0.123456789012345));
    assert_eq!(
        exact("0.1234567890123456"),
        Number::Float(0.1234567890123456)
    );
    assert_eq!(exact("9007199254740993.5"), Number::Long);
    // Decimals of up to 15 digits round as the standard parse does.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..100_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let digits = (state % 15 + 1) as usize;
        let point = (state >> 8) as usize % digits;
        let value = format!("{:0digits$}", (state >> 16) % 10u64.pow(digits as u32));
        let sign = if state & 1 == 0 { "-" } else { "" };
        let (whole, fraction) = value.split_at(point + 1);
        let whole = whole.trim_start_matches('0');
        let whole = if whole.is_empty() { "0" } else { whole };
        let literal = format!("{sign}{whole}.{fraction}");
        let literal = literal.trim_end_matches('.');
        exact(literal);
    }
    for malformed in ["-", "1.", ".5", "01", "1e", "1e+", "+1"] {
        let taken = number(malformed.as_bytes(), 0);
        assert!(
            taken.is_none_or(|(_, end)| end < malformed.len()),
            "{malformed}"
        );
    }
}

#[test]
fn the_flat_path_agrees_with_serde_or_steps_aside() {
    let a = Dataset::Accelerometer;
    let taken = [
        r#"{"user":"a@b.c","timestamp":1655564444103,"x":-0.5,"y":1,"z":0.0025}"#,
        r#" { "user" : "a@b.c" , "timeStamp" : 0 , "x" : -0 , "y" : 100.0 , "z" : 0.0 } "#,
        r#"{"user":"ünï","timestamp":-12,"x":1.5,"y":null,"z":3,"extra":"ignored","n":7}"#,
        r#"{}"#,
        r#"{"user":null}"#,
    ];
    for line in taken {
        assert!(agree(a, line), "the flat path should take {line}");
    }
    let stepped_aside = [
        r#"{"user":"a\"b","timestamp":1,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1.5,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":"1","x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1,"user":"b"}"#,
        r#"{"user":"a","timestamp":1,"x":true,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1,"more":{"a":1}}"#,
        r#"{"user":"a","timestamp":01,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":-0,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1234567890123456789,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1,"x":1e999,"y":1,"z":1}"#,
        // Exponents and long mantissas: serde_json's rounding decides.
        r#"{"user":"a","timestamp":1,"x":1,"y":1E2,"z":1}"#,
        r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":2.5e-3}"#,
        r#"{"user":"a","timestamp":1,"x":0.1234567890123456789,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1} x"#,
        r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1,}"#,
        r#"{"user":"a","timestamp":1,"x":-,"y":1,"z":1}"#,
        r#"{"user":"a"  "timestamp":1}"#,
        r#"[1,2]"#,
        r#"{"user":"a","timestamp":1,"x":1.,"y":1,"z":1}"#,
        "{\"user\":\"tab\there\",\"timestamp\":1,\"x\":1,\"y\":1,\"z\":1}",
        r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1"#,
    ];
    for line in stepped_aside {
        assert!(
            !agree(a, line),
            "the flat path should leave {line} to serde"
        );
    }
    // An int column out of 32-bit range steps aside too (serde names the field).
    let customer = Dataset::Customer.landing_schema();
    let int_column = customer.columns.iter().find(|c| c.ty == ColumnType::Int);
    if let Some(c) = int_column {
        let line = format!(r#"{{"{}":3000000000}}"#, c.name);
        assert!(!agree(Dataset::Customer, &line), "{line}");
    }
}

/// A line's records as the driver reads it: the flat scanner first (with
/// `flat`), else the slow path; without `flat`, serde reads every record.
fn line_records<'a>(dataset: Dataset, text: &'a str, flat: bool) -> Vec<Record<'a>> {
    let schema = dataset.landing_schema();
    let mut cells = Vec::new();
    if flat && parse_flat(schema, text, &mut cells) {
        return vec![Record {
            cells: required(schema, &cells).map(|()| cells),
            repairs: RepairSet::default(),
            raw: text,
        }];
    }
    slow_records(schema, text, flat)
}

/// The text of a JSON value for a column of type `ty`: mostly of its type,
/// sometimes of another (a string for a number, a float for an integer,
/// null, a nested value), so both paths meet every kind.
fn value(ty: ColumnType) -> BoxedStrategy<String> {
    let plain = "[a-zA-Z0-9@._ -]{0,12}".prop_map(|s| format!("\"{s}\""));
    let escaped =
        "[a-z\"\\\\\n\u{e9}\u{1F600}]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap());
    let int = prop_oneof![
        (-1000i64..1000).prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        (1_600_000_000_000i64..1_700_000_000_000).prop_map(|v| v.to_string()),
    ];
    let float = prop_oneof![
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("{v:?}")),
        (-1000i32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        (1_600_000_000_000i64..1_700_000_000_000).prop_map(|v| format!("{v}.0")),
        (1u32..10, 0u32..100, 0u32..15).prop_map(|(a, b, e)| format!("{a}.{b}E{e}")),
    ];
    let other = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just(r#"{"a":[1,{"b":"}"}]}"#.to_string()),
        Just("[1,2]".to_string()),
    ];
    let own = match ty {
        ColumnType::String => prop_oneof![8 => plain, 1 => escaped].boxed(),
        ColumnType::BigInt | ColumnType::Int => int.boxed(),
        ColumnType::Double => {
            prop_oneof![float, (-1000i64..1000).prop_map(|v| v.to_string())].boxed()
        }
    };
    let plain = "[a-z0-9]{0,8}".prop_map(|s| format!("\"{s}\""));
    let int = (-1000i64..1000).prop_map(|v| v.to_string());
    prop_oneof![40 => own, 1 => plain, 1 => int, 1 => other].boxed()
}

/// One JSON object of `dataset`: its columns (some left out, some keys in
/// another case, some repeated), in schema order or shuffled, with values
/// from [`value`] and sometimes an extra key.
fn object(dataset: Dataset) -> BoxedStrategy<String> {
    let schema = dataset.landing_schema();
    let fields: Vec<BoxedStrategy<Option<(String, String)>>> = schema
        .columns
        .iter()
        .map(|c| {
            let name = c.name.clone();
            let key = prop_oneof![
                8 => Just(name.clone()),
                1 => Just(name.to_ascii_lowercase()),
                1 => Just(name.to_ascii_uppercase()),
            ];
            prop::option::weighted(0.93, (key, value(c.ty))).boxed()
        })
        .collect();
    let extra = prop::option::weighted(0.1, ("[a-zA-Z]{1,6}", value(ColumnType::String)));
    let repeat = prop::option::weighted(0.05, any::<prop::sample::Index>());
    (fields, extra, repeat, any::<bool>(), " {0,1}")
        .prop_map(|(fields, extra, repeat, shuffle, ws)| {
            let mut pairs: Vec<(String, String)> = fields.into_iter().flatten().collect();
            pairs.extend(extra);
            if let (Some(index), false) = (repeat, pairs.is_empty()) {
                let again = pairs[index.index(pairs.len())].clone();
                pairs.push(again);
            }
            if shuffle {
                pairs.reverse();
            }
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("\"{k}\"{ws}:{ws}{v}"))
                .collect();
            format!("{{{ws}{}{ws}}}", body.join(&format!("{ws},{ws}")))
        })
        .boxed()
}

/// A byte-level mutation of a line.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(prop::sample::Index, &'static str),
    Delete(prop::sample::Index),
    Cut(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let inserted = prop::sample::select(vec![
        ",", "\u{feff}", "\r", "{", "}", "\"", " ", ":", "\\", "0", ".", "e", "-", "{}", "}{",
    ]);
    prop_oneof![
        4 => (any::<prop::sample::Index>(), inserted).prop_map(|(i, s)| Mutation::Insert(i, s)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Delete),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Cut),
    ]
}

fn mutate(line: &str, mutations: &[Mutation]) -> String {
    let mut bytes = line.as_bytes().to_vec();
    for m in mutations {
        match m {
            Mutation::Insert(at, s) => {
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, s.bytes());
            }
            Mutation::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at.index(bytes.len()));
            }
            Mutation::Cut(at) => bytes.truncate(at.index(bytes.len() + 1)),
            Mutation::Delete(_) => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Lines of every dataset: one generated object as a rule, or two or three
/// (back to back, or with whitespace between), perhaps a trailing comma,
/// and half of them then given one to four byte mutations.
fn line() -> impl Strategy<Value = (Dataset, String)> {
    prop::sample::select(Dataset::ALL.to_vec()).prop_flat_map(|dataset| {
        let objects = prop_oneof![
            3 => prop::collection::vec(object(dataset), 1..=1),
            1 => prop::collection::vec(object(dataset), 2..=3),
        ];
        let separator = prop::sample::select(vec!["", " ", "\t"]);
        let tail = prop::sample::select(vec!["", "", "", ",", " , ", ",\u{a0}", ",\u{feff}"]);
        let mutations = prop_oneof![
            1 => Just(Vec::new()),
            1 => prop::collection::vec(mutation(), 1..=4),
        ];
        (objects, separator, tail, mutations).prop_map(move |(objects, sep, tail, mutations)| {
            let line = format!("{}{tail}", objects.join(sep));
            (dataset, mutate(&line, &mutations))
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// The scanner is only a faster serde: on generated and mutated lines,
    /// the records read with it equal the records serde reads alone (the
    /// same rows, or the same quarantine with the same detail).
    #[test]
    fn the_flat_scanner_gives_what_serde_gives((dataset, line) in line()) {
        let with_scanner = line_records(dataset, &line, true);
        let serde_only = line_records(dataset, &line, false);
        prop_assert_eq!(with_scanner, serde_only, "{}", line);
    }
}

/// The generator reaches both paths and both outcomes, so the property above
/// compares something: most unmutated single objects take the flat path,
/// and mutated lines are both kept and quarantined.
#[test]
fn the_generated_lines_reach_both_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut flat_taken, mut kept, mut quarantined, mut repaired) = (0, 0, 0, 0);
    for _ in 0..2000 {
        let (dataset, line) = line().new_tree(&mut runner).unwrap().current();
        let schema = dataset.landing_schema();
        flat_taken += usize::from(parse_flat(schema, &line, &mut Vec::new()));
        for record in line_records(dataset, &line, true) {
            kept += usize::from(record.cells.is_ok());
            quarantined += usize::from(record.cells.is_err());
            repaired += usize::from(record.repairs != RepairSet::default());
        }
    }
    // Seen: flat 128, kept 615, quarantined 1934, repaired 1353.
    assert!(flat_taken > 80, "flat path taken {flat_taken} times");
    assert!(
        kept > 300 && quarantined > 300,
        "kept {kept}, quarantined {quarantined}"
    );
    assert!(repaired > 300, "repaired {repaired}");
}

#[test]
fn a_line_splits_into_its_complete_objects_or_stays_whole() {
    fn split(text: &str) -> (Vec<&str>, bool) {
        let (ranges, comma) = split_objects(text);
        let parts = ranges.into_iter().map(|r| &text[r]).collect();
        (parts, comma)
    }
    assert_eq!(split(r#"{"a":1}"#), (vec![r#"{"a":1}"#], false));
    assert_eq!(split(r#"{"a":1},"#), (vec![r#"{"a":1}"#], true));
    assert_eq!(split(r#" {"a":1} , "#), (vec![r#" {"a":1}"#], true));
    assert_eq!(
        split(r#"{"a":"}{"}{"b":[{}]} {"c":"\"}"}"#),
        (
            vec![r#"{"a":"}{"}"#, r#"{"b":[{}]}"#, r#" {"c":"\"}"}"#],
            false
        )
    );
    assert_eq!(
        split(r#"{"a":1}{"b":2},"#),
        (vec![r#"{"a":1}"#, r#"{"b":2}"#], true)
    );
    // Not a run of complete objects: the whole line, for serde to name.
    for whole in [
        r#"{"a":1},{"b":2}"#,
        r#"{"a":1},,"#,
        r#"{"a":1} x"#,
        r#"{"a":1"#,
        r#"[1,2]"#,
        r#"{"a":1}}"#,
        r#"x{"a":1}"#,
    ] {
        assert_eq!(split(whole), (vec![whole], false), "{whole}");
    }
}

/// An object's stored bytes: lines from [`line`] (some blank, some with
/// `\r`, one perhaps not UTF-8), perhaps a BOM first, perhaps no final
/// newline; stored plain, gzip- or zstd-compressed, or compressed and cut
/// off before its end. Returns the key (its extension names the
/// compression) and the bytes.
fn stored_object() -> impl Strategy<Value = (Dataset, String, Vec<u8>)> {
    prop::sample::select(Dataset::ALL.to_vec()).prop_flat_map(|dataset| {
        let one_line = prop_oneof![
            6 => line().prop_map(|(_, l)| l.into_bytes()),
            6 => object(dataset).prop_map(String::into_bytes),
            1 => Just(b"  ".to_vec()),
            1 => Just(Vec::new()),
            1 => Just(b"{\"user\":\"\xff\"}".to_vec()),
        ];
        let lines = prop::collection::vec((one_line, any::<bool>()), 0..24);
        let storage = prop::sample::select(vec!["plain", "gz", "zst", "gz cut", "zst cut"]);
        (
            lines,
            any::<bool>(),
            any::<bool>(),
            storage,
            any::<prop::sample::Index>(),
        )
            .prop_map(move |(lines, bom, final_newline, storage, cut)| {
                let mut text = Vec::new();
                if bom {
                    text.extend_from_slice("\u{feff}".as_bytes());
                }
                for (n, (line, crlf)) in lines.iter().enumerate() {
                    text.extend_from_slice(line);
                    if n + 1 < lines.len() || final_newline {
                        text.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
                    }
                }
                let (key, mut bytes) = match storage {
                    "plain" => ("o.json", text),
                    s if s.starts_with("gz") => ("o.json.gz", {
                        use std::io::Write;
                        let mut e =
                            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                        e.write_all(&text).unwrap();
                        e.finish().unwrap()
                    }),
                    _ => ("o.json.zst", zstd::encode_all(&text[..], 1).unwrap()),
                };
                if storage.ends_with("cut") {
                    bytes.truncate(cut.index(bytes.len()));
                }
                (dataset, key.to_string(), bytes)
            })
    })
}

/// Feeds `bytes` in pieces of the sizes `pieces` (cycled), taking the rows
/// and quarantine built so far after the pieces `take` marks; returns the
/// whole result, the taken parts put back together.
fn fed_in_pieces(
    dataset: Dataset,
    key: &str,
    bytes: &[u8],
    pieces: &[usize],
    take: &[bool],
) -> JudgedObject {
    let mut parser = ObjectParser::new(dataset, key, &[]);
    let (mut rows, mut quarantined) = (empty_rows(dataset), Vec::new());
    let mut at = 0;
    for (n, size) in pieces.iter().cycle().enumerate() {
        if at >= bytes.len() {
            break;
        }
        let end = bytes.len().min(at + size);
        parser.feed(&bytes[at..end]);
        at = end;
        if take[n % take.len()] {
            rows.vstack_mut_owned(parser.take_rows().remove(0)).unwrap();
            quarantined.extend(parser.take_quarantined());
            assert_eq!(parser.buffered_rows(), 0);
        }
    }
    let mut judged = parser.finish();
    rows.vstack_mut_owned(judged.rows.remove(0)).unwrap();
    quarantined.append(&mut judged.quarantined);
    judged.rows.insert(0, rows);
    judged.quarantined = quarantined;
    judged
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Pieces of any size, from one byte up, and rows taken at any point,
    /// give what the whole object parsed at once gives: the same rows, the
    /// same quarantine (line numbers, details and raw text), the same record
    /// count and repairs.
    #[test]
    fn the_piece_size_does_not_change_the_parse(
        (dataset, key, bytes) in stored_object(),
        pieces in prop::collection::vec(1usize..48, 1..6),
        take in prop::collection::vec(any::<bool>(), 1..4),
    ) {
        let whole = read_judged(dataset, &key, &bytes, &[]);
        let fed = fed_in_pieces(dataset, &key, &bytes, &pieces, &take);
        prop_assert!(whole.rows[0].equals_missing(&fed.rows[0]), "{:?} {:?}", whole.rows[0], fed.rows[0]);
        prop_assert_eq!(&whole.quarantined, &fed.quarantined);
        prop_assert_eq!(&whole.counts, &fed.counts);
        let counts = &whole.counts[0];
        prop_assert!(counts.is_balanced());
        prop_assert_eq!(counts.kept, whole.rows[0].height() as u64);
        prop_assert_eq!(counts.quarantined_total(), whole.quarantined.len() as u64);
    }
}

/// One byte at a time, on an object with every repair, a bad line, a
/// record longer than the pieces, and no final newline.
#[test]
fn one_byte_pieces_give_the_whole_parse() {
    let long = format!(
        "{{\"user\":\"{}@x\",\"timestamp\":1655564200000,\"x\":1,\"y\":2,\"z\":3}}",
        "a".repeat(5000)
    );
    let text = format!(
        "\u{feff}{{\"user\":\"a@x\",\"timestamp\":1655564200000.0,\"x\":1,\"y\":2,\"z\":3}}\r\n\n  \n{long}\n{{\"user\":\"b@x\"}}{{\"user\":\"c@x\",\"timestamp\":1,\"x\":1,\"y\":2,\"z\":3}},\n\u{ff}\n{{\"user\":\"d@x\",\"timestamp\":2"
    );
    let mut bytes = text.into_bytes();
    // U+00FF above (0xc3 0xbf) becomes the byte 0xff, not UTF-8.
    let bad = bytes.windows(2).position(|w| w == [0xc3, 0xbf]).unwrap();
    bytes.splice(bad..bad + 2, [0xff]);
    let whole = read_judged(Dataset::Accelerometer, "o.json", &bytes, &[]);
    let fed = fed_in_pieces(
        Dataset::Accelerometer,
        "o.json",
        &bytes,
        &[1],
        &[false, true],
    );
    assert!(whole.rows[0].equals_missing(&fed.rows[0]));
    assert_eq!(whole.quarantined, fed.quarantined);
    assert_eq!(whole.counts, fed.counts);
    assert_eq!(whole.rows[0].height(), 3, "{:?}", whole.rows[0]);
    let lines: Vec<_> = whole
        .quarantined
        .iter()
        .map(|q| (q.line, q.reason.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (Some(5), "missing_field"),
            (Some(6), "invalid_utf8"),
            (Some(7), "malformed_json"),
        ]
    );
    let counts = &whole.counts[0];
    assert_eq!(
        (counts.input, counts.kept, counts.quarantined_total()),
        (6, 3, 3)
    );
    assert_eq!(
        counts.repaired,
        BTreeMap::from(
            [
                ("bom", 1),
                ("crlf", 1),
                ("blank_lines", 2),
                ("trailing_comma", 1),
                ("concatenated_objects", 2),
                ("integral_float", 1),
            ]
            .map(|(k, n)| (k.to_string(), n))
        )
    );
}

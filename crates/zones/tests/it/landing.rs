use zones::Dataset;
use zones::landing::{QuarantineReason, parse_object, quarantine_frame, read_object};

use crate::support::canonical;

#[test]
fn valid_lines_become_typed_rows_and_case_insensitive_keys_match() {
    let input = concat!(
        r#"{"user":"a@x.com","timestamp":1000,"x":1.0,"y":-1,"z":0.5}"#,
        "\n\n",
        r#"{"user":"b@x.com","timeStamp":2000,"x":0.0,"y":0.0,"z":0.0,"extra":"ignored"}"#,
        "\r\n"
    );
    let parsed = parse_object(
        Dataset::Accelerometer,
        "accelerometer/landing/a.json",
        input.as_bytes(),
    );
    assert_eq!(parsed.counts.input, 2, "blank lines are not records");
    assert!(parsed.quarantined.is_empty());
    assert_eq!(
        canonical(&parsed.rows),
        [
            "user=a@x.com timestamp=1000 x=1.0 y=-1.0 z=0.5",
            "user=b@x.com timestamp=2000 x=0.0 y=0.0 z=0.0",
        ]
    );
}

#[test]
fn optional_customer_fields_may_be_absent_or_null() {
    let input = concat!(
        r#"{"customerName":"A B","email":"a@x.com","phone":"1","birthDay":"1399-01-01","serialNumber":"s1","registrationDate":1,"lastUpdateDate":2}"#,
        "\n",
        r#"{"customerName":"C D","email":"c@x.com","phone":"1","birthDay":"983-01-01","serialNumber":"s2","registrationDate":1,"lastUpdateDate":2,"shareWithResearchAsOfDate":null,"shareWithPublicAsOfDate":5}"#,
    );
    let parsed = parse_object(Dataset::Customer, "c.json", input.as_bytes());
    assert!(parsed.quarantined.is_empty(), "{:?}", parsed.quarantined);
    assert_eq!(parsed.rows.height(), 2);
    assert_eq!(
        parsed
            .rows
            .column("shareWithResearchAsOfDate")
            .unwrap()
            .null_count(),
        2
    );
    assert_eq!(
        parsed
            .rows
            .column("shareWithPublicAsOfDate")
            .unwrap()
            .null_count(),
        1
    );
}

#[test]
fn bad_lines_are_quarantined_with_line_reason_and_field() {
    let mut input = Vec::new();
    for line in [
        r#"{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":200}"#,
        r#"{"sensorReadingTime":"1","serialNumber":"s","distanceFromObject":200}"#,
        r#"{"sensorReadingTime":1,"distanceFromObject":200}"#,
        r#"{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":null}"#,
        r#"{"sensorReadingTime":1,"serialNumber":"s","#,
        r#"[1,2,3]"#,
        r#"{"sensorReadingTime":1.5,"serialNumber":"s","distanceFromObject":200}"#,
        r#"{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":9999999999}"#,
        r#"{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":200} trailing"#,
    ] {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(
        b"{\"sensorReadingTime\":1,\"serialNumber\":\"\xff\",\"distanceFromObject\":2}\n",
    );

    let parsed = parse_object(Dataset::StepTrainer, "step_trainer/landing/s.json", &input);
    assert_eq!(parsed.counts.input, 10);
    assert_eq!(parsed.rows.height(), 1);
    let got: Vec<(u64, QuarantineReason, &str)> = parsed
        .quarantined
        .iter()
        .map(|q| (q.line.unwrap(), q.reason, q.detail.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                2,
                QuarantineReason::WrongType,
                "field `sensorReadingTime`: invalid type: string \"1\", expected i64 at line 1 column 24"
            ),
            (
                3,
                QuarantineReason::MissingField,
                "field `serialNumber` is missing"
            ),
            (
                4,
                QuarantineReason::MissingField,
                "field `distanceFromObject` is null"
            ),
            (
                5,
                QuarantineReason::MalformedJson,
                "EOF while parsing a value at line 1 column 42"
            ),
            (
                6,
                QuarantineReason::NotAnObject,
                "invalid type: sequence, expected a JSON object at line 1 column 1"
            ),
            (
                7,
                QuarantineReason::WrongType,
                "field `sensorReadingTime`: invalid type: floating point `1.5`, expected i64 at line 1 column 24"
            ),
            (
                8,
                QuarantineReason::WrongType,
                "field `distanceFromObject`: invalid value: integer `9999999999`, expected a 32-bit integer at line 1 column 74"
            ),
            (
                9,
                QuarantineReason::MalformedJson,
                "trailing characters at line 1 column 69"
            ),
            (
                10,
                QuarantineReason::InvalidUtf8,
                "not valid UTF-8 at byte 39"
            ),
        ]
    );
    assert!(
        parsed
            .quarantined
            .iter()
            .all(|q| q.source == "step_trainer/landing/s.json")
    );
    assert_eq!(
        parsed.quarantined[0].raw,
        r#"{"sensorReadingTime":"1","serialNumber":"s","distanceFromObject":200}"#
    );
    assert_eq!(
        parsed.quarantined[8].raw,
        "{\"sensorReadingTime\":1,\"serialNumber\":\"\u{fffd}\",\"distanceFromObject\":2}"
    );

    let frame = quarantine_frame(&parsed.quarantined);
    assert_eq!(frame.height(), 9);
    assert_eq!(
        frame.get_column_names(),
        ["source", "line", "reason", "detail", "raw"]
    );
}

fn repaired(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The canonical rows and the quarantine (line, reason, detail) of a parse.
fn outcome(
    parsed: &zones::landing::ParsedObject,
) -> (Vec<String>, Vec<(u64, &'static str, String)>) {
    let quarantine = parsed
        .quarantined
        .iter()
        .map(|q| (q.line.unwrap_or(0), q.reason.as_str(), q.detail.clone()))
        .collect();
    (canonical(&parsed.rows), quarantine)
}

#[test]
fn lossless_repairs_are_made_and_counted_by_kind() {
    let input = concat!(
        "\u{feff}",
        r#"{"user":"a@x","timestamp":1,"x":1,"y":1,"z":1}"#,
        "\r\n",
        "   \r\n",
        r#"{"user":"b@x","timestamp":2,"x":1,"y":1,"z":1},"#,
        "\n",
        "\t\n",
        r#"{"user":"c@x","timestamp":3,"x":1,"y":1,"z":1}{"user":"d@x","timestamp":4,"x":1,"y":1,"z":1} {"user":"e@x","timestamp":5.0,"x":1,"y":1,"z":1},"#,
        "\n",
        r#"{"user":7,"timestamp":6E0,"x":1,"y":1,"z":1}"#,
        "\n",
        r#"{"user":true,"timestamp":7,"x":1,"y":1,"z":1}"#,
        "\n",
        "\u{feff}",
        r#"{"user":"f@x","timestamp":8,"x":1,"y":1,"z":1}"#,
        "\n",
    );
    let parsed = parse_object(Dataset::Accelerometer, "a.json", input.as_bytes());
    assert_eq!(
        outcome(&parsed),
        (
            vec![
                "user=7 timestamp=6 x=1.0 y=1.0 z=1.0".to_string(),
                "user=a@x timestamp=1 x=1.0 y=1.0 z=1.0".into(),
                "user=b@x timestamp=2 x=1.0 y=1.0 z=1.0".into(),
                "user=c@x timestamp=3 x=1.0 y=1.0 z=1.0".into(),
                "user=d@x timestamp=4 x=1.0 y=1.0 z=1.0".into(),
                "user=e@x timestamp=5 x=1.0 y=1.0 z=1.0".into(),
                "user=f@x timestamp=8 x=1.0 y=1.0 z=1.0".into(),
                "user=true timestamp=7 x=1.0 y=1.0 z=1.0".into(),
            ],
            vec![]
        )
    );
    assert_eq!(
        parsed.counts.input, 8,
        "a blank line is no record; a line of three objects is three"
    );
    assert_eq!(
        parsed.counts.repaired,
        repaired(&[
            ("blank_lines", 2),
            ("bom", 2),
            ("concatenated_objects", 3),
            ("crlf", 1),
            ("integral_float", 2),
            ("number_as_string", 2),
            ("trailing_comma", 2),
        ])
    );
}

#[test]
fn what_is_not_lossless_stays_quarantined_with_the_field() {
    let lines = [
        r#"{"user":"a","timestamp":1655564100000.5,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":"1655564100000","x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1e30,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1655564100000.0000001,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timeStamp":1,"timestamp":2,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1,"user":"b"}"#,
        r#"{"user":{"a":1},"timestamp":1,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1,"x":"1","y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1},{"user":"b","timestamp":1,"x":1,"y":1,"z":1}"#,
        r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1}{"user":"b","timestamp":1.5,"x":1,"y":1,"z":1}"#,
        r#""just a string""#,
        r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1},,"#,
    ];
    let parsed = parse_object(
        Dataset::Accelerometer,
        "a.json",
        lines.join("\n").as_bytes(),
    );
    let (rows, quarantine) = outcome(&parsed);
    assert_eq!(
        rows,
        ["user=a timestamp=1 x=1.0 y=1.0 z=1.0"],
        "the good half of line 10"
    );
    let wrong = |field: &str, what: &str, column: u32| {
        format!("field `{field}`: invalid type: {what}, expected i64 at line 1 column {column}")
    };
    assert_eq!(
        quarantine,
        [
            (1, "wrong_type", wrong("timestamp", "floating point `1655564100000.5`", 39)),
            (2, "wrong_type", wrong("timestamp", "string \"1655564100000\"", 39)),
            (3, "wrong_type", wrong("timestamp", "floating point `1e30`", 28)),
            (4, "wrong_type", wrong("timestamp", "floating point `1655564100000.0000001`", 45)),
            (
                5,
                "duplicate_key",
                "field `timestamp`: duplicate key `timestamp` (keys compare case-insensitively) at line 1 column 37".into()
            ),
            (
                6,
                "duplicate_key",
                "field `user`: duplicate key `user` (keys compare case-insensitively) at line 1 column 50".into()
            ),
            (
                7,
                "wrong_type",
                "field `user`: invalid type: map, expected a string at line 1 column 15".into()
            ),
            (
                8,
                "wrong_type",
                "field `x`: invalid type: string \"1\", expected f64 at line 1 column 33".into()
            ),
            (9, "malformed_json", "trailing characters at line 1 column 45".into()),
            (10, "wrong_type", wrong("timestamp", "floating point `1.5`", 27)),
            (
                11,
                "not_an_object",
                "invalid type: string \"just a string\", expected a JSON object at line 1 column 15".into()
            ),
            (12, "malformed_json", "trailing characters at line 1 column 45".into()),
        ]
    );
    assert_eq!(parsed.counts.input, 13);
    assert_eq!(
        parsed.counts.repaired,
        repaired(&[("concatenated_objects", 2)])
    );
    assert_eq!(
        parsed.quarantined[9].raw, r#"{"user":"b","timestamp":1.5,"x":1,"y":1,"z":1}"#,
        "a record split from a line keeps its own text"
    );
}

#[test]
fn keys_match_case_insensitively_record_by_record() {
    let input = concat!(
        r#"{"user":"a","timeStamp":1,"x":1,"y":1,"z":1}"#,
        "\n",
        r#"{"user":"a","timestamp":2,"x":1,"y":1,"z":1}"#,
        "\n",
        r#"{"USER":"a","TIMESTAMP":3,"X":1,"Y":1,"Z":1}"#,
        "\n",
        r#"{"user":"a","timeStamp":4,"x":1,"y":1,"z":1}{"user":"a","timestamp":5,"x":1,"y":1,"z":1}"#,
    );
    let parsed = parse_object(Dataset::Accelerometer, "a.json", input.as_bytes());
    assert!(parsed.quarantined.is_empty(), "{:?}", parsed.quarantined);
    let times: Vec<String> = canonical(&parsed.rows)
        .into_iter()
        .map(|r| r.split(' ').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(
        times,
        [
            "timestamp=1",
            "timestamp=2",
            "timestamp=3",
            "timestamp=4",
            "timestamp=5"
        ]
    );
}

const THREE_LINES: &str = concat!(
    r#"{"user":"a","timestamp":1,"x":1,"y":1,"z":1}"#,
    "\n",
    r#"{"user":"b","timestamp":2,"x":1,"y":1,"z":1}"#,
    "\n",
    r#"{"user":"c","timestamp":3,"x":1,"y":1,"z":1}"#,
    "\n",
);

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn compressed_objects_are_read_by_their_extension() {
    let plain = read_object(Dataset::Accelerometer, "a/b.json", THREE_LINES.as_bytes());
    assert_eq!(plain.rows.height(), 3);
    let expected = canonical(&plain.rows);
    let zst = zstd::encode_all(THREE_LINES.as_bytes(), 3).unwrap();
    // Two gzip members back to back (as `cat a.gz b.gz` writes) are one stream.
    let mut members = gzip(&THREE_LINES.as_bytes()[..45]);
    members.extend(gzip(&THREE_LINES.as_bytes()[45..]));
    for (key, bytes) in [
        (
            "2026/11/30/03/stream-1-2026-11-30-03-00-00-abc.gz",
            gzip(THREE_LINES.as_bytes()),
        ),
        ("x.json.GZ", gzip(THREE_LINES.as_bytes())),
        ("x.json.gz", members),
        ("x.json.zst", zst),
    ] {
        let parsed = read_object(Dataset::Accelerometer, key, &bytes);
        assert_eq!(canonical(&parsed.rows), expected, "{key}");
        assert!(
            parsed.quarantined.is_empty(),
            "{key}: {:?}",
            parsed.quarantined
        );
        assert_eq!(parsed.counts.input, 3, "{key}");
    }
    // Without the extension the bytes are text: a gzip object named
    // `.json` is not valid UTF-8 JSON and is quarantined, never guessed at.
    let misnamed = read_object(
        Dataset::Accelerometer,
        "x.json",
        &gzip(THREE_LINES.as_bytes()),
    );
    assert_eq!(misnamed.rows.height(), 0);
    assert!(!misnamed.quarantined.is_empty());
}

#[test]
fn a_broken_compressed_stream_quarantines_what_it_cannot_read() {
    let whole = gzip(THREE_LINES.as_bytes());
    // Cut inside the compressed data: what came out before the cut is read,
    // its unfinished line is the one quarantined record.
    for (key, bytes) in [
        ("cut.gz", whole[..whole.len() - 12].to_vec()),
        ("cut.zst", {
            let z = zstd::encode_all(THREE_LINES.as_bytes(), 3).unwrap();
            z[..z.len() - 6].to_vec()
        }),
    ] {
        let parsed = read_object(Dataset::Accelerometer, key, &bytes);
        assert_eq!(
            parsed.counts.input,
            parsed.rows.height() as u64 + 1,
            "{key}"
        );
        let [q] = parsed.quarantined.as_slice() else {
            panic!(
                "{key}: one record quarantined, got {:?}",
                parsed.quarantined
            )
        };
        assert_eq!(q.reason.as_str(), "corrupt_compression", "{key}");
        assert_eq!(q.source, key);
        assert_eq!(q.line, Some(parsed.rows.height() as u64 + 1), "{key}");
        assert!(
            q.detail.contains(&format!("of {} (after", bytes.len())),
            "{key}: {}",
            q.detail
        );
        assert!(
            THREE_LINES
                .lines()
                .nth(parsed.rows.height())
                .unwrap()
                .starts_with(&q.raw),
            "{key}: the raw text is the unfinished line: {:?}",
            q.raw
        );
    }
    // Not gzip at all: nothing can be read, one record says so.
    let parsed = read_object(Dataset::Accelerometer, "bad.gz", THREE_LINES.as_bytes());
    assert_eq!((parsed.rows.height(), parsed.counts.input), (0, 1));
    assert_eq!(parsed.quarantined[0].reason.as_str(), "corrupt_compression");
    assert_eq!(parsed.quarantined[0].line, Some(1));
    assert!(
        parsed.quarantined[0]
            .detail
            .starts_with("gzip stream breaks at compressed byte"),
        "{}",
        parsed.quarantined[0].detail
    );
}

use zones::Dataset;
use zones::landing::{QuarantineReason, parse_object, quarantine_frame};

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
    assert_eq!(parsed.lines, 2, "blank lines are not rows");
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
    assert_eq!(parsed.lines, 10);
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

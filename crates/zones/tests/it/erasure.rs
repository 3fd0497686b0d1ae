//! Erasure rules on hand-built landing data: who is erased, which records
//! are theirs (the shared-serial rule), and an object rewritten without them.

use std::sync::Arc;

use polars::prelude::*;
use zones::erasure::{Erasure, RewriteRefused};
use zones::landing::parse_judged;
use zones::transitions::ReadingRule;
use zones::{Dataset, ErasureKey, Policy, RowCounts};

const C1: &str = r#"{"customerName":"A","email":"a@x.com","phone":"1","birthDay":"2000-01-01","serialNumber":"S1","registrationDate":1,"lastUpdateDate":1,"shareWithResearchAsOfDate":5}"#;
const C2: &str = r#"{"customerName":"A","email":"A@X.com","phone":"1","birthDay":"2000-01-01","serialNumber":"S2","registrationDate":1,"lastUpdateDate":2,"shareWithResearchAsOfDate":5}"#;
const C3: &str = r#"{"customerName":"B","email":"b@x.com","phone":"1","birthDay":"2000-01-01","serialNumber":"S1","registrationDate":1,"lastUpdateDate":1,"shareWithResearchAsOfDate":5}"#;

fn key() -> ErasureKey {
    ErasureKey::new(&[1u8; 32])
}

fn erasure_of(emails: &[&str]) -> Erasure {
    let landing = format!("{C1}\n{C2}\n{C3}\n");
    let rows = zones::landing::parse_object(Dataset::Customer, "c.json", landing.as_bytes()).rows;
    let subjects = emails.iter().map(|e| key().subject(e));
    Erasure::new(key(), subjects, &rows).unwrap()
}

#[test]
fn a_serial_shared_with_a_customer_not_erased_stays() {
    let erasure = erasure_of(&["a@x.com"]);
    // S1 is also b's: it stays. S2 is only a's (under another spelling).
    assert!(!erasure.serial("S1"));
    assert!(erasure.serial("S2"));
    assert!(erasure.email("A@X.COM") && erasure.email(" a@x.com"));
    assert!(!erasure.email("b@x.com"));
    // A reader the landing customers never named is found by subject.
    let other = Erasure::new(
        key(),
        [key().subject("z@x.com")],
        &DataFrame::empty_with_schema(&Schema::from_iter([
            Field::new("email".into(), DataType::String),
            Field::new("serialNumber".into(), DataType::String),
        ])),
    )
    .unwrap();
    assert!(other.email("Z@x.com"));
    // Both erased: S1 has no other holder.
    let both = erasure_of(&["a@x.com", "b@x.com"]);
    assert!(both.serial("S1") && both.serial("S2"));
    assert!(Erasure::none().is_empty() && !Erasure::none().email("a@x.com"));
}

#[test]
fn readings_of_an_erased_person_are_dropped_under_erased_before_every_other_rule() {
    let erasure = Arc::new(erasure_of(&["a@x.com"]));
    let customers =
        zones::landing::parse_object(Dataset::Customer, "c", format!("{C3}\n").as_bytes()).rows;
    let rule = ReadingRule::accelerometer_trusted(Policy::Strict, &customers)
        .unwrap()
        .with_erasure(erasure.clone());
    let lines = concat!(
        r#"{"user":"a@x.com","timestamp":9,"x":1,"y":1,"z":1}"#,
        "\n",
        r#"{"user":"b@x.com","timestamp":9,"x":1,"y":1,"z":1}"#,
        "\n",
        r#"{"user":"b@x.com","timestamp":1,"x":1,"y":1,"z":1}"#,
        "\n",
        r#"{"user":"c@x.com","timestamp":9,"x":1,"y":1,"z":1}"#,
        "\n",
        // Malformed, naming the erased address: dropped, not quarantined.
        r#"{"user":"A@x.com","timestamp":"soon"}"#,
        "\n",
        r#"{"user":"c@x.com","timestamp":"soon"}"#,
        "\n",
    );
    let judged = parse_judged(Dataset::Accelerometer, "a.json", lines.as_bytes(), &[&rule]);
    assert_eq!(judged.rows[0].height(), 1);
    assert_eq!(
        judged.counts[0],
        RowCounts {
            input: 6,
            kept: 1,
            quarantined: crate::support::drops(&[("wrong_type", 1)]),
            dropped: crate::support::drops(&[
                ("before_research_consent", 1),
                ("erased", 2),
                ("user_not_in_customer_trusted", 1)
            ]),
            repaired: Default::default(),
        }
    );
    assert_eq!(judged.quarantined.len(), 1);
    // Step readings: only by a serial that only erased customers hold.
    let step = ReadingRule::step_trainer_trusted(Policy::Rubric, &customers)
        .unwrap()
        .with_erasure(erasure);
    let lines = concat!(
        r#"{"sensorReadingTime":9,"serialNumber":"S1","distanceFromObject":3}"#,
        "\n",
        r#"{"sensorReadingTime":9,"serialNumber":"S2","distanceFromObject":3}"#,
        "\n",
    );
    let judged = parse_judged(Dataset::StepTrainer, "s.json", lines.as_bytes(), &[&step]);
    assert_eq!(
        judged.counts[0].dropped,
        crate::support::drops(&[("erased", 1)])
    );
    assert_eq!(judged.rows[0].height(), 1);
}

#[test]
fn a_rewrite_keeps_every_other_byte_and_checks_itself() {
    let erasure = erasure_of(&["a@x.com"]);
    // A BOM, CRLF line ends, a blank line, a malformed line of another
    // person, no final newline: all kept as they were.
    let object = format!("\u{feff}{C1}\r\n{C3}\r\n\r\n{{\"email\": \"q@x.com\",\n{C2}");
    let rewrite = erasure
        .rewrite(
            Dataset::Customer,
            "customer/landing/c.json",
            object.as_bytes(),
        )
        .unwrap()
        .expect("the object held erased records");
    assert_eq!(
        String::from_utf8(rewrite.bytes).unwrap(),
        format!("\u{feff}{C3}\r\n\r\n{{\"email\": \"q@x.com\",\n")
    );
    assert_eq!((rewrite.records, rewrite.erased), (4, 2));
    // Nothing of theirs: nothing to rewrite.
    assert_eq!(
        erasure
            .rewrite(Dataset::Customer, "c.json", format!("{C3}\n").as_bytes())
            .unwrap(),
        None
    );
    // Compressed objects are stored compressed the same way, and read back equal.
    for key in ["customer/landing/c.json.gz", "customer/landing/c.json.zst"] {
        let plain = format!("{C1}\n{C3}\n");
        let stored = match key.ends_with(".gz") {
            true => {
                use std::io::Write;
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(plain.as_bytes()).unwrap();
                e.finish().unwrap()
            }
            false => zstd::stream::encode_all(plain.as_bytes(), 3).unwrap(),
        };
        let rewrite = erasure
            .rewrite(Dataset::Customer, key, &stored)
            .unwrap()
            .unwrap();
        let parsed = zones::landing::read_object(Dataset::Customer, key, &rewrite.bytes);
        assert_eq!(parsed.counts.input, 1, "{key}");
        assert_eq!(
            parsed.rows.column("email").unwrap().str().unwrap().get(0),
            Some("b@x.com")
        );
        assert_eq!(
            erasure
                .count(Dataset::Customer, key, &rewrite.bytes)
                .unwrap(),
            (1, 0)
        );
    }
    // Two people's records on one line: refused, never half rewritten.
    let mixed = format!("{C1}{C3}\n");
    assert_eq!(
        erasure.rewrite(Dataset::Customer, "c.json", mixed.as_bytes()),
        Err(RewriteRefused::MixedLine { line: 1 })
    );
}

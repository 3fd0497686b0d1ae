//! Helpers: build landing frames from JSON lines, render frames as sorted text.

use polars::prelude::*;
use zones::Dataset;
use zones::landing::parse_object;

/// Parses hand-written JSON lines of `dataset`; panics if any line is quarantined.
pub fn rows(dataset: Dataset, lines: &[&str]) -> LazyFrame {
    let parsed = parse_object(dataset, "test.json", lines.join("\n").as_bytes());
    assert!(
        parsed.quarantined.is_empty(),
        "fixture lines must be valid: {:?}",
        parsed.quarantined
    );
    parsed.rows.lazy()
}

/// One line per row, `name=value` pairs in column order, rows sorted.
pub fn canonical(df: &DataFrame) -> Vec<String> {
    let mut out: Vec<String> = (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| {
                    let v = c.get(i).expect("row in range");
                    let text = match v {
                        AnyValue::Null => "null".to_string(),
                        AnyValue::String(s) => s.to_string(),
                        AnyValue::StringOwned(s) => s.to_string(),
                        other => other.to_string(),
                    };
                    format!("{}={text}", c.name())
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    out.sort();
    out
}

pub fn drops(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

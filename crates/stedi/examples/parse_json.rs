//! The benchmark's physical limit: parse every landing line of a warehouse once
//! with serde_json, in parallel across objects, into nothing.
//! Usage: parse_json WAREHOUSE

use rayon::prelude::*;
use serde::de::IgnoredAny;

fn main() {
    let root = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: parse_json WAREHOUSE"),
    );
    let mut files = Vec::new();
    for dataset in ["customer", "accelerometer", "step_trainer"] {
        for entry in std::fs::read_dir(root.join(dataset).join("landing")).expect("landing folder")
        {
            files.push(entry.expect("entry").path());
        }
    }
    let lines: usize = files
        .par_iter()
        .map(|path| {
            let bytes = std::fs::read(path).expect("readable");
            bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .filter(|l| serde_json::from_slice::<IgnoredAny>(l).is_ok())
                .count()
        })
        .sum();
    println!("{lines}");
}

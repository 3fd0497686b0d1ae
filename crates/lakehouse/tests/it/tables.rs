use lakehouse::tables::encode_parquet;
use polars::prelude::*;

fn round_trip(df: &DataFrame) -> DataFrame {
    let bytes = encode_parquet(&mut df.clone()).unwrap();
    ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .unwrap()
}

#[test]
fn parquet_parts_read_back_exactly() {
    let df = df!(
        "user" => [Some("a@x.com"), None, Some("a@x.com"), Some(""), Some("a string longer than twelve bytes")],
        "timestamp" => [Some(1_655_564_444_103i64), Some(i64::MIN), None, Some(i64::MAX), Some(-1)],
        "x" => [Some(-0.0f64), Some(f64::NAN), None, Some(f64::MAX), Some(0.1)],
        "distanceFromObject" => [Some(240i32), None, Some(i32::MIN), Some(0), Some(i32::MAX)],
        "line" => [Some(1u64), Some(2), None, Some(u64::MAX), Some(0)],
        "shareWithResearch" => [Some(true), None, Some(false), Some(true), Some(true)],
        "detail" => [None::<&str>, None, None, None, None],
    )
    .unwrap();
    let back = round_trip(&df);
    assert_eq!(back.schema(), df.schema());
    assert!(back.equals_missing(&df), "{back}");
}

#[test]
fn large_parts_of_many_pages_read_back_exactly() {
    // Enough rows for several data pages per column, times in runs as
    // readings come, chunked as frames built from parts are.
    let n = 300_000i64;
    let users: Vec<String> = (0..n).map(|i| format!("user{}@test.com", i / 90)).collect();
    let times: Vec<i64> = (0..n)
        .map(|i| 1_655_000_000_000 + (i % 90) * 8_000 - i / 90)
        .collect();
    let x: Vec<f64> = (0..n)
        .map(|i| (i % 3 - 1) as f64 / (1 + i % 7) as f64)
        .collect();
    let first =
        df!("user" => &users[..1000], "timestamp" => &times[..1000], "x" => &x[..1000]).unwrap();
    let mut df =
        df!("user" => &users[1000..], "timestamp" => &times[1000..], "x" => &x[1000..]).unwrap();
    df = first.vstack(&df).unwrap();
    assert_eq!(df.first_col_n_chunks(), 2);
    let back = round_trip(&df);
    assert!(back.equals_missing(&df));
}

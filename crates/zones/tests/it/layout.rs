use zones::Dataset;
use zones::layout::{Compression, landing_object};

#[test]
fn landing_objects_follow_athenas_listing_rule() {
    let a = Dataset::Accelerometer;
    let listed = |key: &str, size: u64| landing_object(a, key, size);
    // Any depth, any extension (or none); compression by extension.
    assert_eq!(
        listed("accelerometer/landing/a.json", 9),
        Some(Compression::None)
    );
    assert_eq!(
        listed("accelerometer/landing/a", 9),
        Some(Compression::None)
    );
    assert_eq!(
        listed("accelerometer/landing/a.csv", 9),
        Some(Compression::None)
    );
    assert_eq!(
        listed(
            "accelerometer/landing/2026/11/30/03/stream-1-2026-11-30-03-04-05-uuid",
            9
        ),
        Some(Compression::None)
    );
    assert_eq!(
        listed("accelerometer/landing/2026/11/30/03/x.gz", 9),
        Some(Compression::Gzip)
    );
    assert_eq!(
        listed("accelerometer/landing/x.json.GZ", 9),
        Some(Compression::Gzip)
    );
    assert_eq!(
        listed("accelerometer/landing/x.zst", 9),
        Some(Compression::Zstd)
    );
    assert_eq!(
        listed("accelerometer/landing/x.gz.json", 9),
        Some(Compression::None)
    );
    assert_eq!(
        listed("accelerometer/landing/a.b/c", 9),
        Some(Compression::None)
    );
    // Names or folders below the prefix starting with `_` or `.`, and empty objects: not listed.
    for skipped in [
        "accelerometer/landing/_SUCCESS",
        "accelerometer/landing/.a.json.crc",
        "accelerometer/landing/_temporary/0/part-0",
        "accelerometer/landing/2026/.hidden/x.json",
        "accelerometer/landing/2026/11/_x",
        "accelerometer/landing/",
        "accelerometer/landing/folder/",
        "accelerometer/landingx/a.json",
        "customer/landing/a.json",
        "accelerometer/trusted/run/part-00000.parquet",
    ] {
        assert_eq!(listed(skipped, 9), None, "{skipped}");
    }
    assert_eq!(listed("accelerometer/landing/a.json", 0), None, "empty");
    // `_` inside a name is fine, only a leading one hides it.
    assert_eq!(
        listed("accelerometer/landing/step_trainer-1.json", 9),
        Some(Compression::None)
    );
}

#[test]
fn batch_parts_are_named_by_their_first_object_and_part_names_are_checked() {
    use zones::layout::{batch_part_name, is_part_name, part_name};
    let a = batch_part_name("accelerometer/landing/a.json", 0);
    // The first 8 bytes of the key's SHA-256, in hex.
    assert_eq!(a, "part-3c94bece878ca6c2-00000.parquet");
    assert_eq!(
        batch_part_name("accelerometer/landing/a.json", 12),
        "part-3c94bece878ca6c2-00012.parquet"
    );
    assert_ne!(a, batch_part_name("accelerometer/landing/b.json", 0));
    for good in [
        a.as_str(),
        &part_name(3),
        "part-00003-00001.parquet",
        "bucket=459877/part-00000.parquet",
        "bucket=-2/part-3c94bece878ca6c2-00001.parquet",
    ] {
        assert!(is_part_name(good), "{good}");
    }
    assert_eq!(
        zones::layout::bucket_part_name(459877, &part_name(0)),
        "bucket=459877/part-00000.parquet"
    );
    assert_eq!(
        zones::layout::bucket_of_part("bucket=-2/part-00000.parquet"),
        Some(-2)
    );
    assert_eq!(zones::layout::bucket_of_part("part-00000.parquet"), None);
    for bad in [
        "",
        "part-.parquet",
        "part-00000",
        "part--1.parquet",
        "part-1-.parquet",
        "../part-00000.parquet",
        "part-0/../../x.parquet",
        "part-00000.parquet/x",
        "part-ab_cd.parquet",
        "part-é.parquet",
        "_manifest.json",
        &format!("part-{}.parquet", "0".repeat(65)),
        "bucket=01/part-00000.parquet",
        "bucket=+1/part-00000.parquet",
        "bucket=x/part-00000.parquet",
        "bucket=1/../part-00000.parquet",
        "bucket=1/bucket=2/part-00000.parquet",
        "buckets=1/part-00000.parquet",
        "bucket=1/",
    ] {
        assert!(!is_part_name(bad), "{bad}");
    }
}

#[test]
fn map_results_are_filed_by_run_and_table() {
    use zones::layout::{map_result_of, map_results_table_prefix};
    use zones::{RunId, Table};
    let run = RunId::parse("r1").unwrap();
    let prefix = map_results_table_prefix(&run, Table::AccelerometerTrusted);
    assert_eq!(prefix, "_map_results/r1/accelerometer_trusted/");
    assert_eq!(
        map_result_of(&format!("{prefix}0f1e-2d/manifest.json")),
        Some((run, Table::AccelerometerTrusted))
    );
    for other in [
        "_map_results/r1/accelerometer_trusted/",
        "_map_results/r1/nothing/x/manifest.json",
        "_map_results/../accelerometer_trusted/x/manifest.json",
        "_runs/r1/accelerometer_trusted/x/manifest.json",
        "_map_results/r1",
    ] {
        assert_eq!(map_result_of(other), None, "{other}");
    }
}

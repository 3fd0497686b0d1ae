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

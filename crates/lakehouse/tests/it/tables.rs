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

fn object(key: &str, size: u64) -> lakehouse::ObjectInfo {
    lakehouse::ObjectInfo {
        key: key.to_string(),
        size,
        ..Default::default()
    }
}

#[test]
fn landing_objects_are_cut_into_batches_of_consecutive_objects_by_stored_bytes() {
    use lakehouse::tables::{BATCH_BYTES, landing_batches};
    let small = BATCH_BYTES / 4;
    let objects = [
        object("a", small),
        object("b", small),
        object("c", small),
        object("d", small),
        object("e", 1),
        object("f", BATCH_BYTES * 3),
        object("g", small),
    ];
    assert_eq!(landing_batches(&objects), [0..4, 4..5, 5..6, 6..7]);
    assert!(landing_batches(&objects[..0]).is_empty());
    let many: Vec<_> = (0..10_000).map(|n| object(&n.to_string(), 1_000)).collect();
    assert_eq!(
        landing_batches(&many),
        vec![std::ops::Range {
            start: 0,
            end: 10_000
        }]
    );
}

/// Rows pushed in frames of any heights give parts of exactly the set
/// height, named by the batch's first object and numbered; the same rows give the same keys and
/// bytes however they arrive.
#[test]
fn a_part_writer_cuts_parts_of_exactly_its_rows_whatever_frames_arrive() {
    use lakehouse::tables::{PartWriter, read_part};
    use lakehouse::{LocalStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let rows = |from: i64, to: i64| df!("timestamp" => (from..to).collect::<Vec<_>>()).unwrap();
    let write = |prefix: &str, cuts: &[i64]| {
        let snapshot = snapshot(prefix);
        let mut writer = PartWriter::new(&store, &snapshot, "accelerometer/landing/a.json", 4);
        for pair in cuts.windows(2) {
            writer.push(rows(pair[0], pair[1])).unwrap();
        }
        writer.finish().unwrap()
    };
    let one_by_one = write("t/a/", &(0..=10).collect::<Vec<_>>());
    let in_lumps = write("t/b/", &[0, 0, 9, 10]);
    let part_rows =
        |parts: &[lakehouse::tables::PartInfo]| parts.iter().map(|p| p.rows).collect::<Vec<_>>();
    assert_eq!(part_rows(&one_by_one), [4, 4, 2]);
    assert_eq!(part_rows(&in_lumps), [4, 4, 2]);
    let names: Vec<_> = one_by_one.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "part-3c94bece878ca6c2-00000.parquet",
            "part-3c94bece878ca6c2-00001.parquet",
            "part-3c94bece878ca6c2-00002.parquet"
        ]
    );
    for (a, b) in one_by_one.iter().zip(&in_lumps) {
        assert_eq!((&a.name, a.size, a.crc32c), (&b.name, b.size, b.crc32c));
    }
    let heights: Vec<_> = one_by_one
        .iter()
        .map(|p| {
            let bytes = read_part(&store, "t/a/", p).unwrap();
            let df = ParquetReader::new(std::io::Cursor::new(bytes))
                .finish()
                .unwrap();
            let times: Vec<_> = df
                .column("timestamp")
                .unwrap()
                .i64()
                .unwrap()
                .into_no_null_iter()
                .collect();
            times
        })
        .collect();
    assert_eq!(heights, [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    // A batch without rows writes nothing.
    let empty = PartWriter::new(&store, &snapshot("t/c/"), "accelerometer/landing/a.json", 4)
        .finish()
        .unwrap();
    assert_eq!(empty, []);
    assert!(store.list("t/c/").unwrap().is_empty());
}

fn snapshot(prefix: &str) -> zones::layout::SnapshotRef {
    zones::layout::SnapshotRef {
        table: zones::Table::AccelerometerTrusted,
        location: prefix.to_string(),
        snapshot: "r1".to_string(),
    }
}

/// A snapshot is written part by part, by any number of writers, and
/// sealed by one call from the list of their parts: the manifest lists them
/// in the order given, and the snapshot's rows are the parts'.
#[test]
fn a_snapshot_is_sealed_from_the_parts_several_writers_wrote() {
    use lakehouse::LocalStore;
    use lakehouse::tables::{PartWriter, read_table, seal, write_part};
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let snapshot = snapshot("accelerometer/trusted/r1/");
    let rows = |from: i64, to: i64| df!("timestamp" => (from..to).collect::<Vec<_>>()).unwrap();
    let mut first = PartWriter::new(&store, &snapshot, "accelerometer/landing/a.json", 3);
    first.push(rows(0, 5)).unwrap();
    let mut parts = first.finish().unwrap();
    let mut second = PartWriter::new(&store, &snapshot, "accelerometer/landing/b.json", 3);
    second.push(rows(5, 7)).unwrap();
    parts.extend(second.finish().unwrap());
    parts.push(write_part(&store, &snapshot, "part-00002.parquet", &mut rows(7, 8)).unwrap());
    let names: Vec<_> = parts.iter().map(|p| (p.name.as_str(), p.rows)).collect();
    assert_eq!(
        names,
        [
            ("part-3c94bece878ca6c2-00000.parquet", 3),
            ("part-3c94bece878ca6c2-00001.parquet", 2),
            ("part-ba5284c0241e9d1f-00000.parquet", 2),
            ("part-00002.parquet", 1)
        ]
    );
    let schema = rows(0, 0).schema().as_ref().clone();
    let sealed = seal(&store, &snapshot, parts.clone(), &schema).unwrap();
    assert_eq!((sealed.rows, sealed.snapshot.as_str()), (8, "r1"));
    let manifest = lakehouse::tables::read_manifest(&store, &snapshot.location)
        .unwrap()
        .unwrap();
    assert_eq!((manifest.rows, manifest.parts), (8, parts));
    let times = read_table(&store, &sealed).unwrap().collect().unwrap();
    assert_eq!(
        times
            .column("timestamp")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
}

/// Sealing no parts writes one empty part of the schema: a snapshot always
/// has its columns.
#[test]
fn a_snapshot_sealed_without_parts_has_one_empty_part_of_its_schema() {
    use lakehouse::LocalStore;
    use lakehouse::tables::{read_table, seal};
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let snapshot = snapshot("accelerometer/trusted/r1/");
    let schema = Schema::from_iter([
        Field::new("user".into(), DataType::String),
        Field::new("timestamp".into(), DataType::Int64),
    ]);
    let sealed = seal(&store, &snapshot, Vec::new(), &schema).unwrap();
    assert_eq!(sealed.rows, 0);
    let names: Vec<_> = sealed
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty.as_str()))
        .collect();
    assert_eq!(names, [("user", "string"), ("timestamp", "bigint")]);
    let read = read_table(&store, &sealed).unwrap().collect().unwrap();
    assert_eq!((read.height(), read.schema().as_ref()), (0, &schema));
}

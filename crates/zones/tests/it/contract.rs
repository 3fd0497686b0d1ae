use std::collections::BTreeMap;

use zones::contract::{BatchResult, PartInfo, PartsWritten};
use zones::{RowCounts, Table};

fn part(name: &str, rows: u64) -> PartInfo {
    PartInfo {
        name: name.into(),
        rows,
        size: 10 * rows,
        crc32c: rows as u32,
    }
}

fn batch(first: &str, kept: u64, dropped: u64, rubric: bool) -> BatchResult {
    let counts = |kept, dropped| {
        let mut c = RowCounts::kept(kept);
        c.merge(&RowCounts::dropped("no_research_consent", dropped));
        c
    };
    BatchResult {
        objects: 2,
        bytes: 100,
        table: PartsWritten {
            counts: counts(kept, dropped),
            parts: vec![part(&format!("part-{first}-00000.parquet"), kept)],
        },
        rubric: rubric.then(|| PartsWritten {
            counts: counts(kept + dropped, 0),
            parts: vec![part(&format!("part-{first}-00000.parquet"), kept + dropped)],
        }),
        quarantine: vec![],
        erased_objects: BTreeMap::from([(format!("{first}.json"), 1)]),
        seconds: kept as f64,
        peak_rss_mib: Some(dropped as f64),
        ..BatchResult::empty(Table::AccelerometerTrusted)
    }
}

/// Batches merge into the batch of all their objects: counts by
/// `RowCounts::merge`, parts in order, erased objects together, the
/// longest seconds and the highest peak; the empty batch is the identity.
#[test]
fn batches_merge_into_the_batch_of_all_their_objects() {
    let mut all = BatchResult::empty(Table::AccelerometerTrusted);
    all.merge(batch("a", 3, 1, true));
    all.merge(batch("b", 5, 2, true));
    assert_eq!((all.objects, all.bytes), (4, 200));
    let mut counts = RowCounts::kept(8);
    counts.merge(&RowCounts::dropped("no_research_consent", 3));
    assert_eq!(all.table.counts, counts);
    let names = |p: &PartsWritten| p.parts.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&all.table),
        ["part-a-00000.parquet", "part-b-00000.parquet"]
    );
    assert_eq!(all.rubric.as_ref().unwrap().counts, RowCounts::kept(11));
    assert_eq!(
        all.erased_objects,
        BTreeMap::from([("a.json".into(), 1), ("b.json".into(), 1)])
    );
    assert_eq!((all.seconds, all.peak_rss_mib), (5.0, Some(2.0)));
    // Under rubric no batch has a shadow, and neither has their merge.
    let mut rubric = BatchResult::empty(Table::AccelerometerTrusted);
    rubric.merge(batch("a", 3, 1, false));
    rubric.merge(batch("b", 5, 2, false));
    assert_eq!(rubric.rubric, None);
    assert_eq!(rubric.table, all.table);
}

/// Joins of time buckets merge into the join of all of them: counts by
/// `RowCounts::merge`, the rubric's counts and rows added, parts in order.
#[test]
fn joins_of_buckets_merge_into_the_join_of_all() {
    use zones::contract::{JoinResult, RubricCount};
    let join = |day: i64, kept: u64, rubric: Option<u64>| JoinResult {
        buckets: 1,
        table: PartsWritten {
            counts: RowCounts::kept(kept),
            parts: vec![part(&format!("bucket={day}/part-00000.parquet"), kept * 2)],
        },
        quarantine: vec![part(&format!("bucket={day}/part-00000.parquet"), 1)],
        rubric: rubric.map(|rows| RubricCount {
            counts: RowCounts::kept(rows),
            rows: rows * 3,
        }),
        seconds: day as f64,
        peak_rss_mib: None,
    };
    let mut all = JoinResult::empty();
    all.merge(join(7, 2, Some(4)));
    all.merge(join(8, 3, Some(5)));
    assert_eq!(all.buckets, 2);
    assert_eq!(all.table.counts, RowCounts::kept(5));
    assert_eq!(all.table.parts.len(), 2);
    assert_eq!(all.quarantine.len(), 2);
    assert_eq!(
        all.rubric,
        Some(RubricCount {
            counts: RowCounts::kept(9),
            rows: 27
        })
    );
    assert_eq!((all.seconds, all.peak_rss_mib), (8.0, None));
    let mut rubric = JoinResult::empty();
    rubric.merge(join(7, 2, None));
    assert_eq!(rubric.rubric, None);
}

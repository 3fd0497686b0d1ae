//! Row accounting: where the input rows of a unit of work went. One type,
//! [`RowCounts`], produced by every unit of work (a landing object, a batch
//! of objects, a time bucket of the training table's join, a whole
//! transition), merged with one associative and commutative [`RowCounts::merge`],
//! and carried unchanged into the transitions' responses
//! (`crate::contract::TransitionResult`) and the run report
//! (`crate::report`). Nothing else counts rows kept, quarantined or dropped.
//!
//! The promise it keeps is the pipeline's: every input row is kept,
//! quarantined with a reason, or dropped by a named rule
//! (`input = kept + quarantined + dropped`, [`RowCounts::is_balanced`]).
//! Repairs are notes on rows, counted beside the outcome, never a fourth one.

use std::collections::BTreeMap;
use std::iter::Sum;

use serde::{Deserialize, Serialize};

/// Where the input rows of a unit of work went. For a landing transition a
/// row is a landing record (a line holding three objects is three, a blank
/// line none); for a transition that reads a table, a row of its main input.
///
/// The maps are ordered, so the serialized form is stable; they hold no
/// zero counts when built by the constructors here. Serialized as
/// `{"input": .., "kept": .., "quarantined": {reason: n}, "dropped": {rule: n},
/// "repaired": {kind: n}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    /// Rows read.
    pub input: u64,
    /// Rows kept. For the training table, step readings paired: a kept
    /// reading can pair with several accelerometer readings, so the rows
    /// written may be more.
    pub kept: u64,
    /// Rows set aside in quarantine, by reason
    /// (`crate::quarantine::QuarantineReason::as_str`).
    #[serde(default)]
    pub quarantined: BTreeMap<String, u64>,
    /// Rows dropped, by the policy's rule (`crate::policy::rule`).
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
    /// Lossless repairs made while reading landing records, by kind
    /// (`crate::landing::Repair::as_str`): notes on rows, which are counted
    /// above like any other; empty for transitions that read tables.
    #[serde(default)]
    pub repaired: BTreeMap<String, u64>,
}

impl RowCounts {
    /// `n` rows read and kept.
    pub fn kept(n: u64) -> RowCounts {
        RowCounts {
            input: n,
            kept: n,
            ..RowCounts::default()
        }
    }

    /// `n` rows read and quarantined for `reason`.
    pub fn quarantined(reason: &str, n: u64) -> RowCounts {
        RowCounts {
            input: n,
            quarantined: entry(reason, n),
            ..RowCounts::default()
        }
    }

    /// `n` rows read and dropped by `rule`.
    pub fn dropped(rule: &str, n: u64) -> RowCounts {
        RowCounts {
            input: n,
            dropped: entry(rule, n),
            ..RowCounts::default()
        }
    }

    /// Adds `other`'s counts to these: the counts of both units of work
    /// together. Associative and commutative, with `RowCounts::default()`
    /// as identity, so units can be merged in any grouping and order.
    pub fn merge(&mut self, other: &RowCounts) {
        self.input += other.input;
        self.kept += other.kept;
        for (mine, theirs) in [
            (&mut self.quarantined, &other.quarantined),
            (&mut self.dropped, &other.dropped),
            (&mut self.repaired, &other.repaired),
        ] {
            for (key, n) in theirs {
                *mine.entry(key.clone()).or_default() += n;
            }
        }
    }

    /// Rows quarantined, whatever the reason.
    pub fn quarantined_total(&self) -> u64 {
        self.quarantined.values().sum()
    }

    /// Rows dropped, whatever the rule.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Every input row is accounted for: `input = kept + quarantined + dropped`.
    pub fn is_balanced(&self) -> bool {
        self.input == self.kept + self.quarantined_total() + self.dropped_total()
    }

    /// Per drop rule and quarantine reason, the rows these counts set aside
    /// minus those `other` sets aside (negative: fewer), zeros left out: how
    /// two policies on the same input differ, rule by rule.
    pub fn set_aside_beyond(&self, other: &RowCounts) -> BTreeMap<String, i64> {
        let mut by_rule: BTreeMap<String, i64> = BTreeMap::new();
        for (sign, counts) in [(1, self), (-1, other)] {
            for (rule, n) in counts.dropped.iter().chain(&counts.quarantined) {
                *by_rule.entry(rule.clone()).or_default() += sign * *n as i64;
            }
        }
        by_rule.retain(|_, n| *n != 0);
        by_rule
    }
}

/// A map of one count, or none when it is zero.
fn entry(key: &str, n: u64) -> BTreeMap<String, u64> {
    match n {
        0 => BTreeMap::new(),
        n => BTreeMap::from([(key.to_string(), n)]),
    }
}

impl Sum for RowCounts {
    fn sum<I: Iterator<Item = RowCounts>>(iter: I) -> RowCounts {
        iter.fold(RowCounts::default(), |mut all, counts| {
            all.merge(&counts);
            all
        })
    }
}

impl<'a> Sum<&'a RowCounts> for RowCounts {
    fn sum<I: Iterator<Item = &'a RowCounts>>(iter: I) -> RowCounts {
        iter.fold(RowCounts::default(), |mut all, counts| {
            all.merge(counts);
            all
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn merged(a: &RowCounts, b: &RowCounts) -> RowCounts {
        let mut out = a.clone();
        out.merge(b);
        out
    }

    fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    /// Counts of a few shared names, so merges meet equal keys; values
    /// small enough that sums of three never overflow.
    fn counts(balanced: bool) -> impl Strategy<Value = RowCounts> {
        let names = || prop::sample::select(vec!["a", "b", "c", "d"]);
        let counts =
            || prop::collection::btree_map(names().prop_map(String::from), 0u64..1 << 40, 0..4);
        (0u64..1 << 40, counts(), counts(), counts(), 0u64..1 << 40).prop_map(
            move |(kept, quarantined, dropped, repaired, extra)| {
                let set_aside: u64 = quarantined.values().chain(dropped.values()).sum();
                RowCounts {
                    input: kept + set_aside + if balanced { 0 } else { extra },
                    kept,
                    quarantined,
                    dropped,
                    repaired,
                }
            },
        )
    }

    proptest! {
        #[test]
        fn merge_is_associative(a in counts(false), b in counts(false), c in counts(false)) {
            prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        }

        #[test]
        fn merge_is_commutative(a in counts(false), b in counts(false)) {
            prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        }

        #[test]
        fn the_empty_counts_are_the_identity(a in counts(false)) {
            prop_assert_eq!(merged(&a, &RowCounts::default()), a.clone());
            prop_assert_eq!(merged(&RowCounts::default(), &a), a);
        }

        #[test]
        fn merging_balanced_counts_keeps_them_balanced(all in prop::collection::vec(counts(true), 0..6)) {
            prop_assert!(all.iter().all(RowCounts::is_balanced));
            let sum: RowCounts = all.iter().sum();
            prop_assert!(sum.is_balanced());
            prop_assert_eq!(sum.input, all.iter().map(|c| c.input).sum::<u64>());
            // The owned and the borrowed sums are one fold.
            prop_assert_eq!(all.into_iter().sum::<RowCounts>(), sum);
        }

        #[test]
        fn an_unbalanced_part_unbalances_the_sum(a in counts(true), b in counts(true), extra in 1u64..1000) {
            let mut unbalanced = b.clone();
            unbalanced.input += extra;
            prop_assert!(!unbalanced.is_balanced());
            prop_assert!(!merged(&a, &unbalanced).is_balanced());
        }
    }

    #[test]
    fn merge_adds_counts_key_by_key() {
        let mut a = RowCounts {
            input: 10,
            kept: 5,
            quarantined: map(&[("malformed_json", 1)]),
            dropped: map(&[("no_research_consent", 4)]),
            repaired: map(&[("crlf", 7)]),
        };
        a.merge(&RowCounts {
            input: 6,
            kept: 1,
            quarantined: map(&[("wrong_type", 2)]),
            dropped: map(&[
                ("no_research_consent", 2),
                ("superseded_by_later_record", 1),
            ]),
            repaired: map(&[("bom", 1), ("crlf", 1)]),
        });
        assert_eq!(
            a,
            RowCounts {
                input: 16,
                kept: 6,
                quarantined: map(&[("malformed_json", 1), ("wrong_type", 2)]),
                dropped: map(&[
                    ("no_research_consent", 6),
                    ("superseded_by_later_record", 1)
                ]),
                repaired: map(&[("bom", 1), ("crlf", 8)]),
            }
        );
        assert!(a.is_balanced());
        assert_eq!((a.quarantined_total(), a.dropped_total()), (3, 7));
    }

    #[test]
    fn the_constructors_are_balanced_and_hold_no_zero() {
        let sum: RowCounts = [
            RowCounts::kept(3),
            RowCounts::quarantined("wrong_type", 2),
            RowCounts::dropped("erased", 1),
            RowCounts::dropped("erased", 0),
            RowCounts::quarantined("missing_field", 0),
        ]
        .into_iter()
        .sum();
        assert_eq!(
            sum,
            RowCounts {
                input: 6,
                kept: 3,
                quarantined: map(&[("wrong_type", 2)]),
                dropped: map(&[("erased", 1)]),
                repaired: BTreeMap::new(),
            }
        );
        assert!(sum.is_balanced());
    }

    #[test]
    fn set_aside_beyond_is_the_difference_by_rule_and_reason() {
        let strict = RowCounts {
            input: 100,
            kept: 40,
            quarantined: map(&[("ambiguous_customer", 5), ("wrong_type", 1)]),
            dropped: map(&[("before_research_consent", 30), ("no_research_consent", 24)]),
            repaired: map(&[("crlf", 3)]),
        };
        let rubric = RowCounts {
            input: 100,
            kept: 70,
            quarantined: map(&[("wrong_type", 1)]),
            dropped: map(&[("no_research_consent", 29)]),
            repaired: map(&[("crlf", 3)]),
        };
        assert_eq!(
            strict.set_aside_beyond(&rubric),
            BTreeMap::from([
                ("ambiguous_customer".to_string(), 5),
                ("before_research_consent".to_string(), 30),
                ("no_research_consent".to_string(), -5),
            ])
        );
        assert!(strict.set_aside_beyond(&strict).is_empty());
    }

    #[test]
    fn the_serialized_form_is_stable_and_readable() {
        let counts = RowCounts {
            input: 4,
            kept: 1,
            quarantined: map(&[("wrong_type", 1), ("malformed_json", 1)]),
            dropped: map(&[("no_research_consent", 1)]),
            repaired: BTreeMap::new(),
        };
        let json = serde_json::to_string(&counts).unwrap();
        assert_eq!(
            json,
            r#"{"input":4,"kept":1,"quarantined":{"malformed_json":1,"wrong_type":1},"dropped":{"no_research_consent":1},"repaired":{}}"#
        );
        assert_eq!(serde_json::from_str::<RowCounts>(&json).unwrap(), counts);
        // Absent maps read as empty.
        assert_eq!(
            serde_json::from_str::<RowCounts>(r#"{"input":2,"kept":2}"#).unwrap(),
            RowCounts::kept(2)
        );
    }
}

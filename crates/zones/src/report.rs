//! The run report: what each transition read, kept, quarantined and dropped,
//! the quality checks, and under strict the difference to the rubric policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::contract::{CheckOutcome, GateRequest};
use crate::counts::RowCounts;
use crate::layout::{Table, Zone};
use crate::policy::Policy;
use crate::run_id::RunId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub run_id: RunId,
    pub policy: Policy,
    /// Every quality check passed.
    pub passed: bool,
    /// Whether the catalog was switched to this run's snapshots, and if not, why.
    #[serde(default)]
    pub publication: Publication,
    pub transitions: Vec<TransitionLine>,
    pub checks: Vec<CheckOutcome>,
    /// The largest peak resident set any transition reported.
    pub peak_rss_mib: Option<f64>,
    /// Under strict: per table, the rows the rubric policy gives on the same
    /// input, and the difference explained by drop rule.
    pub rubric_comparison: Vec<Comparison>,
    /// Under strict: the pseudonym key machine_learning_curated was keyed
    /// with, by fingerprint (never the key), and whether it was rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key: Option<KeyUse>,
}

/// The pseudonym key a run used: its fingerprint
/// (`crate::PseudonymKey::fingerprint`), and the previous published run's
/// when the key changed since (a rotation: every `customerKey` changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUse {
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionLine {
    pub table: Table,
    pub zone: Zone,
    pub rows: u64,
    pub snapshot: String,
    pub location: String,
    /// The transition's counts, as its result carried them.
    pub counts: RowCounts,
    /// `counts` are balanced: `input = kept + quarantined + dropped`.
    pub accounted: bool,
    pub seconds: f64,
    /// The process's peak resident set when the transition finished.
    pub peak_rss_mib: Option<f64>,
}

/// What became of a run's snapshots: published as a catalog version, or not,
/// with the reason (failed checks, another run published first, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub published: bool,
    /// The catalog version that switched to this run, when published.
    pub catalog_version: Option<u64>,
    /// One sentence a person reads: what was published, or why nothing was.
    pub detail: String,
}

impl Publication {
    pub fn published(catalog_version: u64) -> Publication {
        Publication {
            published: true,
            catalog_version: Some(catalog_version),
            detail: format!("published as catalog version {catalog_version}"),
        }
    }

    pub fn not_published(why: impl Into<String>) -> Publication {
        Publication {
            published: false,
            catalog_version: None,
            detail: format!("not published: {}", why.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub table: Table,
    pub strict_rows: u64,
    pub rubric_rows: u64,
    /// Per drop rule (and quarantine reason): rows strict sets aside minus
    /// rows rubric sets aside ([`RowCounts::set_aside_beyond`]).
    pub by_rule: BTreeMap<String, i64>,
}

impl Report {
    /// The report of a run whose checks ran; `publication` says what the
    /// gate then did (see [`Publication`]).
    pub fn build(
        request: &GateRequest,
        checks: Vec<CheckOutcome>,
        publication: Publication,
    ) -> Report {
        let mut transitions = Vec::new();
        let mut rubric_comparison = Vec::new();
        for table in Table::PRODUCED {
            let Some(r) = request.results.get(&table) else {
                continue;
            };
            transitions.push(TransitionLine {
                table,
                zone: table.zone(),
                rows: r.table.rows,
                snapshot: r.table.snapshot.clone(),
                location: r.table.location.clone(),
                counts: r.counts.clone(),
                accounted: r.counts.is_balanced(),
                seconds: r.seconds,
                peak_rss_mib: r.peak_rss_mib,
            });
            if let (Some(rubric_rows), Some(rubric)) = (r.rubric_rows, &r.rubric_counts) {
                rubric_comparison.push(Comparison {
                    table,
                    strict_rows: r.table.rows,
                    rubric_rows,
                    // Strict also quarantines what rubric would keep or drop.
                    by_rule: r.counts.set_aside_beyond(rubric),
                });
            }
        }
        let peak_rss_mib = request
            .results
            .values()
            .filter_map(|r| r.peak_rss_mib)
            .reduce(f64::max);
        Report {
            run_id: request.run_id.clone(),
            policy: request.policy,
            passed: checks.iter().all(|c| c.passed),
            publication,
            transitions,
            checks,
            peak_rss_mib,
            rubric_comparison,
            pseudonym_key: request
                .results
                .get(&Table::MachineLearningCurated)
                .and_then(|r| r.pseudonym_key_fingerprint.clone())
                .map(|fingerprint| KeyUse {
                    fingerprint,
                    rotated_from: None,
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{TableRef, TransitionResult};

    fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    fn result(table: Table, rows: u64, counts: RowCounts) -> TransitionResult {
        TransitionResult {
            transition: table,
            policy: Policy::Strict,
            table: TableRef {
                table,
                location: format!("{}/r1/", table.name()),
                snapshot: "r1".into(),
                rows,
                columns: Vec::new(),
                manifest_crc32c: None,
            },
            quarantine: None,
            rubric: None,
            counts,
            rubric_rows: None,
            rubric_counts: None,
            erased_objects: BTreeMap::new(),
            pseudonym_key_fingerprint: None,
            seconds: 1.0,
            peak_rss_mib: None,
        }
    }

    /// A report line carries the transition's counts unchanged, with their
    /// balance; the comparison with rubric is the difference of the two
    /// policies' counts by rule: a quarantine both share cancels out, one
    /// only strict makes (ambiguous readings) counts against strict.
    #[test]
    fn lines_carry_the_counts_and_the_comparison_is_their_difference_by_rule() {
        let landing = RowCounts {
            input: 10,
            kept: 4,
            quarantined: map(&[("wrong_type", 1)]),
            dropped: map(&[
                ("before_research_consent", 3),
                ("user_not_in_customer_trusted", 2),
            ]),
            repaired: map(&[("crlf", 10)]),
        };
        let landing_rubric = RowCounts {
            kept: 8,
            dropped: map(&[("user_not_in_customer_trusted", 1)]),
            ..landing.clone()
        };
        let training = RowCounts {
            input: 4,
            kept: 2,
            quarantined: map(&[("ambiguous_customer", 1)]),
            dropped: map(&[("no_candidate_reading_at_time", 1)]),
            repaired: BTreeMap::new(),
        };
        let training_rubric = RowCounts {
            input: 8,
            kept: 7,
            dropped: map(&[("no_accelerometer_reading_at_time", 1)]),
            ..RowCounts::default()
        };
        let request = GateRequest {
            run_id: RunId::parse("r1").unwrap(),
            policy: Policy::Strict,
            results: BTreeMap::from([
                (
                    Table::AccelerometerTrusted,
                    result(Table::AccelerometerTrusted, 4, landing.clone()).with_rubric(
                        None,
                        8,
                        landing_rubric,
                    ),
                ),
                (
                    Table::MachineLearningCurated,
                    result(Table::MachineLearningCurated, 5, training.clone()).with_rubric(
                        None,
                        20,
                        training_rubric,
                    ),
                ),
            ]),
        };
        let report = Report::build(&request, Vec::new(), Publication::default());
        let lines: Vec<_> = report
            .transitions
            .iter()
            .map(|l| (l.table, l.rows, &l.counts, l.accounted))
            .collect();
        assert_eq!(
            lines,
            [
                (Table::AccelerometerTrusted, 4, &landing, true),
                (Table::MachineLearningCurated, 5, &training, true)
            ]
        );
        let by_rule = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
            pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        assert_eq!(
            report.rubric_comparison,
            [
                Comparison {
                    table: Table::AccelerometerTrusted,
                    strict_rows: 4,
                    rubric_rows: 8,
                    by_rule: by_rule(&[
                        ("before_research_consent", 3),
                        ("user_not_in_customer_trusted", 1)
                    ]),
                },
                Comparison {
                    table: Table::MachineLearningCurated,
                    strict_rows: 5,
                    rubric_rows: 20,
                    by_rule: by_rule(&[
                        ("ambiguous_customer", 1),
                        ("no_accelerometer_reading_at_time", -1),
                        ("no_candidate_reading_at_time", 1)
                    ]),
                },
            ]
        );
        // An unbalanced result is reported as such.
        let mut request = request;
        request
            .results
            .get_mut(&Table::AccelerometerTrusted)
            .unwrap()
            .counts
            .input += 1;
        let report = Report::build(&request, Vec::new(), Publication::default());
        assert!(!report.transitions[0].accounted);
    }
}

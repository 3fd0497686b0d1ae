//! The run report: what each transition read, kept, quarantined and dropped,
//! the quality checks, and under strict the difference to the rubric policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::contract::{CheckOutcome, GateRequest};
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
    pub input_rows: u64,
    pub kept_rows: u64,
    pub quarantined: BTreeMap<String, u64>,
    pub dropped: BTreeMap<String, u64>,
    /// Lossless repairs made while reading landing records, by kind (see
    /// `zones::landing::Repair`); empty for transitions that read tables.
    #[serde(default)]
    pub repaired: BTreeMap<String, u64>,
    /// `input_rows == kept_rows + quarantined + dropped`.
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
    /// Per drop rule: rows strict drops minus rows rubric drops.
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
            let quarantined: u64 = r.quarantined.values().sum();
            let dropped: u64 = r.dropped.values().sum();
            transitions.push(TransitionLine {
                table,
                zone: table.zone(),
                rows: r.table.rows,
                snapshot: r.table.snapshot.clone(),
                location: r.table.location.clone(),
                input_rows: r.input_rows,
                kept_rows: r.kept_rows,
                quarantined: r.quarantined.clone(),
                dropped: r.dropped.clone(),
                repaired: r.repaired.clone(),
                accounted: r.input_rows == r.kept_rows + quarantined + dropped,
                seconds: r.seconds,
                peak_rss_mib: r.peak_rss_mib,
            });
            if let Some(rubric_rows) = r.rubric_rows {
                let mut by_rule: BTreeMap<String, i64> = BTreeMap::new();
                for (rule, n) in &r.dropped {
                    *by_rule.entry(rule.clone()).or_default() += *n as i64;
                }
                for (rule, n) in &r.rubric_dropped {
                    *by_rule.entry(rule.clone()).or_default() -= *n as i64;
                }
                // Strict quarantines what rubric would have kept or dropped.
                for (reason, n) in &r.quarantined {
                    if reason == crate::quarantine::QuarantineReason::AmbiguousCustomer.as_str() {
                        *by_rule.entry(reason.clone()).or_default() += *n as i64;
                    }
                }
                by_rule.retain(|_, v| *v != 0);
                rubric_comparison.push(Comparison {
                    table,
                    strict_rows: r.table.rows,
                    rubric_rows,
                    by_rule,
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

//! Transitions 2 and 4 as a rule on one reading at a time: a reading is
//! judged alone against a small index of customers, so the rule is applied
//! while a landing object is parsed (`crate::landing::parse_judged`), and
//! a reading's row is built only when it is kept. Pure: frames in, verdicts out.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use polars::prelude::*;
use siphasher::sip128::SipHasher13;

use crate::erasure::Erasure;
use crate::policy::{CONSENT, Policy, rule};
use crate::schema::Dataset;

/// Transitions 2 and 4 judge each reading on its own against an index of
/// customers (key -> earliest research consent, a [`ConsentIndex`]), so they
/// run while a landing object is parsed (`crate::landing::parse_judged`) and
/// a reading's row is built only when it is kept.
#[derive(Debug, Clone)]
pub struct ReadingRule {
    policy: Policy,
    key_column: &'static str,
    time_column: &'static str,
    unknown: &'static str,
    consents: ConsentIndex,
    dataset: Dataset,
    erasure: Arc<Erasure>,
}

/// What a rule knows of a reading's key, looked up once per run of equal keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The key is an erased person's ([`rule::ERASED`]).
    pub erased: bool,
    /// The earliest research consent of the customers with this key; None
    /// when no customer of the index has it.
    pub consent: Option<i64>,
}

impl ReadingRule {
    /// Transition 2, accelerometer_landing + customer_trusted ->
    /// accelerometer_trusted: a reading is kept when its user is a
    /// customer_trusted email and, under strict, it was not taken before that
    /// customer's consent.
    pub fn accelerometer_trusted(
        policy: Policy,
        customer_trusted: &DataFrame,
    ) -> PolarsResult<Self> {
        let [key, _] = Self::index_columns(Dataset::Accelerometer);
        let consents = ConsentIndex::new(customer_trusted, key)?;
        Ok(ReadingRule {
            policy,
            key_column: "user",
            time_column: "timestamp",
            unknown: rule::USER_NOT_TRUSTED,
            consents,
            dataset: Dataset::Accelerometer,
            erasure: Arc::default(),
        })
    }

    /// Transition 4, step_trainer_landing + customers_curated ->
    /// step_trainer_trusted: a reading is kept when a customers_curated
    /// customer has its serial and, under strict, one of them had consented by
    /// the reading's time.
    pub fn step_trainer_trusted(
        policy: Policy,
        customers_curated: &DataFrame,
    ) -> PolarsResult<Self> {
        let [key, _] = Self::index_columns(Dataset::StepTrainer);
        let consents = ConsentIndex::new(customers_curated, key)?;
        Ok(ReadingRule {
            policy,
            key_column: "serialNumber",
            time_column: "sensorReadingTime",
            unknown: rule::SERIAL_NOT_CURATED,
            consents,
            dataset: Dataset::StepTrainer,
            erasure: Arc::default(),
        })
    }

    /// The columns of the customer table that the rule of `dataset` reads:
    /// the key its readings are looked up by (a customer's email, or a
    /// step trainer's serial) and the research consent. A reader need
    /// decode no other (the index then holds a fraction of the table).
    pub fn index_columns(dataset: Dataset) -> [&'static str; 2] {
        match dataset {
            Dataset::StepTrainer => ["serialNumber", CONSENT],
            Dataset::Customer | Dataset::Accelerometer => ["email", CONSENT],
        }
    }

    /// The same rule, which first drops the records of the people `erasure`
    /// erases ([`rule::ERASED`], before every other rule, under both policies).
    pub fn with_erasure(self, erasure: Arc<Erasure>) -> Self {
        ReadingRule { erasure, ..self }
    }

    /// The erasure this rule applies first.
    pub fn erasure(&self) -> &Erasure {
        &self.erasure
    }

    /// What the rule knows of `key`: erased or not, and the earliest
    /// research consent of the customers with this key.
    pub fn standing(&self, key: &str) -> Standing {
        Standing {
            erased: self.erasure.record(self.dataset, key),
            consent: self.consents.get(key),
        }
    }

    /// None when a reading at `time`, whose key has `standing` (from
    /// [`Self::standing`]), is kept; else the rule that drops it.
    pub fn judge(&self, standing: Standing, time: i64) -> Option<&'static str> {
        if standing.erased {
            return Some(rule::ERASED);
        }
        match standing.consent {
            None => Some(self.unknown),
            Some(consent) if self.policy == Policy::Strict && time < consent => {
                Some(rule::BEFORE_CONSENT)
            }
            Some(_) => None,
        }
    }

    pub fn key_column(&self) -> &'static str {
        self.key_column
    }

    pub fn time_column(&self) -> &'static str {
        self.time_column
    }
}

/// Each key's earliest research consent among a customer table (rubric
/// tables may repeat a customer; a serial may belong to several customers),
/// in 24 bytes a key, whatever its length: every landing Map child holds
/// one (two under strict: the policy's and the rubric shadow's) for the
/// whole customer table, so its size is what grows with the customers.
///
/// A key is held as its 128-bit SipHash-1-3 fingerprint under a key drawn
/// for each index from the process's randomness ([`RandomState`]), the
/// fingerprints sorted beside their consents. Two different keys share a
/// fingerprint with probability 2^-128 (for 10^7 customers and 10^7
/// distinct reading keys, below 10^-24 per run), and no one can choose keys
/// that collide without the index's key, which is never written anywhere.
/// (A `PlHashMap<String, i64>` held about 150 bytes a key.)
#[derive(Clone)]
pub struct ConsentIndex {
    hasher: SipHasher13,
    /// (the fingerprint's two halves, the earliest consent), sorted, one
    /// per key: 24 bytes, where a `(u128, i64)` takes 32.
    entries: Vec<(u64, u64, i64)>,
}

impl std::fmt::Debug for ConsentIndex {
    /// The number of keys only: the hasher's key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentIndex")
            .field("keys", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl ConsentIndex {
    /// The index of `customers`' column `key` (str) against its research
    /// consent (`CONSENT`, i64 epoch milliseconds); rows with a null in
    /// either are not indexed.
    ///
    /// Errors: either column missing or of another type.
    pub fn new(customers: &DataFrame, key: &str) -> PolarsResult<Self> {
        let keys = customers.column(key)?.str()?;
        let consents = customers.column(CONSENT)?.i64()?;
        let random = RandomState::new();
        let hasher = SipHasher13::new_with_keys(random.hash_one(0u8), random.hash_one(1u8));
        let mut entries: Vec<(u64, u64, i64)> = keys
            .iter()
            .zip(consents.iter())
            .filter_map(|(key, consent)| {
                let (first, second) = hasher.hash(key?.as_bytes()).as_u64();
                Some((first, second, consent?))
            })
            .collect();
        // A key's entries next to each other, its earliest consent first.
        entries.sort_unstable();
        entries.dedup_by_key(|&mut (first, second, _)| (first, second));
        entries.shrink_to_fit();
        Ok(ConsentIndex { hasher, entries })
    }

    /// The earliest research consent of the customers with `key`; None when
    /// no customer has it.
    pub fn get(&self, key: &str) -> Option<i64> {
        let fingerprint = self.hasher.hash(key.as_bytes()).as_u64();
        let at = self
            .entries
            .binary_search_by(|&(first, second, _)| (first, second).cmp(&fingerprint))
            .ok()?;
        Some(self.entries[at].2)
    }

    /// How many distinct keys the index holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

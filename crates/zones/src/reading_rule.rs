//! Transitions 2 and 4 as a rule on one reading at a time: a reading is
//! judged alone against a small index of customers, so the rule is applied
//! while a landing object is parsed (`crate::landing::parse_judged`), and
//! a reading's row is built only when it is kept. Pure: frames in, verdicts out.

use std::sync::Arc;

use polars::prelude::*;

use crate::erasure::Erasure;
use crate::policy::{CONSENT, Policy, rule};
use crate::schema::Dataset;

/// Transitions 2 and 4 judge each reading on its own against a small index of
/// customers (key -> earliest research consent), so they run while a landing
/// object is parsed (`crate::landing::parse_judged`) and a reading's row is
/// built only when it is kept.
#[derive(Debug, Clone)]
pub struct ReadingRule {
    policy: Policy,
    key_column: &'static str,
    time_column: &'static str,
    unknown: &'static str,
    consents: PlHashMap<String, i64>,
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
        let consents = earliest_consents(customer_trusted, key)?;
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
        let consents = earliest_consents(customers_curated, key)?;
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
            consent: self.consents.get(key).copied(),
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

/// Each key's earliest research consent among `customers` (rubric tables may
/// repeat a customer; a serial may belong to several customers).
fn earliest_consents(customers: &DataFrame, key: &str) -> PolarsResult<PlHashMap<String, i64>> {
    let keys = customers.column(key)?.str()?;
    let consents = customers.column(CONSENT)?.i64()?;
    let mut index = PlHashMap::with_capacity(customers.height());
    for (key, consent) in keys.iter().zip(consents.iter()) {
        if let (Some(key), Some(consent)) = (key, consent) {
            index
                .entry(key.to_string())
                .and_modify(|c: &mut i64| *c = (*c).min(consent))
                .or_insert(consent);
        }
    }
    Ok(index)
}

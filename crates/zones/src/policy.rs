//! The two policies and the stable names of the rules by which they drop rows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The customer column that holds the research consent time (epoch ms).
pub const CONSENT: &str = "shareWithResearchAsOfDate";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// What privacy requires: consent is checked per reading, pairings are
    /// confirmed per customer, the training table carries a pseudonym only.
    #[default]
    Strict,
    /// The reference definition every public implementation follows.
    Rubric,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Strict => "strict",
            Policy::Rubric => "rubric",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(Policy::Strict),
            "rubric" => Ok(Policy::Rubric),
            other => Err(format!(
                "unknown policy `{other}` (expected `strict` or `rubric`)"
            )),
        }
    }
}

/// Stable names of the drop rules; they key the run report.
pub mod rule {
    /// customer_trusted: the (latest, under strict) record has no research consent.
    pub const NO_RESEARCH_CONSENT: &str = "no_research_consent";
    /// customer_trusted (strict): the consent time is at or before the epoch
    /// (`shareWithResearchAsOfDate <= 0`), a sentinel some producers write
    /// for "no consent". Rubric keeps such a customer (`IS NOT NULL`).
    pub const IMPLAUSIBLE_CONSENT_DATE: &str = "implausible_consent_date";
    /// customer_trusted (strict): an older record of an email with a later one.
    pub const SUPERSEDED: &str = "superseded_by_later_record";
    /// accelerometer_trusted: the reading's user is not a customer_trusted email.
    pub const USER_NOT_TRUSTED: &str = "user_not_in_customer_trusted";
    /// accelerometer_trusted, step_trainer_trusted (strict): taken before consent.
    pub const BEFORE_CONSENT: &str = "before_research_consent";
    /// customers_curated: the customer has no accelerometer_trusted reading.
    pub const NO_READINGS: &str = "no_accelerometer_reading";
    /// customers_curated (rubric): a repeated identical customer_trusted row.
    pub const DUPLICATE_ROW: &str = "duplicate_customer_row";
    /// step_trainer_trusted: no customers_curated customer has the serial.
    pub const SERIAL_NOT_CURATED: &str = "serial_not_in_customers_curated";
    /// machine_learning_curated (rubric): no accelerometer reading at that time.
    pub const NO_READING_AT_TIME: &str = "no_accelerometer_reading_at_time";
    /// machine_learning_curated (strict): no candidate customer has a reading at that time.
    pub const NO_CONFIRMED_CUSTOMER: &str = "no_candidate_reading_at_time";
    /// customer_trusted, accelerometer_trusted, step_trainer_trusted (both
    /// policies; judged before every other rule): the record belongs to a
    /// person who asked to be erased (`crate::erasure`). A customer record by
    /// its email, a reading by its user, a step reading by a serial that only
    /// erased customers hold; a malformed line whose text holds an erased
    /// address is dropped by this rule instead of quarantined.
    pub const ERASED: &str = "erased";
}

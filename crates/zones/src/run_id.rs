//! Run ids: the name of one execution of the pipeline (on AWS, the Step
//! Functions execution's name), and the snapshot name of every table it
//! writes. A run id is data, never a path: it is validated once, where it
//! enters (the CLI, the local runner, a Lambda's request), and only a
//! [`RunId`] reaches `layout`.
//!
//! The rule: 1 to 80 characters of ASCII letters, digits, `_`, `.` and `-`,
//! starting with a letter or a digit, with no `..`. That is a subset of what
//! Step Functions accepts as an execution name (which also allows `..`,
//! spaces and most other characters) and of what S3 keys, Glue database
//! names (after lowercasing and a hash, see `lakehouse::glue`) and file
//! names on every platform accept, so one id works everywhere; it cannot
//! name a parent folder, an empty path segment or a hidden file.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest run id: Step Functions' limit on an execution name.
pub const MAX_LEN: usize = 80;

/// A validated run id (see the module docs for the rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

/// Why a string is not a run id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{shown}` is not a valid run id: {reason} (1-{MAX_LEN} characters of A-Z a-z 0-9 _ . -, starting with a letter or digit, no `..`)", shown = shown(.id))]
pub struct InvalidRunId {
    pub id: String,
    pub reason: &'static str,
}

/// The id as it is shown in a message: escaped, and cut after 100 characters.
fn shown(id: &str) -> String {
    let escaped: String = id.escape_debug().collect();
    match escaped.char_indices().nth(100) {
        Some((cut, _)) => format!("{}...", &escaped[..cut]),
        None => escaped,
    }
}

impl RunId {
    pub fn parse(id: &str) -> Result<RunId, InvalidRunId> {
        let invalid = |reason| {
            Err(InvalidRunId {
                id: id.to_string(),
                reason,
            })
        };
        let Some(first) = id.chars().next() else {
            return invalid("it is empty");
        };
        if id.len() > MAX_LEN {
            return invalid("it is longer than 80 characters");
        }
        if !first.is_ascii_alphanumeric() {
            return invalid("it must start with a letter or a digit");
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(InvalidRunId {
                id: id.to_string(),
                reason: if c == '/' || c == '\\' {
                    "it contains a path separator"
                } else {
                    "it contains a character outside A-Z a-z 0-9 _ . -"
                },
            });
        }
        if id.contains("..") {
            return invalid("it contains `..`");
        }
        Ok(RunId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for RunId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for RunId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RunId {
    type Err = InvalidRunId;
    fn from_str(s: &str) -> Result<RunId, InvalidRunId> {
        RunId::parse(s)
    }
}

impl TryFrom<String> for RunId {
    type Error = InvalidRunId;
    fn try_from(s: String) -> Result<RunId, InvalidRunId> {
        RunId::parse(&s)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl PartialEq<str> for RunId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for RunId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_generated_ids_and_execution_uuids() {
        for id in [
            "20261123T095013Z-3fa2",
            "sample",
            "a",
            "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "v1.2_retry",
            &"x".repeat(80),
        ] {
            assert_eq!(RunId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_every_id_that_could_act_as_a_path() {
        let reason = |id: &str| RunId::parse(id).unwrap_err().reason;
        assert_eq!(reason(""), "it is empty");
        assert_eq!(reason("."), "it must start with a letter or a digit");
        assert_eq!(reason(".."), "it must start with a letter or a digit");
        assert_eq!(
            reason("../../../D"),
            "it must start with a letter or a digit"
        );
        assert_eq!(reason("a/b"), "it contains a path separator");
        assert_eq!(reason("a\\b"), "it contains a path separator");
        assert_eq!(reason("a..b"), "it contains `..`");
        assert_eq!(reason("x.."), "it contains `..`");
        assert_eq!(reason("-x"), "it must start with a letter or a digit");
        assert_eq!(reason("_x"), "it must start with a letter or a digit");
        assert_eq!(
            reason("a b"),
            "it contains a character outside A-Z a-z 0-9 _ . -"
        );
        assert_eq!(reason("é"), "it must start with a letter or a digit");
        assert_eq!(reason(&"x".repeat(81)), "it is longer than 80 characters");
        assert_eq!(reason(&"x".repeat(300)), "it is longer than 80 characters");
    }

    #[test]
    fn deserializing_validates() {
        let ok: RunId = serde_json::from_str("\"r1\"").unwrap();
        assert_eq!(ok, "r1");
        let err = serde_json::from_str::<RunId>("\"..\"").unwrap_err();
        assert!(err.to_string().contains("is not a valid run id"), "{err}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"r1\"");
    }

    #[test]
    fn messages_show_long_ids_cut() {
        let err = RunId::parse(&"y".repeat(300)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("`{}...`", "y".repeat(100))),
            "{text}"
        );
    }
}

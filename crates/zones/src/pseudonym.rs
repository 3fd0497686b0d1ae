//! Keyed HMACs: the pseudonym (`customerKey`) that lets the training table be
//! split by person without naming anyone, and the erasure subject that lets
//! a request name a person without holding an address. Two keys, so the
//! readers of one cannot compute the other.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key behind `customerKey`: read only by the function that writes
/// machine_learning_curated (and by the operator who rotates it).
#[derive(Clone)]
pub struct PseudonymKey(Secret);

/// The key behind erasure subjects: read by the landing function (which
/// drops and rewrites erased records) and by the operator who files
/// requests. A key of its own, so neither reader can compute the other's
/// HMACs: the landing function cannot re-identify a `customerKey`.
#[derive(Clone)]
pub struct ErasureKey(Secret);

#[derive(Clone)]
struct Secret(std::sync::Arc<[u8]>);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

impl std::fmt::Debug for ErasureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasureKey(<redacted>)")
    }
}

impl PseudonymKey {
    pub fn new(secret: &[u8]) -> Self {
        PseudonymKey(Secret(secret.into()))
    }

    /// Lower-case hex HMAC-SHA256 of `value`.
    pub fn pseudonym(&self, value: &str) -> String {
        self.0.mac(&[value.as_bytes()])
    }

    /// The key's fingerprint: the first 16 hex digits of HMAC-SHA256 of
    /// [`FINGERPRINT_LABEL`]. It shows that a key changed (a report records
    /// it) and reveals nothing about the key.
    pub fn fingerprint(&self) -> String {
        self.0.fingerprint()
    }
}

impl ErasureKey {
    pub fn new(secret: &[u8]) -> Self {
        ErasureKey(Secret(secret.into()))
    }

    /// The erasure subject of an email address: lower-case hex HMAC-SHA256
    /// of [`ERASURE_LABEL`] followed by the address as [`normalise_email`]
    /// gives it. The request log that stores subjects holds no address, and
    /// (another key, another label) a subject is never a `customerKey`.
    pub fn subject(&self, email: &str) -> String {
        self.0
            .mac(&[ERASURE_LABEL.as_bytes(), normalise_email(email).as_bytes()])
    }

    /// The key's fingerprint, as [`PseudonymKey::fingerprint`].
    pub fn fingerprint(&self) -> String {
        self.0.fingerprint()
    }
}

impl Secret {
    fn fingerprint(&self) -> String {
        let mut mac = self.mac(&[FINGERPRINT_LABEL.as_bytes()]);
        mac.truncate(16);
        mac
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

/// `_keys/pseudonym.json`: which pseudonym key the warehouse's `customerKey`s
/// are made with (its fingerprint, never the key), and since when. A run that finds
/// another key, or none, refuses rather than change every `customerKey`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyRecord {
    pub fingerprint: String,
    /// Since when it is used: `run <run id>` (the first run that made
    /// pseudonyms with it) or `stedi rotate-key`.
    pub since: String,
    /// The fingerprint of the key it replaced (`stedi rotate-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<String>,
}

/// Prefixed to an address before its erasure subject is computed (ends in
/// a NUL, which no address holds, so no address collides with another's label).
pub const ERASURE_LABEL: &str = "stedi/erasure-subject/v1\0";

/// What the key's fingerprint is the HMAC of.
pub const FINGERPRINT_LABEL: &str = "stedi/pseudonym-key-fingerprint/v1";

/// An address as erasure compares it: surrounding whitespace removed, lower case.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

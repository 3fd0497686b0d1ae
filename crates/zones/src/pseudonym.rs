//! Keyed pseudonyms: HMAC-SHA256 of an identifier under a secret key, so the
//! training table can be split by person without naming anyone.

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct PseudonymKey(std::sync::Arc<[u8]>);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

impl PseudonymKey {
    pub fn new(secret: &[u8]) -> Self {
        PseudonymKey(secret.into())
    }

    /// Lower-case hex HMAC-SHA256 of `value`.
    pub fn pseudonym(&self, value: &str) -> String {
        self.mac(&[value.as_bytes()])
    }

    /// The erasure subject of an email address: lower-case hex HMAC-SHA256
    /// of [`ERASURE_LABEL`] followed by the address as [`normalise_email`]
    /// gives it. The label separates the domains: a subject is never a
    /// published `customerKey` (the HMAC of the bare address), and the
    /// request log that stores subjects holds no address.
    pub fn erasure_subject(&self, email: &str) -> String {
        self.mac(&[ERASURE_LABEL.as_bytes(), normalise_email(email).as_bytes()])
    }

    /// The key's fingerprint: the first 16 hex digits of HMAC-SHA256 of
    /// [`FINGERPRINT_LABEL`]. It shows that a key changed (a report records
    /// it) and reveals nothing about the key.
    pub fn fingerprint(&self) -> String {
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

/// Prefixed to an address before its erasure subject is computed (ends in
/// a NUL, which no address holds, so no address collides with another's label).
pub const ERASURE_LABEL: &str = "stedi/erasure-subject/v1\0";

/// What the key's fingerprint is the HMAC of.
pub const FINGERPRINT_LABEL: &str = "stedi/pseudonym-key-fingerprint/v1";

/// An address as erasure compares it: surrounding whitespace removed, lower case.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

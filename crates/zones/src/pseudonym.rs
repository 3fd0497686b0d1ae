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
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

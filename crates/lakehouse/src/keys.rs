//! The two HMAC keys (`zones::pseudonym`) and where they live:
//! - the pseudonym key behind `customerKey`, read only by the writer of
//!   machine_learning_curated (trusted-to-curated) and by `stedi rotate-key`;
//! - the erasure key behind erasure subjects, read by the landing function
//!   (which drops and rewrites erased records) and by `stedi erase`.
//!
//! Two keys, so that neither reader can compute the other's HMACs: the
//! landing function, which handles raw addresses, cannot recompute a
//! published `customerKey`. Locally each key is a file under `_secrets/` in
//! the warehouse (owner-only), created on first use; on AWS each is a
//! Secrets Manager secret that the SAM template creates (lakehouse feature
//! `secrets`), read with GetSecretValue whenever a handler needs it.

#[cfg(feature = "s3")]
use std::sync::Arc;

use zones::pseudonym::KeyRecord;
use zones::{ErasureKey, PseudonymKey, layout};

use crate::Env;
use crate::error::{Error, Result};
use crate::store::Store;

/// The shortest key accepted: 32 bytes, HMAC-SHA-256's block of security.
pub const MIN_KEY_BYTES: usize = 32;

/// Where one key lives.
#[derive(Debug, Default)]
pub enum KeySource {
    /// A file under `_secrets/` in the warehouse (owner-only locally).
    #[default]
    Warehouse,
    /// An AWS Secrets Manager secret, created by the SAM template.
    #[cfg(feature = "secrets")]
    SecretsManager(crate::secrets::SecretKey),
}

/// Where the two keys live.
#[derive(Debug, Default)]
pub struct Keys {
    /// `STEDI_PSEUDONYM_SECRET`, else `_secrets/pseudonym.key`.
    pub pseudonym: KeySource,
    /// `STEDI_ERASURE_SECRET`, else `_secrets/erasure.key`.
    pub erasure: KeySource,
}

impl Keys {
    /// The sources `config` names: a secret where one is set, else the warehouse.
    #[cfg(feature = "s3")]
    pub(crate) fn from_config(aws: &Arc<crate::aws::Aws>, config: &crate::Config) -> Result<Keys> {
        let source = |secret: &Option<String>, setting: &'static str| -> Result<KeySource> {
            match secret {
                None => Ok(KeySource::Warehouse),
                #[cfg(feature = "secrets")]
                Some(id) => {
                    let _ = setting;
                    Ok(KeySource::SecretsManager(crate::secrets::SecretKey::new(
                        aws.clone(),
                        id,
                    )))
                }
                #[cfg(not(feature = "secrets"))]
                Some(id) => {
                    let _ = aws;
                    Err(crate::not_built(setting, id, "secrets"))
                }
            }
        };
        Ok(Keys {
            pseudonym: source(&config.pseudonym_secret, "STEDI_PSEUDONYM_SECRET")?,
            erasure: source(&config.erasure_secret, "STEDI_ERASURE_SECRET")?,
        })
    }
}

impl KeySource {
    /// Where the key is read from, for messages. `local` is its warehouse key.
    fn location(&self, store: &dyn Store, local: &str) -> String {
        match self {
            KeySource::Warehouse => store.url(local),
            #[cfg(feature = "secrets")]
            KeySource::SecretsManager(secret) => {
                format!("Secrets Manager secret {}", secret.secret_id())
            }
        }
    }

    /// Where the key is read from, and its bytes if present.
    fn read(&self, store: &dyn Store, local: &str) -> Result<(String, Option<Vec<u8>>)> {
        let bytes = match self {
            KeySource::Warehouse => match store.get(local) {
                Ok(bytes) => Some(bytes),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            #[cfg(feature = "secrets")]
            KeySource::SecretsManager(secret) => secret.get()?,
        };
        Ok((self.location(store, local), bytes))
    }

    /// Stores a new random 32-byte key and returns it. `replace`: over the
    /// current one (a rotation); else only if absent, atomically with its
    /// content, so two first users agree on one key (warehouse only: the
    /// stack creates a secret, and a function never does).
    fn store_new(&self, store: &dyn Store, local: &str, replace: bool) -> Result<Vec<u8>> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(Error::NoRandomness)?;
        match self {
            KeySource::Warehouse if replace => store.put(local, &bytes)?,
            KeySource::Warehouse => {
                store.put_if_absent(local, &bytes)?;
                return store.get(local);
            }
            #[cfg(feature = "secrets")]
            KeySource::SecretsManager(secret) => secret.put(&bytes)?,
        }
        Ok(bytes.to_vec())
    }
}

/// `bytes` as a key, refused if shorter than [`MIN_KEY_BYTES`].
fn checked(what: &str, location: &str, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if bytes.len() < MIN_KEY_BYTES {
        return Err(Error::Damaged {
            key: location.to_string(),
            what: format!(
                "the {what} is {} bytes, fewer than {MIN_KEY_BYTES}: anyone could recompute its HMACs; restore the key",
                bytes.len()
            ),
        });
    }
    Ok(bytes)
}

impl Env {
    /// The pseudonym key `run_id` keys machine_learning_curated with,
    /// created on first use in a local warehouse. `_keys/pseudonym.json`
    /// records which key the warehouse's pseudonyms are made with: once it
    /// exists, a missing key or another key is an error, never silently
    /// used (every `customerKey` would change); `stedi rotate-key` is the
    /// deliberate way to a new one.
    ///
    /// Errors: [`Error::KeyGone`] (missing; a secret without a value is
    /// always an error, as the stack creates it and a function cannot);
    /// [`Error::KeyChanged`] (another key than the record's);
    /// [`Error::Damaged`] (too short, or a damaged record).
    pub fn pseudonym_key(&self, run_id: &zones::RunId) -> Result<PseudonymKey> {
        let (store, local) = (self.store.as_ref(), layout::pseudonym_key_key());
        let source = &self.keys.pseudonym;
        let record = key_record(store)?;
        let (location, bytes) = source.read(store, local)?;
        let bytes = match (bytes, &record, source) {
            (Some(bytes), _, _) => bytes,
            (None, None, KeySource::Warehouse) => source.store_new(store, local, false)?,
            (None, record, _) => {
                return Err(Error::KeyGone {
                    key: location,
                    since: record
                        .as_ref()
                        .map_or_else(|| "the stack was created".into(), |r| r.since.clone()),
                });
            }
        };
        let key = PseudonymKey::new(&checked("pseudonym key", &location, bytes)?);
        let fingerprint = key.fingerprint();
        match record {
            None => {
                let record = KeyRecord {
                    fingerprint,
                    since: format!("run {run_id}"),
                    rotated_from: None,
                };
                store.put_if_absent(layout::pseudonym_key_record_key(), &record_bytes(&record))?;
            }
            Some(record) if record.fingerprint == fingerprint => {}
            Some(record) => {
                return Err(Error::KeyChanged {
                    key: location,
                    since: record.since,
                    expected: record.fingerprint,
                    found: fingerprint,
                });
            }
        }
        Ok(key)
    }

    /// The erasure key to file a request with (`stedi erase`), created on
    /// first use in a local warehouse.
    ///
    /// Errors: [`Error::ErasureKeyGone`] for a secret without a value;
    /// [`Error::Damaged`] (too short).
    pub fn erasure_key_to_file(&self) -> Result<ErasureKey> {
        let (store, local) = (self.store.as_ref(), layout::erasure_key_key());
        let source = &self.keys.erasure;
        let (location, bytes) = source.read(store, local)?;
        let bytes = match (bytes, source) {
            (Some(bytes), _) => bytes,
            (None, KeySource::Warehouse) => source.store_new(store, local, false)?,
            #[cfg(feature = "secrets")]
            (None, KeySource::SecretsManager(_)) => {
                return Err(Error::ErasureKeyGone {
                    key: location,
                    requests: Vec::new(),
                });
            }
        };
        Ok(ErasureKey::new(&checked("erasure key", &location, bytes)?))
    }

    /// The erasure key to apply the `pending` requests with: never created
    /// (a new key would match none of them).
    ///
    /// Errors: [`Error::ErasureKeyGone`] naming `pending`; [`Error::Damaged`].
    pub fn erasure_key(&self, pending: &[String]) -> Result<ErasureKey> {
        let (location, bytes) = self
            .keys
            .erasure
            .read(self.store.as_ref(), layout::erasure_key_key())?;
        let bytes = bytes.ok_or_else(|| Error::ErasureKeyGone {
            key: location.clone(),
            requests: pending.to_vec(),
        })?;
        Ok(ErasureKey::new(&checked("erasure key", &location, bytes)?))
    }

    /// Where the erasure key is read from, for messages.
    pub fn erasure_key_location(&self) -> String {
        self.keys
            .erasure
            .location(self.store.as_ref(), layout::erasure_key_key())
    }
}

/// `_keys/pseudonym.json`, if any.
fn key_record(store: &dyn Store) -> Result<Option<KeyRecord>> {
    let key = layout::pseudonym_key_record_key();
    match store.get(key) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Damaged {
                key: store.url(key),
                what: format!("not a pseudonym key record: {e}"),
            }),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn record_bytes(record: &KeyRecord) -> Vec<u8> {
    serde_json::to_vec_pretty(record).expect("records serialize")
}

/// Rotates the pseudonym key: a new random 32-byte key replaces the current
/// one now (locally `_secrets/pseudonym.key`, owner-only; on AWS the
/// secret's value). The next run keys machine_learning_curated with it, and
/// its report names the old fingerprint as `rotated_from`. Returns the old
/// key's fingerprint (None if there was no key) and the new one's. The only
/// way to a new key once pseudonyms were published: a missing key is
/// refused ([`Error::KeyGone`]). Erasure requests are unaffected: their
/// subjects are HMACs under the erasure key.
pub fn rotate_key(env: &Env, now_ms: u64) -> Result<(Option<String>, String)> {
    let (store, local) = (env.store.as_ref(), layout::pseudonym_key_key());
    let source = &env.keys.pseudonym;
    let old = source
        .read(store, local)?
        .1
        .map(|b| PseudonymKey::new(&b).fingerprint());
    let new = PseudonymKey::new(&source.store_new(store, local, true)?).fingerprint();
    let record = KeyRecord {
        fingerprint: new.clone(),
        since: "stedi rotate-key".into(),
        rotated_from: old.clone(),
    };
    store.put(layout::pseudonym_key_record_key(), &record_bytes(&record))?;
    tracing::info!(old = old.as_deref(), new = %new, now_ms, "pseudonym key rotated");
    Ok((old, new))
}

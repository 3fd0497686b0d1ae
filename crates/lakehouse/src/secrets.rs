//! A key in AWS Secrets Manager (the pseudonym key, `STEDI_PSEUDONYM_SECRET`,
//! or the erasure key, `STEDI_ERASURE_SECRET`: a secret id or ARN, read
//! from the environment once at cold start; see `keys.rs`). The value is
//! read with GetSecretValue each time a handler needs the key, never kept
//! across invocations, so a rotation (`stedi rotate-key`, PutSecretValue)
//! takes effect at the next run even in a warm function. The key is the
//! secret's binary value, or its string's UTF-8 bytes (the SAM template
//! generates 64 random letters and digits).

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;

use crate::aws::{Aws, sdk_error};
use crate::error::Result;

/// One secret holding a key.
#[derive(Debug)]
pub struct SecretKey {
    aws: Arc<Aws>,
    client: Client,
    secret_id: String,
}

impl SecretKey {
    pub fn new(aws: Arc<Aws>, secret_id: &str) -> SecretKey {
        SecretKey {
            client: Client::new(&aws.config),
            aws,
            secret_id: secret_id.to_string(),
        }
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The key's bytes (one GetSecretValue); None when the secret, or its
    /// value, is gone.
    pub fn get(&self) -> Result<Option<Vec<u8>>> {
        let answer = self.aws.block_on(
            self.client
                .get_secret_value()
                .secret_id(&self.secret_id)
                .send(),
        );
        let value = match answer {
            Ok(value) => value,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(sdk_error(
                    "Secrets Manager",
                    "GetSecretValue",
                    &self.secret_id,
                )(e));
            }
        };
        let bytes = match (value.secret_binary(), value.secret_string()) {
            (Some(binary), _) => binary.as_ref().to_vec(),
            (None, Some(text)) => text.as_bytes().to_vec(),
            (None, None) => return Ok(None),
        };
        tracing::info!(secret = %self.secret_id, "read a key from Secrets Manager");
        Ok(Some(bytes))
    }

    /// Stores `bytes` as the secret's new current value (PutSecretValue).
    pub fn put(&self, bytes: &[u8]) -> Result<()> {
        self.aws
            .block_on(
                self.client
                    .put_secret_value()
                    .secret_id(&self.secret_id)
                    .secret_binary(Blob::new(bytes))
                    .send(),
            )
            .map_err(sdk_error(
                "Secrets Manager",
                "PutSecretValue",
                &self.secret_id,
            ))?;
        Ok(())
    }
}

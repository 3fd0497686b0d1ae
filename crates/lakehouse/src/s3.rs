//! The warehouse in an S3 bucket (or any S3-compatible endpoint named by
//! `AWS_ENDPOINT_URL`), behind the same [`Store`] interface as the local directory.

use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};

use crate::aws::{Aws, sdk_error};
use crate::error::{Error, Result};
use crate::store::{ObjectInfo, Store};

/// Objects at least this large are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
/// Size of each part but the last (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;
/// Keys per `DeleteObjects` request (S3's limit).
pub const DELETE_BATCH: usize = 1000;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone)]
pub struct S3Store {
    aws: Arc<Aws>,
    client: Client,
    bucket: String,
    /// The warehouse root inside the bucket: empty or ending in `/`.
    prefix: String,
}

/// Splits `s3://bucket/some/prefix` into the bucket and a `/`-terminated prefix.
pub fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| Error::Config {
        setting: "STEDI_WAREHOUSE",
        problem: format!("`{url}` is not an s3://bucket/prefix URL"),
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::Config {
            setting: "STEDI_WAREHOUSE",
            problem: format!("`{url}` names no bucket"),
        });
    }
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    Ok((bucket.to_string(), prefix))
}

impl S3Store {
    /// GetObject with the checksum checked; a missing key is [`Error::NotFound`].
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            // The SDK checks the body against the object's checksum.
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(response) => Ok(response),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Err(Error::NotFound {
                    store: self.url(""),
                    key: key.to_string(),
                })
            }
            Err(e) => Err(sdk_error("S3", "GetObject", self.url(key))(e)),
        }
    }

    /// A body that broke off while streaming: transient.
    fn body_error(&self, key: &str, e: impl std::fmt::Display) -> Error {
        Error::Aws {
            service: "S3",
            op: "GetObject (body)",
            target: self.url(key),
            status: None,
            code: None,
            message: e.to_string(),
            transient: true,
        }
    }

    /// The warehouse at `url` (`s3://bucket[/prefix]`).
    pub fn new(aws: Arc<Aws>, url: &str) -> Result<S3Store> {
        let (bucket, prefix) = parse_url(url)?;
        let mut config = aws_sdk_s3::config::Builder::from(&aws.config);
        // A custom endpoint (a local S3-compatible server) rarely resolves
        // `<bucket>.<host>`; address buckets in the path there.
        if aws.config.endpoint_url().is_some() {
            config = config.force_path_style(true);
        }
        Ok(S3Store {
            client: Client::from_conf(config.build()),
            aws,
            bucket,
            prefix,
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The bucket key of a warehouse key.
    fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn put_multipart(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let object = self.object_key(key);
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&object)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .send()
            .await
            .map_err(sdk_error("S3", "CreateMultipartUpload", self.url(key)))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| Error::UnexpectedAnswer {
                service: "S3",
                op: "CreateMultipartUpload",
                detail: format!("no upload id for {}", self.url(key)),
            })?
            .to_string();
        let result = self.upload_parts(&object, &upload_id, bytes).await;
        let parts = match result {
            Ok(parts) => parts,
            Err(e) => {
                // Leave no orphaned parts behind (they are billed).
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&object)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                return Err(e);
            }
        };
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&object)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(sdk_error("S3", "CompleteMultipartUpload", self.url(key)))?;
        Ok(())
    }

    async fn upload_parts(
        &self,
        object: &str,
        upload_id: &str,
        bytes: &[u8],
    ) -> Result<Vec<CompletedPart>> {
        let mut parts = Vec::new();
        let mut in_flight = tokio::task::JoinSet::new();
        for (index, chunk) in bytes.chunks(PART_SIZE).enumerate() {
            if in_flight.len() == PARTS_IN_FLIGHT {
                parts.push(joined(in_flight.join_next().await)?);
            }
            let number = index as i32 + 1;
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(object)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_algorithm(ChecksumAlgorithm::Crc32C)
                .body(ByteStream::from(chunk.to_vec()));
            let target = format!("s3://{}/{object} part {number}", self.bucket);
            in_flight.spawn(async move {
                let out = request
                    .send()
                    .await
                    .map_err(sdk_error("S3", "UploadPart", target))?;
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .set_checksum_crc32_c(out.checksum_crc32_c().map(str::to_string))
                    .build())
            });
        }
        while let Some(done) = in_flight.join_next().await {
            parts.push(joined(Some(done))?);
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }
}

fn joined(
    done: Option<std::result::Result<Result<CompletedPart>, tokio::task::JoinError>>,
) -> Result<CompletedPart> {
    done.expect("a part is in flight")
        .map_err(|source| Error::WorkerFailed {
            task: "an S3 part upload",
            source,
        })?
}

impl Store for S3Store {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.aws.block_on(async {
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.object_key(prefix))
                .into_paginator()
                .send();
            let mut out = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(sdk_error("S3", "ListObjectsV2", self.url(prefix)))?;
                for object in page.contents() {
                    let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                        continue;
                    };
                    out.push(ObjectInfo {
                        key: key.to_string(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                        modified_ms: object
                            .last_modified()
                            .and_then(|t| t.to_millis().ok())
                            .map_or(0, |ms| ms.max(0) as u64),
                        etag: object.e_tag().unwrap_or_default().to_string(),
                        unreadable: None,
                    });
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        Ok(self.get_versioned(key)?.0)
    }

    fn get_versioned(&self, key: &str) -> Result<(Vec<u8>, String)> {
        self.aws.block_on(async {
            let response = self.get_object(key).await?;
            let mut bytes =
                Vec::with_capacity(response.content_length().unwrap_or(0).max(0) as usize);
            let etag = response.e_tag().unwrap_or_default().to_string();
            let mut body = response.body;
            // Streamed in chunks as they arrive; a broken stream is transient.
            while let Some(chunk) = body.try_next().await.map_err(|e| self.body_error(key, e))? {
                bytes.extend_from_slice(&chunk);
            }
            Ok((bytes, etag))
        })
    }

    /// A conditional PutObject with `If-Match` on the ETag read: S3 answers
    /// 412 when the object was replaced since (false here), and 409 when a
    /// concurrent conditional write raced it (a transient error: retried).
    fn put_if_unchanged(&self, key: &str, bytes: &[u8], version: &str) -> Result<bool> {
        self.aws.block_on(async {
            match self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .if_match(version)
                .checksum_algorithm(ChecksumAlgorithm::Crc32C)
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(false),
                Err(e) => Err(sdk_error("S3", "PutObject (If-Match)", self.url(key))(e)),
            }
        })
    }

    /// ListObjectVersions of the key, then DeleteObjects (with VersionId) of
    /// every version and delete marker that is not the latest.
    fn delete_noncurrent_versions(&self, key: &str) -> Result<u64> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        self.aws.block_on(async {
            let object = self.object_key(key);
            let mut old = Vec::new();
            // ListObjectVersions has no paginator in the SDK: follow the markers.
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let page = self
                    .client
                    .list_object_versions()
                    .bucket(&self.bucket)
                    .prefix(&object)
                    .set_key_marker(key_marker.take())
                    .set_version_id_marker(version_marker.take())
                    .send()
                    .await
                    .map_err(sdk_error("S3", "ListObjectVersions", self.url(key)))?;
                let versions = page
                    .versions()
                    .iter()
                    .map(|v| (v.key(), v.version_id(), v.is_latest()));
                let markers = page
                    .delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id(), m.is_latest()));
                for (k, version, latest) in versions.chain(markers) {
                    if k == Some(object.as_str())
                        && latest != Some(true)
                        && let Some(version) = version
                    {
                        old.push(version.to_string());
                    }
                }
                if page.is_truncated() != Some(true) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_string);
                version_marker = page.next_version_id_marker().map(str::to_string);
            }
            let deleted = old.len() as u64;
            for batch in old.chunks(1000) {
                let objects = batch
                    .iter()
                    .map(|v| {
                        ObjectIdentifier::builder()
                            .key(&object)
                            .version_id(v)
                            .build()
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::UnexpectedAnswer {
                        service: "S3",
                        op: "DeleteObjects",
                        detail: e.to_string(),
                    })?;
                let delete = Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()
                    .map_err(|e| Error::UnexpectedAnswer {
                        service: "S3",
                        op: "DeleteObjects",
                        detail: e.to_string(),
                    })?;
                let out = self
                    .client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(sdk_error("S3", "DeleteObjects", self.url(key)))?;
                if let Some(e) = out.errors().first() {
                    return Err(Error::Aws {
                        service: "S3",
                        op: "DeleteObjects",
                        target: self.url(key),
                        status: None,
                        code: e.code().map(str::to_string),
                        message: e.message().unwrap_or_default().to_string(),
                        transient: false,
                    });
                }
            }
            Ok(deleted)
        })
    }

    /// One GetObject whose body is parsed as it streams in, piece by piece
    /// as the connection delivers them; the SDK checks the whole body
    /// against the object's CRC32C at its end (a mismatch fails the read).
    fn read_chunks(&self, key: &str, each: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.aws.block_on(async {
            let mut body = self.get_object(key).await?.body;
            while let Some(chunk) = body.try_next().await.map_err(|e| self.body_error(key, e))? {
                each(&chunk)?;
            }
            Ok(())
        })
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.aws.block_on(async {
            if bytes.len() >= MULTIPART_THRESHOLD {
                return self.put_multipart(key, bytes).await;
            }
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .checksum_algorithm(ChecksumAlgorithm::Crc32C)
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
                .map_err(sdk_error("S3", "PutObject", self.url(key)))?;
            Ok(())
        })
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        self.aws.block_on(async {
            // S3 conditional write: refused with 412 if the key exists.
            match self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .if_none_match("*")
                .checksum_algorithm(ChecksumAlgorithm::Crc32C)
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(false),
                Err(e) => Err(sdk_error("S3", "PutObject (If-None-Match)", self.url(key))(
                    e,
                )),
            }
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.aws.block_on(async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .send()
                .await
                .map_err(sdk_error("S3", "DeleteObject", self.url(key)))?;
            Ok(())
        })
    }

    /// `DeleteObjects`, 1000 keys a request (S3's limit), quiet mode: the
    /// answer lists only the keys that could not be deleted. On a versioned
    /// bucket each deletion adds a delete marker and the data becomes a
    /// noncurrent version, which the bucket's lifecycle rule expires.
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|key| {
                    ObjectIdentifier::builder()
                        .key(self.object_key(key))
                        .build()
                        .map_err(|e| Error::BuildRequest {
                            service: "S3",
                            what: "object identifier",
                            message: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Error::BuildRequest {
                    service: "S3",
                    what: "DeleteObjects request",
                    message: e.to_string(),
                })?;
            let target = format!(
                "s3://{}/{} ({} keys)",
                self.bucket,
                self.prefix,
                batch.len()
            );
            let answer = self.aws.block_on(async {
                self.client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete)
                    .checksum_algorithm(ChecksumAlgorithm::Crc32C)
                    .send()
                    .await
                    .map_err(sdk_error("S3", "DeleteObjects", target.clone()))
            })?;
            if let Some(failed) = answer.errors().first() {
                return Err(Error::Aws {
                    service: "S3",
                    op: "DeleteObjects",
                    target: format!("s3://{}/{}", self.bucket, failed.key().unwrap_or("?")),
                    status: None,
                    code: failed.code().map(str::to_string),
                    message: format!(
                        "{} of {} keys not deleted: {}",
                        answer.errors().len(),
                        batch.len(),
                        failed.message().unwrap_or("no message")
                    ),
                    transient: failed.code().is_some_and(|c| {
                        matches!(c, "SlowDown" | "InternalError" | "ServiceUnavailable")
                    }),
                });
            }
        }
        Ok(())
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.object_key(key))
    }

    fn bucket_location(&self) -> crate::store::BucketLocation {
        crate::store::BucketLocation {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        let split = |u| parse_url(u).unwrap();
        assert_eq!(split("s3://b"), ("b".into(), "".into()));
        assert_eq!(split("s3://b/"), ("b".into(), "".into()));
        assert_eq!(split("s3://b/warehouse"), ("b".into(), "warehouse/".into()));
        assert_eq!(split("s3://b/a/b/"), ("b".into(), "a/b/".into()));
        assert!(parse_url("/tmp/x").is_err());
        assert!(parse_url("s3:///x").is_err());
    }
}

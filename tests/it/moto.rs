//! A real S3/Glue/Athena/Step Functions endpoint for tests: `moto_server`
//! (PyPI `moto[server]`, installed into `.venv` by `make test`) started on
//! 127.0.0.1 for one test and stopped when the test ends. The SDK clients
//! talk HTTP to it exactly as to AWS: signing, pagination, XML/JSON parsing.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region};
use lakehouse::aws::Aws;

pub const REGION: &str = "us-east-1";

pub struct Moto {
    pub endpoint: String,
    child: Child,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// Starts a server with extra environment (e.g. moto's
    /// `SF_EXECUTION_HISTORY_TYPE`), on a free port.
    pub fn start_with(envs: &[(&str, &str)]) -> Moto {
        let program = std::env::var("STEDI_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{program}` ({e}): run the tests with `make test`, which installs \
                     moto[server] into .venv, or `pip install 'moto[server]'`, or set STEDI_MOTO_SERVER"
                )
            });
        let mut moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let began = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited at start: {status}");
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "moto_server did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// An SDK configuration aimed at this server, with test credentials.
    pub fn aws(&self) -> Arc<Aws> {
        Aws::with_loader(
            aws_config::defaults(BehaviorVersion::latest())
                .endpoint_url(&self.endpoint)
                .region(Region::new(REGION))
                .credentials_provider(Credentials::new("testing", "testing", None, None, "moto")),
        )
        .expect("SDK configuration")
    }

    /// The environment a `stedi` process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            // No profile of the developer's leaks into the test.
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// An S3 client of this server (path-style addressing, as moto serves it).
    pub fn s3_client(&self, aws: &Aws) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&aws.config)
                .force_path_style(true)
                .build(),
        )
    }

    pub fn create_bucket(&self, aws: &Aws, bucket: &str) {
        aws.block_on(self.s3_client(aws).create_bucket().bucket(bucket).send())
            .expect("bucket created");
    }

    /// Creates `bucket` with versioning enabled, as the SAM template's data
    /// bucket is, and returns a client of it.
    pub fn create_versioned_bucket(&self, aws: &Aws, bucket: &str) -> aws_sdk_s3::Client {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        self.create_bucket(aws, bucket);
        let client = self.s3_client(aws);
        aws.block_on(
            client
                .put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send(),
        )
        .expect("versioning enabled");
        client
    }

    /// Queues results that moto's Athena returns to the next queries, in
    /// order (moto runs no SQL).
    pub fn queue_athena_results(&self, results: serde_json::Value) {
        let body = serde_json::json!({ "region": REGION, "results": results }).to_string();
        ureq::post(&format!(
            "{}/moto-api/static/athena/query-results",
            self.endpoint
        ))
        .header("Content-Type", "application/json")
        .send(&body)
        .expect("moto accepts queued Athena results");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

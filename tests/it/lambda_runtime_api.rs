//! The built function binaries served the way Lambda serves them: a Lambda
//! Runtime API of the tests' own on 127.0.0.1 (the documented 2018-06-01
//! API: `GET /runtime/invocation/next`, `POST .../{id}/response`,
//! `.../{id}/error`, `/runtime/init/error`), given to the process in
//! `AWS_LAMBDA_RUNTIME_API`, with the sample events of
//! `crates/<function>/events/` against a seeded local warehouse.
//!
//! What this proves beyond the in-process runner: `main.rs` wires the
//! runtime, configuration is read once at cold start (and a bad one is
//! reported as an init error), the error types Step Functions routes on
//! reach the Runtime API under their stable names, logs follow the Lambda
//! console's settings and carry no personal data.

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use zones::contract::{GateResult, TransitionResult};

use crate::support::{binary, query_csv, stedi_ok, workspace};

/// How long a test waits for a function before calling it hung (a guard
/// against a hang, not a measure of speed: `make bench` measures that).
const HUNG: Duration = Duration::from_secs(600);

/// What the function posted to the Runtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Response,
    Error,
    InitError,
}

#[derive(Debug, Clone)]
struct Posted {
    kind: Kind,
    /// The invocation's id (none for an init error).
    request_id: Option<String>,
    /// The `Lambda-Runtime-Function-Error-Type` header.
    error_type_header: Option<String>,
    body: Value,
}

impl Posted {
    fn error_type(&self) -> &str {
        self.body["errorType"].as_str().unwrap_or_default()
    }

    fn error_message(&self) -> &str {
        self.body["errorMessage"].as_str().unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    /// Invocations not yet handed out: (request id, payload).
    queue: VecDeque<(String, Vec<u8>)>,
    /// `GET .../invocation/next` requests received.
    next_requests: usize,
    posted: Vec<Posted>,
    invoked: usize,
}

/// One function's Runtime API (Lambda gives each sandbox its own).
struct RuntimeApi {
    address: String,
    function: &'static str,
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl RuntimeApi {
    fn start(function: &'static str) -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
        let address = listener.local_addr().expect("bound").to_string();
        let shared: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let serving = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = serving.clone();
                std::thread::spawn(move || serve_connection(stream, function, &shared));
            }
        });
        RuntimeApi {
            address,
            function,
            shared,
        }
    }

    /// Queues an invocation with `payload`; returns its request id.
    fn invoke(&self, payload: &[u8]) -> String {
        let (state, changed) = &*self.shared;
        let mut state = state.lock().unwrap();
        state.invoked += 1;
        let id = format!("{}-{:04}", self.function, state.invoked);
        state.queue.push_back((id.clone(), payload.to_vec()));
        changed.notify_all();
        id
    }

    fn next_requests(&self) -> usize {
        self.shared.0.lock().unwrap().next_requests
    }

    fn posted(&self) -> Vec<Posted> {
        self.shared.0.lock().unwrap().posted.clone()
    }

    /// Waits until `found` picks something out of the posts, failing the
    /// test with the function's output if the process exits first.
    fn wait_for<T>(&self, function: &mut Function, found: impl Fn(&[Posted]) -> Option<T>) -> T {
        let began = Instant::now();
        let (state, changed) = &*self.shared;
        let mut guard = state.lock().unwrap();
        loop {
            if let Some(t) = found(&guard.posted) {
                return t;
            }
            if let Some(status) = function.child.try_wait().expect("try_wait") {
                drop(guard);
                // Whatever it posted just before exiting counts.
                if let Some(t) = found(&self.posted()) {
                    return t;
                }
                panic!(
                    "{} exited ({status}) before posting what the test waits for\n{}",
                    self.function,
                    function.output()
                );
            }
            assert!(
                began.elapsed() < HUNG,
                "{} is hung\n{}",
                self.function,
                function.output()
            );
            guard = changed
                .wait_timeout(guard, Duration::from_millis(50))
                .unwrap()
                .0;
        }
    }

    /// The answer to invocation `id`.
    fn answer(&self, function: &mut Function, id: &str) -> Posted {
        self.wait_for(function, |posted| {
            posted
                .iter()
                .find(|p| p.request_id.as_deref() == Some(id))
                .cloned()
        })
    }
}

fn serve_connection(stream: TcpStream, function: &str, shared: &(Mutex<State>, Condvar)) {
    let mut writer = stream.try_clone().expect("a second handle");
    let mut reader = BufReader::new(stream);
    // HTTP/1.1 keep-alive: requests one after another on the connection.
    while let Some((method, path, headers, body)) = read_request(&mut reader) {
        let (state, changed) = shared;
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let response = match (method.as_str(), segments.as_slice()) {
            ("GET", ["2018-06-01", "runtime", "invocation", "next"]) => {
                let mut guard = state.lock().unwrap();
                guard.next_requests += 1;
                changed.notify_all();
                // A long poll: held until there is an invocation.
                let (id, payload) = loop {
                    if let Some(next) = guard.queue.pop_front() {
                        break next;
                    }
                    guard = changed.wait(guard).unwrap();
                };
                drop(guard);
                let deadline = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    + 900_000;
                let head = format!(
                    "Content-Type: application/json\r\n\
                     Lambda-Runtime-Aws-Request-Id: {id}\r\n\
                     Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                     Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:{function}\r\n\
                     Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0\r\n"
                );
                (200, head, payload)
            }
            (
                "POST",
                [
                    "2018-06-01",
                    "runtime",
                    "invocation",
                    id,
                    outcome @ ("response" | "error"),
                ],
            ) => {
                let kind = if *outcome == "response" {
                    Kind::Response
                } else {
                    Kind::Error
                };
                record(shared, kind, Some(id.to_string()), &headers, &body);
                (202, String::new(), br#"{"status":"OK"}"#.to_vec())
            }
            ("POST", ["2018-06-01", "runtime", "init", "error"]) => {
                record(shared, Kind::InitError, None, &headers, &body);
                (202, String::new(), br#"{"status":"OK"}"#.to_vec())
            }
            _ => (404, String::new(), b"{}".to_vec()),
        };
        let (status, head, body) = response;
        let reason = match status {
            200 => "OK",
            202 => "Accepted",
            _ => "Not Found",
        };
        let mut out = format!(
            "HTTP/1.1 {status} {reason}\r\n{head}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        if writer.write_all(&out).is_err() {
            return;
        }
    }
}

fn record(
    shared: &(Mutex<State>, Condvar),
    kind: Kind,
    request_id: Option<String>,
    headers: &[(String, String)],
    body: &[u8],
) {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "the function posted no JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let (state, changed) = shared;
    state.lock().unwrap().posted.push(Posted {
        kind,
        request_id,
        error_type_header: header("lambda-runtime-function-error-type"),
        body,
    });
    changed.notify_all();
}

type Request = (String, String, Vec<(String, String)>, Vec<u8>);

/// One HTTP/1.1 request (headers lowercased; a body by length or chunked),
/// or None when the client closed the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2]; // the chunk and its CRLF
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = header("content-length") {
        body = vec![0; length.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, headers, body))
}

/// A function binary running against a [`RuntimeApi`], its stdout and
/// stderr captured.
struct Function {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    /// The threads copying stdout and stderr into `output`, until EOF.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Function {
    /// Starts the built binary `name` as Lambda would: a clean environment
    /// with the template's global variables and those the runtime reads,
    /// plus `env`.
    fn start(api: &RuntimeApi, env: &[(&str, &str)]) -> Function {
        let mut child = Command::new(binary(api.function))
            .env_clear()
            .envs(crate::consistency::global_function_environment())
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", api.function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", api.function),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/11/30/[$LATEST]0123456789abcdef",
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", api.function));
        let output: Arc<Mutex<Vec<u8>>> = Arc::default();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let readers = [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)]
            .into_iter()
            .map(|mut stream| {
                let output = output.clone();
                std::thread::spawn(move || {
                    let mut buf = [0; 8192];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        output.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                })
            })
            .collect();
        Function {
            child,
            output,
            readers,
        }
    }

    /// What the process printed so far (stdout and stderr), as far as the
    /// readers have copied it: complete only after [`Function::stop`] or
    /// [`Function::exit`].
    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Ends a served function (it waits on GET /next for ever, as in
    /// Lambda) and returns everything it printed.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.drain()
    }

    /// Waits for the process to exit by itself; its status and everything
    /// it printed.
    fn exit(&mut self) -> (ExitStatus, String) {
        let began = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, self.drain());
            }
            assert!(began.elapsed() < HUNG, "did not exit\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything printed, once the readers reached the end of the pipes.
    fn drain(&mut self) -> String {
        for reader in self.readers.drain(..) {
            reader.join().expect("a reader does not panic");
        }
        self.output()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        // A served function waits on GET /next for ever, as in Lambda.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event(function: &str, name: &str) -> Vec<u8> {
    let path = workspace()
        .join("crates")
        .join(function)
        .join("events")
        .join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every email address in the warehouse's customer landing data.
fn emails(warehouse: &Path) -> BTreeSet<String> {
    let mut emails = BTreeSet::new();
    for entry in std::fs::read_dir(warehouse.join("customer/landing")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for line in bytes.split(|b| *b == b'\n') {
            if let Ok(Value::Object(record)) = serde_json::from_slice(line)
                && let Some(Value::String(email)) = record.get("email")
            {
                emails.insert(email.clone());
            }
        }
    }
    emails
}

/// A warehouse seeded like the one the sample events were saved from
/// (`make seed`: 1000 customers, seed 1).
fn seeded() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    stedi_ok(dir.path(), &["seed"]);
    dir
}

/// The three functions, each in its own process behind its own Runtime API.
struct Pipeline {
    landing: (RuntimeApi, Function),
    curated: (RuntimeApi, Function),
    gate: (RuntimeApi, Function),
}

impl Pipeline {
    fn start(env: &[(&str, &str)]) -> Pipeline {
        let start = |name| {
            let api = RuntimeApi::start(name);
            let function = Function::start(&api, env);
            (api, function)
        };
        Pipeline {
            landing: start("landing-to-trusted"),
            curated: start("trusted-to-curated"),
            gate: start("quality-gate"),
        }
    }

    /// Runs the sample events in pipeline order; returns each answer.
    fn run(&mut self) -> Vec<(String, Posted)> {
        let steps = [
            ("landing-to-trusted", "customer_trusted"),
            ("landing-to-trusted", "accelerometer_trusted"),
            ("trusted-to-curated", "customers_curated"),
            ("landing-to-trusted", "step_trainer_trusted"),
            ("trusted-to-curated", "machine_learning_curated"),
            ("quality-gate", "request"),
        ];
        let mut answers = Vec::new();
        for (function, name) in steps {
            let (api, process) = match function {
                "landing-to-trusted" => (&self.landing.0, &mut self.landing.1),
                "trusted-to-curated" => (&self.curated.0, &mut self.curated.1),
                _ => (&self.gate.0, &mut self.gate.1),
            };
            let id = api.invoke(&event(function, name));
            let answer = api.answer(process, &id);
            assert_eq!(
                answer.kind,
                Kind::Response,
                "{function} {name}: {answer:?}\n{}",
                process.output()
            );
            answers.push((name.to_string(), answer));
        }
        answers
    }

    /// Stops the three processes; what each printed.
    fn stop(&mut self) -> [String; 3] {
        [
            self.landing.1.stop(),
            self.curated.1.stop(),
            self.gate.1.stop(),
        ]
    }
}

/// The lines of `logs` that name a cold start.
fn cold_starts(logs: &str) -> usize {
    logs.lines().filter(|l| l.contains("configured")).count()
}

#[test]
fn the_functions_run_the_pipeline_through_the_runtime_api_warm() {
    let warehouse = seeded();
    let wh = warehouse.path().to_str().unwrap();
    let mut pipeline =
        Pipeline::start(&[("STEDI_WAREHOUSE", wh), ("AWS_LAMBDA_LOG_FORMAT", "Text")]);
    let answers = pipeline.run();
    for (name, answer) in &answers[..5] {
        let result: TransitionResult = serde_json::from_value(answer.body.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", answer.body));
        assert_eq!(result.transition.to_string(), *name);
        assert_eq!(result.table.snapshot, "sample");
        assert!(result.table.rows > 0, "{name}: {result:?}");
    }
    let gate: GateResult = serde_json::from_value(answers[5].1.body.clone()).unwrap();
    assert!(gate.passed, "{gate:?}");
    // The gate published the run: readers see it through the catalog.
    let rows = query_csv(
        warehouse.path(),
        "SELECT COUNT(*) AS n FROM machine_learning_curated",
    );
    let published: u64 = rows[1].parse().unwrap();
    assert_eq!(
        published,
        answers[4].1.body["table"]["rows"].as_u64().unwrap()
    );
    // The same gate process serves the Vacuum state's request: the run just
    // published is current and within the window, so nothing is deleted.
    let id = pipeline.gate.0.invoke(&event("quality-gate", "vacuum"));
    let answer = pipeline.gate.0.answer(&mut pipeline.gate.1, &id);
    assert_eq!(answer.kind, Kind::Response, "{answer:?}");
    let vacuum: zones::contract::VacuumResult =
        serde_json::from_value(answer.body.clone()).unwrap();
    assert_eq!((vacuum.objects, vacuum.dry_run), (0, false), "{vacuum:?}");
    assert_eq!(vacuum.tables.len(), 9, "{vacuum:?}");
    assert!(vacuum.tables.values().all(|t| t.snapshots_kept == 1));

    // Warm starts: landing-to-trusted served three invocations,
    // trusted-to-curated two and the gate two (the gate and the vacuum),
    // each process configured once at cold start.
    let outputs = pipeline.stop();
    for ((api, invocations), output) in [
        (&pipeline.landing.0, 3),
        (&pipeline.curated.0, 2),
        (&pipeline.gate.0, 2),
    ]
    .into_iter()
    .zip(&outputs)
    {
        assert_eq!(api.posted().len(), invocations);
        assert!(api.next_requests() >= invocations);
        assert_eq!(cold_starts(output), 1, "{}: {output}", api.function);
    }
    // Text logs (AWS_LAMBDA_LOG_FORMAT=Text) at INFO by default: each line
    // of an invocation in its span; no debug events.
    let logs = outputs.concat();
    assert!(
        logs.lines().any(|l| l
            .contains("invocation{run_id=sample transition=accelerometer_trusted policy=strict}")),
        "{logs}"
    );
    assert!(!logs.contains("DEBUG"), "{logs}");
    assert!(serde_json::from_str::<Value>(logs.lines().next().unwrap()).is_err());
    no_personal_data(warehouse.path(), &logs);
}

fn no_personal_data(warehouse: &Path, logs: &str) {
    let emails = emails(warehouse);
    assert!(
        emails.len() > 500,
        "the seed wrote customers: {}",
        emails.len()
    );
    for email in &emails {
        assert!(!logs.contains(email.as_str()), "{email} is in the logs");
    }
    assert!(!logs.contains("@test.com"), "an address is in the logs");
}

#[test]
fn json_logs_at_debug_carry_the_run_and_no_personal_data() {
    let warehouse = seeded();
    let wh = warehouse.path().to_str().unwrap();
    let mut pipeline = Pipeline::start(&[
        ("STEDI_WAREHOUSE", wh),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
    ]);
    pipeline.run();
    let logs = pipeline.stop().concat();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    // Every event of ours inside an invocation names the run, the
    // transition and the policy in its span.
    let ours: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["name"] == "invocation")
        .collect();
    assert!(ours.len() > 20, "{logs}");
    for line in &ours {
        assert_eq!(line["span"]["run_id"], "sample", "{line}");
        assert_eq!(line["span"]["policy"], "strict", "{line}");
        assert!(line["span"]["transition"].is_string(), "{line}");
    }
    let transitions: BTreeSet<&str> = ours
        .iter()
        .map(|l| l["span"]["transition"].as_str().unwrap())
        .collect();
    assert_eq!(
        transitions,
        BTreeSet::from([
            "customer_trusted",
            "accelerometer_trusted",
            "customers_curated",
            "step_trainer_trusted",
            "machine_learning_curated",
            "quality_gate",
        ])
    );
    // Per object and per bucket, at debug, with rows and bytes.
    let events = |message: &str| -> Vec<&Value> {
        ours.iter()
            .copied()
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    };
    for message in [
        "parsed landing object",
        "judged landing object",
        "wrote part",
    ] {
        let found = events(message);
        assert!(!found.is_empty(), "no `{message}` event\n{logs}");
        for line in found {
            assert_eq!(line["level"], "DEBUG", "{line}");
            assert!(line["fields"]["rows"].is_u64(), "{line}");
            assert!(line["fields"]["bytes"].as_u64() > Some(0), "{line}");
        }
    }
    let buckets = events("joined time bucket");
    assert!(!buckets.is_empty(), "{logs}");
    for line in buckets {
        assert!(line["fields"]["rows"].is_u64(), "{line}");
        assert_eq!(line["span"]["transition"], "machine_learning_curated");
    }
    no_personal_data(warehouse.path(), &logs);
}

#[test]
fn a_verdict_on_the_data_is_posted_as_invalid_input() {
    // No landing data at all.
    let empty = tempfile::tempdir().unwrap();
    let api = RuntimeApi::start("landing-to-trusted");
    let mut function =
        Function::start(&api, &[("STEDI_WAREHOUSE", empty.path().to_str().unwrap())]);
    let id = api.invoke(&event("landing-to-trusted", "customer_trusted"));
    let answer = api.answer(&mut function, &id);
    assert_eq!(answer.kind, Kind::Error);
    assert_eq!(answer.error_type(), "Stedi.InvalidInput", "{answer:?}");
    assert_eq!(answer.error_type_header.as_deref(), Some("unhandled"));
    assert!(
        answer
            .error_message()
            .contains("no objects under `customer/landing/`"),
        "{answer:?}"
    );
    // The same process goes on serving: a payload that is no request, and
    // a request for a table another function produces, are verdicts too.
    let id = api.invoke(br#"{"policy": "strict"}"#);
    let answer = api.answer(&mut function, &id);
    assert_eq!(answer.error_type(), "Stedi.InvalidInput", "{answer:?}");
    assert!(answer.error_message().contains("run_id"), "{answer:?}");
    let id = api.invoke(&event("trusted-to-curated", "customers_curated"));
    let answer = api.answer(&mut function, &id);
    assert_eq!(answer.error_type(), "Stedi.InvalidInput", "{answer:?}");
    assert_eq!(
        answer.error_message(),
        "landing-to-trusted does not produce `customers_curated`"
    );
    let output = function.stop();
    assert_eq!(cold_starts(&output), 1, "{output}");
}

#[test]
fn an_internal_failure_is_posted_as_internal() {
    // A catalog document this code never wrote: not the data's fault.
    let warehouse = tempfile::tempdir().unwrap();
    let catalog = warehouse.path().join(zones::layout::catalog_key());
    std::fs::create_dir_all(catalog.parent().unwrap()).unwrap();
    std::fs::write(&catalog, b"{ not json").unwrap();
    let api = RuntimeApi::start("quality-gate");
    let mut function = Function::start(
        &api,
        &[("STEDI_WAREHOUSE", warehouse.path().to_str().unwrap())],
    );
    let id = api.invoke(&event("quality-gate", "request"));
    let answer = api.answer(&mut function, &id);
    assert_eq!(answer.kind, Kind::Error);
    assert_eq!(answer.error_type(), "Stedi.Internal", "{answer:?}");
    assert!(answer.error_message().contains("catalog"), "{answer:?}");
}

#[test]
fn a_bad_configuration_fails_the_cold_start() {
    let warehouse = tempfile::tempdir().unwrap();
    let wh = warehouse.path().to_str().unwrap();
    for (function, env, message) in [
        (
            "landing-to-trusted",
            vec![],
            "configuration: STEDI_WAREHOUSE is not set",
        ),
        (
            "trusted-to-curated",
            vec![("STEDI_WAREHOUSE", wh), ("STEDI_GLUE_DATABASE", "stedi")],
            "need the warehouse in S3",
        ),
        (
            "quality-gate",
            vec![
                ("STEDI_WAREHOUSE", "s3://bucket/warehouse"),
                ("STEDI_ATHENA_WORKGROUP", "primary"),
            ],
            "needs STEDI_GLUE_DATABASE",
        ),
    ] {
        let api = RuntimeApi::start(function);
        let mut process = Function::start(&api, &env);
        let (status, output) = process.exit();
        assert!(!status.success(), "{function}: {status}");
        let posted = api.posted();
        assert_eq!(posted.len(), 1, "{function}: {posted:?}\n{output}");
        // The process says why before it exits, in its own log.
        assert!(output.contains("cold start failed"), "{output}");
        let init = &posted[0];
        assert_eq!(init.kind, Kind::InitError);
        assert_eq!(init.error_type(), "Stedi.Internal");
        assert_eq!(init.error_type_header.as_deref(), Some("Stedi.Internal"));
        assert!(init.error_message().contains(message), "{init:?}");
        // It never asked for an invocation.
        assert_eq!(api.next_requests(), 0, "{function}");
    }
}

/// `cargo lambda invoke` (README, "During development") against a built
/// function served by cargo-lambda's own Runtime API emulator (`cargo lambda
/// watch --only-lambda-apis`, which leaves building and starting the
/// function to us: the test does not rebuild it). cargo-lambda comes from
/// `.venv` (infra/requirements-test.txt), which `make test` puts on PATH.
#[test]
fn cargo_lambda_invoke_reaches_a_served_function() {
    let warehouse = seeded();
    // A free port for the emulator (cargo-lambda takes a port, not 0).
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let mut emulator = Command::new("cargo-lambda")
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
            &port,
        ])
        .current_dir(workspace())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cargo-lambda is installed (make .venv/.test-tools) and on PATH");
    // The function asks for its first event at once and exits if nobody
    // answers: start it once the emulator listens.
    let began = Instant::now();
    while TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
        if let Some(status) = emulator.try_wait().expect("try_wait") {
            panic!("cargo lambda watch exited: {status}");
        }
        assert!(began.elapsed() < HUNG, "cargo lambda watch never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let api = format!("http://127.0.0.1:{port}/.rt");
    let mut function = Command::new(binary("landing-to-trusted"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("STEDI_WAREHOUSE", warehouse.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the function starts");
    let event = workspace().join("crates/landing-to-trusted/events/customer_trusted.json");
    let output = Command::new("cargo-lambda")
        .args([
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &port,
            "--data-file",
        ])
        .arg(&event)
        .current_dir(workspace())
        .output()
        .expect("cargo lambda invoke runs");
    let exited = function.try_wait().expect("try_wait");
    let _ = function.kill();
    let _ = function.wait();
    let _ = emulator.kill();
    let _ = emulator.wait();
    assert!(
        output.status.success(),
        "cargo lambda invoke failed: {} (the function exited early: {exited:?})",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: TransitionResult = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!(result.transition.to_string(), "customer_trusted");
    assert!(result.table.rows > 0, "{result:?}");
}

//! The run's page (`_runs/<run id>/report.html`) in a real browser: headless
//! Chromium, driven over the DevTools protocol, opens the page of a passing
//! strict run, of a run whose quality gate failed and of a run that failed
//! before the gate, from a file:// URL. The DOM must show every table's
//! counts, every quarantine reason and drop rule, every check (its verdict,
//! offending count and SQL) equal to report.json; the page must log no error
//! and request nothing; a full-page screenshot of each is saved under
//! `$CARGO_TARGET_TMPDIR/browser/`.
//!
//! Skipped, saying so, only when no Chromium is installed (`.ci/run`
//! installs Debian's `chromium`).

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::support::{report, stedi, stedi_ok};

/// Chromium: `$STEDI_CHROMIUM`, else the first of the usual names on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STEDI_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// A headless Chromium with a fresh profile, and a DevTools connection to one page.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    page: WebSocket<TcpStream>,
    next_id: u64,
    /// Events received while waiting for command results.
    events: Vec<Value>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(url: &str) -> WebSocket<TcpStream> {
    let address = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .expect("a ws:// URL");
    let stream = TcpStream::connect(address).expect("connect to DevTools");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (socket, _) = tungstenite::client(url, stream).expect("DevTools handshake");
    socket
}

impl Browser {
    fn launch(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        // Chromium writes its port and browser endpoint once it listens.
        let active = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            match std::fs::read_to_string(&active) {
                Ok(text) if text.lines().count() >= 2 => {
                    break text.lines().next().unwrap().trim().to_string();
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => panic!("reading {}: {e}", active.display()),
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let version = connect(&format!("ws://127.0.0.1:{port}{}", {
            let text = std::fs::read_to_string(&active).unwrap();
            text.lines().nth(1).unwrap().trim().to_string()
        }));
        // A new page target, then a connection of its own.
        let mut browser = Browser {
            child,
            _profile: profile,
            page: version,
            next_id: 0,
            events: Vec::new(),
        };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
        let id = target["targetId"].as_str().unwrap().to_string();
        browser.page = connect(&format!("ws://127.0.0.1:{port}/devtools/page/{id}"));
        for domain in ["Page", "Runtime", "Log", "Network"] {
            browser.call(&format!("{domain}.enable"), json!({}));
        }
        browser
    }

    fn read(&mut self) -> Value {
        loop {
            match self.page.read().expect("DevTools message") {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(_) => panic!("DevTools closed the connection"),
                _ => continue,
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::text(message.to_string()))
            .expect("send to DevTools");
        loop {
            let message = self.read();
            if message["id"] == id {
                assert!(
                    message.get("error").is_none(),
                    "{method}: {}",
                    message["error"]
                );
                return message["result"].clone();
            }
            self.events.push(message);
        }
    }

    /// Navigates and waits for the load event; returns the events of the load.
    fn open(&mut self, url: &str) -> Vec<Value> {
        self.events.clear();
        self.call("Page.navigate", json!({ "url": url }));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self
            .events
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            assert!(Instant::now() < deadline, "{url} did not load within 60 s");
            let event = self.read();
            self.events.push(event);
        }
        // Anything the page would do after load has a moment to show.
        self.eval("new Promise(r => setTimeout(() => r(true), 300))");
        std::mem::take(&mut self.events)
    }

    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// A screenshot of the whole page.
    fn screenshot(&mut self, path: &Path) {
        // The page's own height, not the one a previous screenshot set.
        self.call("Emulation.clearDeviceMetricsOverride", json!({}));
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let height = metrics["cssContentSize"]["height"].as_f64().unwrap().ceil();
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": height as u64, "deviceScaleFactor": 1, "mobile": false }),
        );
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// Everything the checks read from the DOM, in one evaluation.
const DOM: &str = r#"(() => {
  const all = (sel, root) => [...(root || document).querySelectorAll(sel)];
  const text = (root, sel) => { const e = root.querySelector(sel); return e ? e.textContent.trim() : null; };
  return {
    visible: document.body.innerText,
    verdict: text(document, '#verdict'),
    failure: text(document, '#failure'),
    states: all('svg.graph g.state').map(g => {
      const box = g.querySelector('rect').getBBox();
      return { name: g.dataset.state, status: g.dataset.status, drawn: box.width > 0 && box.height > 0 };
    }),
    stateRows: all('table.states tbody tr').map(r => ({ name: r.dataset.state, status: text(r, '.status'), cause: text(r, '.cause') })),
    lanes: all('svg.flow').length,
    bands: all('svg.flow path.band').map(p => p.querySelector('title').textContent),
    accounting: all('table.accounting tbody tr').map(r => ({
      table: r.dataset.table, input: +text(r, '.input'), kept: +text(r, '.kept'), rows: +text(r, '.rows') })),
    counts: all('#counts li').map(li => [li.dataset.table, li.dataset.count, li.dataset.key, +text(li, '.num')]),
    rubric: all('table.rubric tbody tr').map(r => ({
      table: r.dataset.table, strict: +text(r, '.strict'), rubric: +text(r, '.rubric'),
      rules: all('li', r).map(li => [li.dataset.rule, li.textContent.trim()]) })),
    reasons: all('#quarantine .reason').map(d => ({
      table: d.dataset.table, reason: d.dataset.reason, n: +text(d, '.n'), samples: all('.samples tbody tr', d).length })),
    checks: all('table.checks tbody tr').map(r => ({
      name: r.dataset.check, verdict: text(r, '.verdict'), offending: text(r, '.offending'), sql: text(r, 'pre.sql') })),
    facts: text(document, 'table.facts'),
  };
})()"#;

/// The page must have loaded nothing but itself and logged no error.
fn assert_quiet(events: &[Value], url: &str) {
    let requests: Vec<&str> = events
        .iter()
        .filter(|e| e["method"] == "Network.requestWillBeSent")
        .filter_map(|e| e["params"]["request"]["url"].as_str())
        .filter(|u| *u != url)
        .collect();
    assert!(requests.is_empty(), "the page requested {requests:?}");
    let errors: Vec<&Value> = events
        .iter()
        .filter(|e| {
            (e["method"] == "Runtime.consoleAPICalled" && e["params"]["type"] == "error")
                || e["method"] == "Runtime.exceptionThrown"
                || (e["method"] == "Log.entryAdded" && e["params"]["entry"]["level"] == "error")
        })
        .collect();
    assert!(errors.is_empty(), "the page logged errors: {errors:?}");
}

/// The page's numbers equal report.json's: every table's counts, every
/// quarantine reason and drop rule (as text and as a drawn outflow), the
/// rubric comparison, every check.
fn assert_matches_report(dom: &Value, report: &Value) {
    let visible = dom["visible"].as_str().unwrap();
    let transitions = report["transitions"].as_array().unwrap();
    assert_eq!(
        dom["accounting"].as_array().unwrap().len(),
        transitions.len()
    );
    let mut outflows = 0;
    for (row, t) in dom["accounting"]
        .as_array()
        .unwrap()
        .iter()
        .zip(transitions)
    {
        assert_eq!(row["table"], t["table"]);
        let counts = &t["counts"];
        assert_eq!(row["input"], counts["input"], "{}", t["table"]);
        assert_eq!(row["kept"], counts["kept"], "{}", t["table"]);
        assert_eq!(row["rows"], t["rows"], "{}", t["table"]);
        outflows += 1;
        // Every count map of the line (quarantined, dropped, repaired, and any added later).
        for (field, counts) in counts.as_object().unwrap() {
            let Some(counts) = counts.as_object() else {
                continue;
            };
            for (key, n) in counts {
                let row = json!([t["table"], field, key, n]);
                assert!(
                    dom["counts"].as_array().unwrap().contains(&row),
                    "{row} is not on the page"
                );
                assert!(visible.contains(key.as_str()), "{key} is not visible");
                if field == "quarantined" || field == "dropped" {
                    let kind = if field == "dropped" {
                        "dropped"
                    } else {
                        "quarantined"
                    };
                    let band = format!("{kind} {key}: {n}");
                    assert!(
                        dom["bands"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|b| b == &json!(band)),
                        "no outflow `{band}` drawn"
                    );
                    outflows += 1;
                }
            }
        }
        let quarantined = counts["quarantined"].as_object().unwrap();
        for (reason, n) in quarantined {
            let shown = dom["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["reason"] == json!(reason) && r["n"] == *n)
                .unwrap_or_else(|| panic!("quarantine reason {reason} ({n}) not listed"));
            assert!(
                shown["samples"].as_u64().unwrap() > 0,
                "{reason}: no sample lines"
            );
        }
    }
    assert_eq!(
        dom["bands"].as_array().unwrap().len(),
        outflows,
        "one band per outflow"
    );
    for c in report["rubric_comparison"].as_array().unwrap() {
        let row = dom["rubric"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["table"] == c["table"])
            .unwrap_or_else(|| panic!("no rubric row for {}", c["table"]));
        assert_eq!(row["strict"], c["strict_rows"]);
        assert_eq!(row["rubric"], c["rubric_rows"]);
        for (rule, n) in c["by_rule"].as_object().unwrap() {
            let text = format!("{rule} {:+}", n.as_i64().unwrap());
            assert!(
                row["rules"]
                    .as_array()
                    .unwrap()
                    .contains(&json!([rule, text])),
                "rubric difference {text} of {} not shown",
                c["table"]
            );
        }
    }
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(dom["checks"].as_array().unwrap().len(), checks.len());
    for (row, c) in dom["checks"].as_array().unwrap().iter().zip(checks) {
        assert_eq!(row["name"], c["name"]);
        let verdict = if c["passed"] == true { "pass" } else { "FAIL" };
        assert_eq!(row["verdict"], verdict, "{}", c["name"]);
        let offending = c["violations"]
            .as_u64()
            .map_or("-".to_string(), |n| n.to_string());
        assert_eq!(row["offending"], json!(offending), "{}", c["name"]);
        assert_eq!(row["sql"], c["sql"], "{}", c["name"]);
        assert!(!c["sql"].as_str().unwrap().is_empty());
        assert!(visible.contains(c["name"].as_str().unwrap()));
    }
    let facts = dom["facts"].as_str().unwrap();
    assert!(facts.contains(report["run_id"].as_str().unwrap()));
    assert!(facts.contains(report["policy"].as_str().unwrap()));
}

fn state<'d>(dom: &'d Value, name: &str) -> &'d Value {
    dom["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("state {name} not drawn"))
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

#[test]
fn run_pages_in_headless_chromium() {
    let Some(binary) = chromium() else {
        eprintln!(
            "SKIPPED run_pages_in_headless_chromium: no Chromium found (set STEDI_CHROMIUM or \
             `apt-get install chromium`; .ci/run installs it)"
        );
        return;
    };
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path();
    stedi_ok(wh, &["seed", "--customers", "600", "--seed", "5"]);
    let mut browser = Browser::launch(&binary);

    // A passing strict run.
    stedi_ok(wh, &["run", "--run-id", "pass"]);
    let page = wh.join("_runs/pass/report.html");
    let url = file_url(&page);
    let events = browser.open(&url);
    assert_quiet(&events, &url);
    let dom = browser.eval(DOM);
    let passed = report(wh, "pass");
    assert_matches_report(&dom, &passed);
    assert_eq!(dom["verdict"], "PASSED: every check passed");
    assert_eq!(
        dom["lanes"], 3,
        "customer, accelerometer and step trainer lanes"
    );
    let definition: Value = serde_json::from_str(stedi::runner::DEFINITION).unwrap();
    for name in definition["States"].as_object().unwrap().keys() {
        let s = state(&dom, name);
        assert_eq!(s["drawn"], true, "{name} has a box");
        let expected = if name == "RunFailed" || name == "ErasureIncomplete" {
            "not run"
        } else {
            "succeeded"
        };
        assert_eq!(s["status"], expected, "{name}");
    }
    assert!(
        !passed["rubric_comparison"].as_array().unwrap().is_empty(),
        "a strict run compares with rubric"
    );
    browser.screenshot(&shots.join("strict-run.png"));

    // The gate fails: a miswired definition hands the accelerometer
    // transition the rubric shadow of customer_trusted instead of the table,
    // and the gate's checks catch the readings of customers strict dropped.
    let mut miswired = definition.clone();
    miswired["States"]["AccelerometerTrusted"]["ItemBatcher"]["BatchInput"]["inputs"]["customer_trusted.$"] =
        json!("$.results.customer_trusted.rubric");
    let definition_file = wh.join("miswired.asl.json");
    std::fs::write(&definition_file, miswired.to_string()).unwrap();
    let out = stedi(
        wh,
        &[
            "run",
            "--run-id",
            "gate",
            "--definition",
            definition_file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "the gate fails");
    let url = file_url(&wh.join("_runs/gate/report.html"));
    let events = browser.open(&url);
    assert_quiet(&events, &url);
    let dom = browser.eval(DOM);
    let gate = report(wh, "gate");
    assert_eq!(gate["passed"], false);
    assert_matches_report(&dom, &gate);
    assert!(
        dom["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["verdict"] == "FAIL" && c["offending"] != "0" && c["offending"] != "-"),
        "a failed check with its offending rows: {}",
        dom["checks"]
    );
    assert_eq!(state(&dom, "QualityGate")["status"], "caught error");
    assert_eq!(state(&dom, "RunFailed")["status"], "failed");
    assert_eq!(state(&dom, "CustomerTrusted")["status"], "succeeded");
    let failure = dom["failure"].as_str().unwrap();
    assert!(
        failure.contains("Stedi.QualityGateFailed") && failure.contains("QualityGate"),
        "{failure}"
    );
    browser.screenshot(&shots.join("failed-gate.png"));

    // A transition fails before the gate: no report.json, and still a page.
    std::fs::rename(
        wh.join("accelerometer/landing"),
        wh.join("accelerometer/elsewhere"),
    )
    .unwrap();
    let out = stedi(wh, &["run", "--run-id", "early"]);
    assert!(!out.status.success());
    assert!(!wh.join("_runs/early/report.json").exists());
    let url = file_url(&wh.join("_runs/early/report.html"));
    let events = browser.open(&url);
    assert_quiet(&events, &url);
    let dom = browser.eval(DOM);
    assert_eq!(state(&dom, "CustomerTrusted")["status"], "succeeded");
    // The Map over no landing object runs no child; its reduce finds no
    // object judged and fails the transition.
    assert_eq!(state(&dom, "AccelerometerTrusted")["status"], "succeeded");
    assert_eq!(
        state(&dom, "AccelerometerTrustedReduce")["status"],
        "caught error"
    );
    assert_eq!(state(&dom, "RunFailed")["status"], "failed");
    for later in [
        "CustomersCurated",
        "StepTrainerTrusted",
        "StepTrainerTrustedReduce",
        "MachineLearningCurated",
        "QualityGate",
    ] {
        assert_eq!(state(&dom, later)["status"], "not run", "{later}");
    }
    let row = dom["stateRows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "AccelerometerTrustedReduce")
        .unwrap();
    assert!(
        row["cause"]
            .as_str()
            .unwrap()
            .contains("accelerometer/landing/"),
        "the cause is on the page: {row}"
    );
    assert!(
        dom["failure"]
            .as_str()
            .unwrap()
            .contains("Stedi.InvalidInput")
    );
    assert_eq!(
        dom["accounting"].as_array().unwrap().len(),
        1,
        "the one transition that finished: {}",
        dom["accounting"]
    );
    browser.screenshot(&shots.join("failed-transition.png"));

    // `stedi report --html` draws the same page again from the stored facts.
    let before = std::fs::read_to_string(wh.join("_runs/pass/report.html")).unwrap();
    std::fs::remove_file(wh.join("_runs/pass/report.html")).unwrap();
    let printed = stedi_ok(wh, &["report", "pass", "--html"]);
    assert_eq!(
        printed.trim(),
        wh.join("_runs/pass/report.html").display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(wh.join("_runs/pass/report.html")).unwrap(),
        before
    );
    // A finished run id is refused, and its page stays the finished run's.
    let out = stedi(wh, &["run", "--run-id", "pass"]);
    assert!(!out.status.success(), "a finished run id is refused");
    assert_eq!(
        std::fs::read_to_string(wh.join("_runs/pass/report.html")).unwrap(),
        before
    );
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root, found from this package's manifest directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The `stedi` binary of this build.
pub fn stedi_binary() -> PathBuf {
    binary("stedi")
}

/// A binary of this build: `stedi` or a Lambda function. `cargo build
/// --workspace --bins` puts them in the target directory's profile folder,
/// which is the test binary's (`<profile>/deps/<test>`) unless the build
/// directory is separate (`CARGO_BUILD_BUILD_DIR`): then the target
/// directory is `CARGO_TARGET_DIR`'s, and binaries beside the test binary
/// may be another build's.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("<build dir>/<profile>/deps/<test>");
    let dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(target) => Path::new(&target).join(profile.file_name().expect("a profile folder")),
        None => profile.to_path_buf(),
    };
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins`",
        bin.display()
    );
    bin
}

pub fn stedi(warehouse: &Path, args: &[&str]) -> Output {
    Command::new(stedi_binary())
        .arg("--warehouse")
        .arg(warehouse)
        .args(args)
        .output()
        .expect("stedi runs")
}

/// `stedi args` with extra environment (no `--warehouse` added).
pub fn stedi_env(envs: &[(&'static str, String)], args: &[&str]) -> Output {
    Command::new(stedi_binary())
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("stedi runs")
}

/// Runs `stedi` and returns stdout, failing the test with stderr when it fails.
pub fn stedi_ok(warehouse: &Path, args: &[&str]) -> String {
    succeeded(stedi(warehouse, args), &format!("stedi {args:?}"))
}

/// The stdout of a `stedi` that succeeded; otherwise fails the test with its output.
pub fn succeeded(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `stedi query --format csv`, with the data rows sorted (header first).
pub fn query_csv(warehouse: &Path, sql: &str) -> Vec<String> {
    let out = stedi_ok(warehouse, &["query", "--format", "csv", sql]);
    let mut lines: Vec<String> = out.lines().map(String::from).collect();
    lines[1..].sort();
    lines
}

pub fn report(warehouse: &Path, run_id: &str) -> serde_json::Value {
    let path = warehouse.join("_runs").join(run_id).join("report.json");
    serde_json::from_slice(&std::fs::read(&path).expect("report written")).expect("report is JSON")
}

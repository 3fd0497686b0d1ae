"""The `lambda` section of `make bench`: the three functions as Lambda runs them.

Each function is built alone with `cargo build --profile lambda -p <function>`
(Cargo unifies features per build: built together, every function would link
the quality gate's Glue and Athena SDKs). Each binary is then started against
a minimal Lambda Runtime API on 127.0.0.1 (the documented 2018-06-01 API, as
the tests' harness in tests/it/lambda_runtime_api.rs speaks it) and measured:

- init ms: process start to its first `GET /runtime/invocation/next` (what
  Lambda's cold start adds beyond loading the package), median of INIT_SAMPLES
  processes;
- first-invocation ms: the first event handed out to its answer posted, the
  sample events of crates/<function>/events/ in pipeline order against a
  warehouse seeded like the one they were saved from (`stedi seed`, 1000
  customers, seed 1);
- unzipped bytes (the stripped `bootstrap`) and zipped bytes (deflate, as
  `cargo lambda build --output-format zip` packs it).

These are x86_64 builds of this machine; `make lambdas` cross-compiles the
arm64 zips that deploy (about 30 minutes more of Polars on 2 cores).
"""
import io
import json
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FUNCTIONS = ["landing-to-trusted", "trusted-to-curated", "quality-gate"]
PIPELINE = [
    ("landing-to-trusted", "customer_trusted"),
    ("landing-to-trusted", "accelerometer_trusted"),
    ("trusted-to-curated", "customers_curated"),
    ("landing-to-trusted", "step_trainer_trusted"),
    ("trusted-to-curated", "machine_learning_curated"),
    ("quality-gate", "request"),
]
INIT_SAMPLES = 7
# Measured on main before issue 13 (the figures): every function
# linked every AWS SDK; the `lambda` profile was release without debug info.
BEFORE = {
    "init_ms": "27-31",
    "zipped_mb_x86_64": 35.6,
    "zipped_mb_arm64": 33,
    "unzipped_mb_arm64": 102,
}


class Server(ThreadingHTTPServer):
    """A Runtime API server that says nothing of a function process killed mid-request."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RuntimeApi:
    """One function's Runtime API: hands out queued events, records answers."""

    def __init__(self, function):
        self.function = function
        self.events = queue.Queue()
        self.first_next = None
        self.handed_out = {}
        self.answers = {}
        self.answered = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body, headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self.reply(404, b"{}")
                if api.first_next is None:
                    api.first_next = time.perf_counter()
                request_id, payload = api.events.get()
                deadline = int(time.time() * 1000) + 900_000
                api.handed_out[request_id] = time.perf_counter()
                self.reply(200, payload, [
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                    ("Lambda-Runtime-Invoked-Function-Arn",
                     f"arn:aws:lambda:us-east-1:123456789012:function:{api.function}"),
                    ("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"),
                ])

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = self.path.strip("/").split("/")
                if len(parts) == 5 and parts[:3] == ["2018-06-01", "runtime", "invocation"]:
                    with api.answered:
                        api.answers[parts[3]] = (parts[4], json.loads(body), time.perf_counter())
                        api.answered.notify_all()
                elif parts[-2:] == ["init", "error"]:
                    with api.answered:
                        api.answers["init"] = ("init error", json.loads(body), time.perf_counter())
                        api.answered.notify_all()
                self.reply(202, b'{"status":"OK"}')

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def start(self, binary, warehouse):
        env = {
            "AWS_LAMBDA_RUNTIME_API": self.address,
            "AWS_LAMBDA_FUNCTION_NAME": self.function,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "STEDI_WAREHOUSE": str(warehouse),
        }
        started = time.perf_counter()
        process = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        return started, process

    def wait_first_next(self, process, timeout=60):
        began = time.perf_counter()
        while self.first_next is None:
            if process.poll() is not None:
                raise SystemExit(f"{self.function} exited ({process.returncode}) before asking for an event")
            if time.perf_counter() - began > timeout:
                raise SystemExit(f"{self.function} never asked for an event")
            time.sleep(0.0005)
        return self.first_next

    def invoke(self, request_id, payload, process, timeout=600):
        self.events.put((request_id, payload))
        with self.answered:
            if not self.answered.wait_for(lambda: request_id in self.answers or process.poll() is not None,
                                          timeout=timeout):
                raise SystemExit(f"{self.function}: no answer to {request_id}")
        if request_id not in self.answers:
            raise SystemExit(f"{self.function} exited ({process.returncode}) during {request_id}")
        kind, body, at = self.answers[request_id]
        if kind != "response":
            raise SystemExit(f"{self.function} {request_id}: {kind} {body}")
        return (at - self.handed_out[request_id]) * 1000

    def close(self):
        self.server.shutdown()


def build(root, log):
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=root,
                                     check=True, capture_output=True, text=True).stdout)
    # An explicit target: `make lambdas` (cargo-lambda) puts directories
    # where a plain build of the profile would put these binaries.
    host = next(line.split()[1] for line in subprocess.run(["rustc", "-vV"], check=True, capture_output=True,
                                                            text=True).stdout.splitlines()
                if line.startswith("host:"))
    binaries = {}
    for function in FUNCTIONS:
        log(f"[lambda] building {function} (profile lambda, alone: its own features) ...")
        subprocess.run(["cargo", "build", "--profile", "lambda", "--target", host, "--quiet", "-p", function,
                        "--bin", function], cwd=root, check=True)
        built = Path(meta["target_directory"]) / host / "lambda" / function
        # Each build of the next function may relink shared crates: keep a copy.
        binaries[function] = Path(shutil.copy2(built, built.with_name(f"{function}.bench")))
    return binaries


def zipped_bytes(binary):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, binary.read_bytes())
    return len(buffer.getvalue())


def init_ms(function, binary, warehouse):
    api = RuntimeApi(function)
    try:
        started, process = api.start(binary, warehouse)
        try:
            return (api.wait_first_next(process) - started) * 1000
        finally:
            process.kill()
            process.wait()
    finally:
        api.close()


def run(root, stedi, work, log):
    binaries = build(root, log)
    warehouse = work / "lambda-warehouse"
    shutil.rmtree(warehouse, ignore_errors=True)
    subprocess.run([stedi, "--warehouse", warehouse, "seed"], check=True, capture_output=True)
    results = {}
    for function, binary in binaries.items():
        log(f"[lambda] {function}: init x{INIT_SAMPLES} ...")
        samples = [init_ms(function, binary, warehouse) for _ in range(INIT_SAMPLES)]
        results[function] = {
            "init_ms": round(statistics.median(samples), 1),
            "init_ms_min": round(min(samples), 1),
            "unzipped_bytes": binary.stat().st_size,
            "zipped_bytes": zipped_bytes(binary),
        }
    # The pipeline, one warm process per function: the first invocation of each.
    apis = {f: RuntimeApi(f) for f in FUNCTIONS}
    processes = {f: apis[f].start(binaries[f], warehouse)[1] for f in FUNCTIONS}
    try:
        for n, (function, event) in enumerate(PIPELINE):
            log(f"[lambda] {function}: {event} ...")
            payload = (root / "crates" / function / "events" / f"{event}.json").read_bytes()
            ms = apis[function].invoke(f"bench-{n}", payload, processes[function])
            results[function].setdefault("first_invocation_ms", round(ms, 1))
            results[function].setdefault("first_event", event)
    finally:
        for function, process in processes.items():
            process.kill()
            process.wait()
            apis[function].close()
    shutil.rmtree(warehouse, ignore_errors=True)
    return {"functions": results, "before": BEFORE, "init_samples": INIT_SAMPLES}


def render(section):
    mb = 1e6
    before = section["before"]
    lines = [
        "## Lambda functions",
        "",
        f"`cargo build --profile lambda` (fat LTO, one codegen unit, opt-level 3, unwinding), one function per build "
        "(x86_64, stripped; arm64 zips were 0.93 of x86_64's in the issue's before figures, 33 / 35.6 MB). "
        "init: process start to the first "
        f"`GET /runtime/invocation/next` from a minimal Runtime API on 127.0.0.1, median of {section['init_samples']} "
        "starts (min in brackets); first invocation: the first sample event handed out to its response posted "
        "(1000 customers). Before (issue 13, main without per-function features): init "
        f"{before['init_ms']} ms; {before['zipped_mb_x86_64']} MB zipped on x86_64; "
        f"{before['zipped_mb_arm64']} MB zipped / {before['unzipped_mb_arm64']} MB unzipped on arm64.",
        "",
        "| function | init ms | first invocation ms (event) | unzipped MB | zipped MB |",
        "|---|---|---|---|---|",
    ]
    for function, m in section["functions"].items():
        lines.append(f"| {function} | {m['init_ms']:.1f} ({m['init_ms_min']:.1f}) | "
                     f"{m['first_invocation_ms']:.0f} ({m['first_event']}) | {m['unzipped_bytes'] / mb:.1f} | "
                     f"{m['zipped_bytes'] / mb:.1f} |")
    lines.append("")
    return "\n".join(lines)

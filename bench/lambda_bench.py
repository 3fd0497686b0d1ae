"""The `lambda` section of `make bench`: the three functions as Lambda runs them.

The functions are built with `cargo build --profile lambda` as `make lambdas`
builds them: the two transitions in one build (the same features), the
quality gate in its own (Cargo unifies features per build: built together,
each would link the other's SDKs). The gate deploys without Polars SQL (it
queries Athena); a third build, with its `sql` feature, serves the pipeline
runs below on a local warehouse. Each binary is then started against a
minimal Lambda Runtime API on 127.0.0.1 (the documented 2018-06-01 API, as
the tests' harness in tests/it/lambda_runtime_api.rs speaks it) and measured:

- init ms (the deployed builds): process start to its first
  `GET /runtime/invocation/next` (what Lambda's cold start adds beyond
  loading the package), median of INIT_SAMPLES processes;
- first-invocation ms: the first event handed out to its answer posted, in a
  run of the pipeline through the three processes (below) on a warehouse of
  `stedi seed` (1000 customers, seed 1);
- work ms: the same run on WORK_CUSTOMERS customers, per state, wall and CPU
  milliseconds, median of WORK_ROUNDS runs (each on a fresh copy of the warehouse, with
  fresh processes): the speed of the data work itself, so a build setting
  that trades speed for size shows;
- unzipped bytes (the stripped `bootstrap` as deployed) and zipped bytes
  (deflate, as `cargo lambda build --output-format zip` packs it).

Every function process gets the environment Lambda gives it: the Runtime
API's variables, and the literal variables of the template's Globals
(infra/template.yaml, say MALLOC_ARENA_MAX), with STEDI_WAREHOUSE the local
warehouse.

A run of the pipeline follows statemachine.asl.json from its StartAt along
`Next`, as the local runner does for the subset these states use: a Pass or
Task state's Parameters (static values, `key.$` reference paths into the
state's input or `$$.Execution.Name`), a Task's Resource naming its function
(`${LandingToTrustedFunctionArn}` -> landing-to-trusted), its ResultPath; a
Distributed Map and the reduce after it as one invocation of the whole
transition (the Map's BatchInput is its request; the scale section measures
the Maps' children), a Choice's `IsPresent` rules. An error posted by a
function ends the bench.

These are x86_64 builds of this machine; `make lambdas` cross-compiles the
arm64 zips that deploy (about 30 minutes more of Polars on 2 cores).
STEDI_BENCH_LAMBDA_BINARIES=<dir> measures the binaries <dir>/<function> and
<dir>/quality-gate-sql instead of building (to compare build settings).
"""
import io
import json
import os
import re
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

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "template.yaml"


def template_environment(template=TEMPLATE):
    """The literal `NAME: "value"` variables of the template's Globals Function Environment (a value
    built by an intrinsic function, like STEDI_WAREHOUSE's `!Sub`, is left out)."""
    lines = template.read_text().splitlines()
    start = lines.index("Globals:")
    variables, inside, indent = {}, False, None
    for line in lines[start + 1:]:
        if line and not line.startswith(" "):
            break
        if line.strip() == "Variables:":
            inside, indent = True, None
            continue
        if not inside or not line.strip() or line.strip().startswith("#"):
            continue
        depth = len(line) - len(line.lstrip())
        indent = indent or depth
        if depth < indent:
            break
        found = re.fullmatch(r'\s*([A-Z_][A-Z0-9_]*): "([^"]*)"', line)
        if found:
            variables[found[1]] = found[2]
    return variables


FUNCTIONS = ["landing-to-trusted", "trusted-to-curated", "quality-gate"]
# One cargo invocation per feature set: (packages, extra arguments, the name
# the binary is kept under).
BUILDS = [
    (["landing-to-trusted", "trusted-to-curated"], [], ""),
    (["quality-gate"], [], ""),
    (["quality-gate"], ["--features", "quality-gate/sql"], "-sql"),
]
INIT_SAMPLES = 7
WORK_CUSTOMERS = 30000
WORK_ROUNDS = 5
# Measured on main before issue 13 (the figures): every function
# linked every AWS SDK; the `lambda` profile was release without debug info.
BEFORE = {
    "init_ms": "27-31",
    "zipped_mb_x86_64": 35.6,
    "zipped_mb_arm64": 33,
    "unzipped_mb_arm64": 102,
}
# Before the opt-level choice (per-function features already): the `lambda`
# profile at opt-level 3 throughout, the quality gate with Polars SQL.
# Unzipped and zipped MB, x86_64, stripped.
PREVIOUS = {
    "landing-to-trusted": (64.5, 24.3),
    "trusted-to-curated": (64.5, 24.3),
    "quality-gate": (81.6, 30.4),
}
# The build settings tried on the way to the profile in Cargo.toml, measured
# with this module's pipeline on 30,000 customers (median of 5 runs, the
# builds interleaved): (settings, landing-to-trusted unzipped MB, zipped MB,
# the pipeline's CPU time against opt-level 3 throughout).
CANDIDATES = [
    ("opt-level 3 throughout", 64.5, 24.3, 1.00),
    ("Polars' kernels and engine `s`, the small hot crates 3, the rest `z`", 45.3, 17.5, 0.99),
    ("the small hot crates 3, the rest `z` (shipped)", 41.1, 16.0, 1.09),
    ("every dependency `z`", 39.1, 15.1, 1.20),
]


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
            **template_environment(),
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
        """Hands out one event; returns (milliseconds to its answer, the response)."""
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
        return (at - self.handed_out[request_id]) * 1000, body

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
    for functions, arguments, suffix in BUILDS:
        log(f"[lambda] building {', '.join(functions)} {' '.join(arguments)} (profile lambda) ...")
        packages = [arg for function in functions for arg in ("-p", function)]
        subprocess.run(["cargo", "build", "--profile", "lambda", "--target", host, "--quiet", *packages,
                        *arguments], cwd=root, check=True)
        for function in functions:
            built = Path(meta["target_directory"]) / host / "lambda" / function
            # The next build relinks it: keep a copy.
            binaries[function + suffix] = Path(shutil.copy2(built, built.with_name(f"{function}{suffix}.bench")))
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


def function_of(resource):
    """`${LandingToTrustedFunctionArn}` -> `landing-to-trusted`."""
    name = re.fullmatch(r"\$\{(\w+)FunctionArn\}", resource)
    if not name:
        raise SystemExit(f"statemachine.asl.json: a Task resource that names no function: {resource}")
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name.group(1)).lower()


def parameters(template, data, execution):
    """A state's Parameters over its input: `key.$` takes a reference path;
    an intrinsic function (`States.…`, the Maps' settings) is left out: the
    bench runs no Map."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$") and value.startswith("States."):
                continue
            if key.endswith(".$"):
                out[key[:-2]] = reference(value, data, execution)
            else:
                out[key] = parameters(value, data, execution)
        return out
    if isinstance(template, list):
        return [parameters(value, data, execution) for value in template]
    return template


def reference(path, data, execution):
    if path == "$$.Execution.Name":
        return execution
    if path == "$":
        return data
    if not path.startswith("$."):
        raise SystemExit(f"statemachine.asl.json: a path this bench does not follow: {path}")
    for field in path[2:].split("."):
        data = data[field]
    return data


def present(data, path):
    """Whether the reference path `path` names a field of `data`."""
    for field in path[2:].split("."):
        if not isinstance(data, dict) or field not in data:
            return False
        data = data[field]
    return True


def put(data, path, value):
    fields = path[2:].split(".")
    for field in fields[:-1]:
        data = data.setdefault(field, {})
    data[fields[-1]] = value


def pipeline(root, binaries, warehouse, run_id, log):
    """One run of statemachine.asl.json through the function processes.

    Returns [(state, function, wall ms, CPU ms)] in the order the states ran:
    on a shared machine the CPU time of the function's process (all its
    threads, user and system) varies less than the wall time."""
    definition = json.loads((root / "statemachine.asl.json").read_text())
    apis = {f: RuntimeApi(f) for f in FUNCTIONS}
    processes = {f: apis[f].start(binaries[f], warehouse)[1] for f in FUNCTIONS}
    timings = []
    try:
        data, name = {"policy": "strict"}, definition["StartAt"]
        states = definition["States"]
        while name:
            state = states[name]
            if state["Type"] == "Succeed":
                break
            if state["Type"] == "Fail":
                raise SystemExit(f"the run reached {name}: {json.dumps(data)[:2000]}")
            if state["Type"] == "Choice":
                # The `IsPresent` rules the definition's Choice uses.
                name = next((c["Next"] for c in state["Choices"]
                             if present(data, c["Variable"]) == c["IsPresent"]), state["Default"])
                continue
            if state["Type"] == "Map":
                # A Map and its reduce as one invocation of the transition
                # (its BatchInput, without items, is the whole transition's
                # request): what a Task of it gives, on one process.
                child = state["ItemProcessor"]
                task = child["States"][child["StartAt"]]
                reduce = states[state["Next"]]
                given = parameters(state["ItemBatcher"]["BatchInput"], data, run_id)
                state = {**reduce, "Resource": task["Resource"]}
            elif state["Type"] in ("Pass", "Task"):
                given = parameters(state.get("Parameters", data), data, run_id)
            else:
                raise SystemExit(f"statemachine.asl.json: {name} is a {state['Type']} state this bench does not run")
            if state["Type"] == "Pass":
                data = given
            else:
                function = function_of(state["Resource"])
                log(f"[lambda] {name} ({function}) ...")
                cpu = cpu_ms(processes[function])
                ms, response = apis[function].invoke(f"{run_id}-{name}", json.dumps(given).encode(),
                                                     processes[function])
                timings.append((name, function, ms, cpu_ms(processes[function]) - cpu))
                if "ResultPath" in state:
                    put(data, state["ResultPath"], response)
            name = None if state.get("End") else state["Next"]
    finally:
        for function, process in processes.items():
            process.kill()
            process.wait()
            apis[function].close()
    return timings


def cpu_ms(process):
    """User and system CPU time of a running process, all threads (Linux)."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def seeded(stedi, warehouse, customers):
    shutil.rmtree(warehouse, ignore_errors=True)
    subprocess.run([stedi, "--warehouse", warehouse, "seed", "--customers", str(customers)], check=True,
                   capture_output=True)
    return warehouse


def run(root, stedi, work, log):
    if os.environ.get("STEDI_BENCH_LAMBDA_BINARIES"):
        given = Path(os.environ["STEDI_BENCH_LAMBDA_BINARIES"])
        built = {name: given / name for name in [*FUNCTIONS, "quality-gate-sql"]}
    else:
        built = build(root, log)
    deployed = {function: built[function] for function in FUNCTIONS}
    # What serves a local warehouse: the gate with Polars SQL.
    serving = {**deployed, "quality-gate": built["quality-gate-sql"]}
    warehouse = seeded(stedi, work / "lambda-warehouse", 1000)
    results = {}
    for function, binary in deployed.items():
        log(f"[lambda] {function}: init x{INIT_SAMPLES} ...")
        samples = [init_ms(function, binary, warehouse) for _ in range(INIT_SAMPLES)]
        results[function] = {
            "init_ms": round(statistics.median(samples), 1),
            "init_ms_min": round(min(samples), 1),
            "unzipped_bytes": binary.stat().st_size,
            "zipped_bytes": zipped_bytes(binary),
        }
    # One process per function: the first invocation of each.
    for state, function, ms, _ in pipeline(root, serving, warehouse, "bench", log):
        results[function].setdefault("first_invocation_ms", round(ms, 1))
        results[function].setdefault("first_state", state)
    # The data work at a larger scale.
    pristine = seeded(stedi, work / "lambda-work-seeded", WORK_CUSTOMERS)
    rounds = []
    for n in range(WORK_ROUNDS):
        shutil.rmtree(warehouse, ignore_errors=True)
        shutil.copytree(pristine, warehouse)
        log(f"[lambda] the pipeline on {WORK_CUSTOMERS} customers, round {n + 1} of {WORK_ROUNDS} ...")
        rounds.append(pipeline(root, serving, warehouse, "bench", log))
    states = {state: {"ms": round(statistics.median(r[i][2] for r in rounds)),
                      "cpu_ms": round(statistics.median(r[i][3] for r in rounds))}
              for i, (state, *_) in enumerate(rounds[0])}
    shutil.rmtree(warehouse, ignore_errors=True)
    shutil.rmtree(pristine, ignore_errors=True)
    return {"functions": results, "work": {"customers": WORK_CUSTOMERS, "rounds": WORK_ROUNDS, "states": states},
            "before": BEFORE, "init_samples": INIT_SAMPLES}


def render(section):
    mb = 1e6
    before = section["before"]
    work = section["work"]
    lines = [
        "## Lambda functions",
        "",
        "`cargo build --profile lambda`: fat LTO, one codegen unit, unwinding; opt-level 3 for our crates, "
        "`z` for the dependencies but a few small hot ones at 3 (Cargo.toml says which and why). The "
        "transitions build together, the quality gate alone and without Polars SQL, as they deploy (x86_64, "
        "stripped: this machine cannot build arm64, whose standard library is not reachable offline; arm64 "
        "zips were 0.93 of x86_64's in the issue's before figures, 33 / 35.6 MB). init: process start to the first `GET /runtime/invocation/next` from a "
        f"minimal Runtime API on 127.0.0.1, median of {section['init_samples']} starts (min in brackets); first "
        "invocation: the function's first state of a pipeline run through the three processes, handed out to "
        "its response posted (1000 customers). `before`: the same profile at opt-level 3 throughout, the gate "
        "with Polars SQL. Before issue 13 (every function linked every AWS SDK): init "
        f"{before['init_ms']} ms; {before['zipped_mb_x86_64']} MB zipped on x86_64; "
        f"{before['zipped_mb_arm64']} MB zipped / {before['unzipped_mb_arm64']} MB unzipped on arm64.",
        "",
        "| function | init ms | first invocation ms (state) | unzipped MB | zipped MB | before: unzipped / zipped MB |",
        "|---|---|---|---|---|---|",
    ]
    for function, m in section["functions"].items():
        unzipped, zipped = PREVIOUS[function]
        lines.append(f"| {function} | {m['init_ms']:.1f} ({m['init_ms_min']:.1f}) | "
                     f"{m['first_invocation_ms']:.0f} ({m['first_state']}) | {m['unzipped_bytes'] / mb:.1f} | "
                     f"{m['zipped_bytes'] / mb:.1f} | {unzipped} / {zipped} |")
    lines += [
        "",
        f"The data work: the pipeline through the three processes on {work['customers']:,} customers, median of "
        f"{work['rounds']} runs, per state: wall milliseconds, and CPU milliseconds of the function's process (user "
        "and system, all threads; on a shared machine it varies less than wall time).",
        "",
        "| state | wall ms | CPU ms |",
        "|---|---|---|",
    ]
    for state, m in work["states"].items():
        lines.append(f"| {state} | {m['ms']} | {m['cpu_ms']} |")
    lines += [
        "",
        "Build settings tried (landing-to-trusted; trusted-to-curated is within 0.1 MB of it; all built from "
        "one commit, before the Maps): its sizes, and the two transitions' CPU time in the pipeline on 30,000 "
        "customers against opt-level 3 throughout (median of 5 runs, the builds interleaved; runs of one build "
        "vary by about a tenth).",
        "",
        "| settings | unzipped MB | zipped MB | pipeline CPU |",
        "|---|---|---|---|",
    ]
    for settings, unzipped, zipped, cpu in CANDIDATES:
        lines.append(f"| {settings} | {unzipped} | {zipped} | {cpu} |")
    lines.append("")
    return "\n".join(lines)

#!/usr/bin/env python3
"""`make bench`: stedi against DuckDB, Python Polars and PySpark on the same landing data.

For each scale (1x, 10x, 50x the public STEDI starter data) it seeds clean
landing data with `stedi seed --clean`, runs the full pipeline (`stedi run`,
release build) under both policies, runs the same five transitions (rubric
semantics, Parquet out) with each peer, checks that every peer's counts equal
ours, and times a plain parallel JSON parse of the same files (the physical
limit). Every measurement is the median of REPEATS runs of wall seconds and
peak RSS, taken with /usr/bin/time -v in REPEATS rounds that each run every
engine once. Writes bench/results.md and bench/results.json and prints the
table.

At the scales of STEDI_BENCH_GZIP_SCALES (default "50x") it also runs stedi on
the same landing files gzip-compressed (`*.json.gz`, level 6 as `gzip` writes),
and checks that they publish the same counts as the plain files.

Then the `lambda` section (bench/lambda_bench.py): each Lambda function built
alone with the `lambda` profile, its init and first-invocation milliseconds
through a minimal Runtime API, and its package sizes.

Then the `scale` section (bench/scale_bench.py): one 210 MB and one 1 GB
landing object, 10,000 small objects, and the 50x data whole: seconds, peak
and Parquet parts written.

Environment: STEDI_BENCH_REPEATS (default 3), STEDI_BENCH_SCALES (e.g. "1x,10x"),
STEDI_BENCH_PEERS (e.g. "duckdb,polars"), STEDI_BENCH_GZIP_SCALES (e.g. "" for
none), STEDI_BENCH_DIR (work directory), STEDI_BENCH_SECTIONS ("pipeline,lambda,scale"
by default; a section left out keeps its figures from the last results.json),
STEDI_BENCH_STEDI (a `stedi` binary to measure instead of the release build;
without the pipeline section, nothing is built).
"""
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lambda_bench
import scale_bench

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = Path(os.environ.get("STEDI_BENCH_DIR", BENCH / "work"))
VENV = BENCH / ".venv"
SCALES = {"1x": 1000, "10x": 10000, "50x": 50000}
CORES = 2
PEER_PACKAGES = ["duckdb==2.0.0", "polars==2.1.0", "pyspark==4.3.0"]
PEERS = {
    "duckdb": BENCH / "peers" / "duckdb_peer.py",
    "polars": BENCH / "peers" / "polars_peer.py",
    "pyspark": BENCH / "peers" / "spark_peer.py",
}
TABLES = ["customer_trusted", "accelerometer_trusted", "customers_curated", "step_trainer_trusted",
          "machine_learning_curated"]


def log(message):
    print(message, file=sys.stderr, flush=True)


def build():
    log("building stedi (release) ...")
    # The two transitions' binaries too (the scale section runs a Map's
    # largest child in one, as Lambda does), in the same cargo invocation:
    # one feature set, so Polars compiles once.
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "stedi", "--bin", "landing-to-trusted",
                    "--bin", "trusted-to-curated", "--example", "parse_json"], cwd=ROOT, check=True)
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                                     check=True, capture_output=True, text=True).stdout)
    release = Path(meta["target_directory"]) / "release"
    return release / "stedi", release / "examples" / "parse_json"


def venv_python():
    python = VENV / "bin" / "python"
    if not python.exists():
        log("creating the peers' virtual environment ...")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_PACKAGES],
                   check=True)
    return python


def tree_rss_kib(pid):
    """Resident set of a process and all its descendants, from /proc, in KiB."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total


def timed(command):
    """Runs a command under /usr/bin/time -v; returns (seconds, peak MiB, stdout).

    The peak is the larger of time's maximum resident set (the process itself)
    and the resident set of its whole process tree sampled every 10 ms, so a
    child that is never waited for (PySpark's JVM) is counted too.
    """
    process = subprocess.Popen(["/usr/bin/time", "-v", *map(str, command)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    sampled_kib = 0
    while process.poll() is None:
        sampled_kib = max(sampled_kib, tree_rss_kib(process.pid))
        time.sleep(0.01)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{stdout}\n{stderr}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", stderr)
    hours, minutes, seconds = wall.groups()
    seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    peak_kib = max(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1)), sampled_kib)
    return seconds, peak_kib / 1024, stdout


def summary(samples):
    """The median wall seconds and peak MiB of (seconds, peak MiB) samples."""
    return {
        "seconds": statistics.median(s[0] for s in samples),
        "peak_mib": statistics.median(s[1] for s in samples),
        "samples_seconds": [round(s[0], 3) for s in samples],
    }


def gzip_copy(warehouse, target):
    """The landing files of `warehouse` gzip-compressed under `target` (`<name>.json.gz`), once."""
    if (target / "customer" / "landing").exists():
        return
    for source in sorted(warehouse.glob("*/landing/*.json")):
        out = target / source.relative_to(warehouse)
        out = out.with_name(out.name + ".gz")
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as plain, gzip.open(out, "wb", compresslevel=6) as packed:
            shutil.copyfileobj(plain, packed)


def main():
    repeats = int(os.environ.get("STEDI_BENCH_REPEATS", "3"))
    scales = os.environ.get("STEDI_BENCH_SCALES", ",".join(SCALES)).split(",")
    peers = os.environ.get("STEDI_BENCH_PEERS", ",".join(PEERS)).split(",")
    gzip_scales = [s for s in os.environ.get("STEDI_BENCH_GZIP_SCALES", "50x").split(",") if s]
    sections = os.environ.get("STEDI_BENCH_SECTIONS", "pipeline,lambda,scale").split(",")
    if os.environ.get("STEDI_BENCH_STEDI") and "pipeline" not in sections:
        stedi, parse_json = Path(os.environ["STEDI_BENCH_STEDI"]), None
    else:
        stedi, parse_json = build()
        stedi = Path(os.environ.get("STEDI_BENCH_STEDI", stedi))
    previous = {}
    if (BENCH / "results.json").exists():
        previous = json.loads((BENCH / "results.json").read_text())
    if "pipeline" in sections:
        results = pipeline(stedi, parse_json, repeats, scales, peers, gzip_scales)
    else:
        results = {k: v for k, v in previous.items() if k not in ("lambda", "scale")}
    if "lambda" in sections:
        results["lambda"] = lambda_bench.run(ROOT, stedi, WORK, log)
    elif "lambda" in previous:
        results["lambda"] = previous["lambda"]
    if "scale" in sections:
        # Cases picked by STEDI_BENCH_SCALE_CASES replace theirs; the others stay.
        results["scale"] = {**previous.get("scale", {}),
                            **scale_bench.run(ROOT, stedi, WORK, repeats, timed, log)}
    elif "scale" in previous:
        results["scale"] = previous["scale"]

    (BENCH / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = render(results)
    (BENCH / "results.md").write_text(markdown)
    print(markdown)


def pipeline(stedi, parse_json, repeats, scales, peers, gzip_scales):
    python = venv_python()
    results = {"machine": {"cores": os.cpu_count(), "repeats": repeats}, "scales": {}}

    for scale in scales:
        customers = SCALES[scale]
        warehouse = WORK / scale
        if not (warehouse / "customer" / "landing").exists():
            log(f"[{scale}] seeding {customers} customers ...")
            subprocess.run([stedi, "--warehouse", warehouse, "seed", "--clean", "--customers", str(customers)],
                           check=True, capture_output=True)
        landing_bytes = sum(p.stat().st_size for p in warehouse.glob("*/landing/*.json"))
        input_mb = landing_bytes / 1e6
        entry = {"input_mb": round(input_mb, 1)}
        results["scales"][scale] = entry

        def fresh(out):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)

        # (name, command, run before each sample)
        engines = [("plain JSON parse", [parse_json, warehouse], None)]
        for policy in ("rubric", "strict"):
            engines.append((f"stedi {policy}", [stedi, "--warehouse", warehouse, "run", "--policy", policy,
                                                "--run-id", f"bench-{policy}"], lambda: scale_bench.clean_run(warehouse)))
        gzipped = WORK / f"{scale}-gzip"
        if scale in gzip_scales:
            log(f"[{scale}] gzip-compressing the landing files ...")
            gzip_copy(warehouse, gzipped)
            entry["gzip_input_mb"] = round(sum(p.stat().st_size for p in gzipped.glob("*/landing/*.gz")) / 1e6, 1)
            for policy in ("rubric", "strict"):
                engines.append((f"stedi {policy} (gzip)", [stedi, "--warehouse", gzipped, "run", "--policy", policy,
                                                           "--run-id", f"bench-{policy}"],
                                lambda: scale_bench.clean_run(gzipped)))
        for peer in peers:
            out = WORK / f"{scale}-{peer}-out"
            engines.append((peer, [python, PEERS[peer], warehouse, out], lambda out=out: fresh(out)))

        # Round robin: each round runs every engine once, so a slow minute of
        # a shared machine falls on all engines alike, not on one engine's
        # consecutive samples.
        samples = {name: [] for name, _, _ in engines}
        counts = None
        for round_number in range(1, repeats + 1):
            for name, command, before in engines:
                log(f"[{scale}] round {round_number}/{repeats}: {name} ({input_mb:.0f} MB) ...")
                if before:
                    before()
                seconds, peak_mib, stdout = timed(command)
                samples[name].append((seconds, peak_mib))
                if name == "stedi rubric":
                    report = json.loads((warehouse / "_runs" / "bench-rubric" / "report.json").read_text())
                    counts = {t["table"]: t["rows"] for t in report["transitions"]}
                elif name == "stedi rubric (gzip)":
                    report = json.loads((gzipped / "_runs" / "bench-rubric" / "report.json").read_text())
                    gzip_counts = {t["table"]: t["rows"] for t in report["transitions"]}
                    if gzip_counts != counts:
                        raise SystemExit(f"[{scale}] gzip-compressed landing files publish other counts:\n"
                                         f"  gzip: {gzip_counts}\n  plain: {counts}")
                elif name in peers:
                    peer_counts = json.loads(stdout.strip().splitlines()[-1])
                    if peer_counts != counts:
                        raise SystemExit(f"[{scale}] {name} counts differ from stedi's:\n"
                                         f"  {name}: {peer_counts}\n  stedi: {counts}")
        entry["counts"] = counts
        entry["engines"] = {name: summary(samples[name]) for name, _, _ in engines}
        for peer in peers:
            shutil.rmtree(WORK / f"{scale}-{peer}-out", ignore_errors=True)

        ours = entry["engines"]["stedi rubric"]["seconds"]
        for name, measured in entry["engines"].items():
            measured["mb_per_s_per_core"] = round(input_mb / measured["seconds"] / CORES, 1)
            measured["time_ratio_to_stedi_rubric"] = round(measured["seconds"] / ours, 2)
    return results


def render(results):
    lines = ["# Benchmark results", ""]
    if "machine" in results:
        lines += [
            "Produced by `make bench` (bench/bench.py). Rubric semantics for the peers, Parquet out, clean landing "
            "data from `stedi seed --clean`; median of "
            f"{results['machine']['repeats']} runs (one per round of all engines) of wall seconds and peak RSS "
            f"(`/usr/bin/time -v`, and the whole process tree sampled every 10 ms) on a "
            f"{results['machine']['cores']}-core machine. `ratio` is the engine's time divided "
            "by `stedi rubric`'s (above 1: stedi is faster). `plain JSON parse` is a parallel serde_json parse of "
            "the same files into nothing: the physical limit of reading the input once. `(gzip)` rows read the same "
            "landing files gzip-compressed (`*.json.gz`; input MB is still the uncompressed size).",
            "",
            "| scale | input MB | engine | seconds | peak MiB | MB/s per core | ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for scale, entry in results["scales"].items():
            for name, m in entry["engines"].items():
                lines.append(f"| {scale} | {entry['input_mb']} | {name} | {m['seconds']:.2f} | "
                             f"{m['peak_mib']:.0f} | {m['mb_per_s_per_core']} | "
                             f"{m['time_ratio_to_stedi_rubric']:.2f} |")
        lines.append("")
    if "lambda" in results:
        lines.append(lambda_bench.render(results["lambda"]))
    if "scale" in results:
        lines.append(scale_bench.render(results["scale"]))
    return "\n".join(lines)


if __name__ == "__main__":
    main()

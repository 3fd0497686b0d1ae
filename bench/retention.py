#!/usr/bin/env python3
"""`make bench-retention`: 30 simulated days of daily runs, with and without vacuum.

Two warehouses get the same seeded landing data (CUSTOMERS customers, default
1000) and one `stedi run --as-of <day N>` per simulated day for DAYS days
(default 30): one runs the state machine as it is (its Vacuum state keeps a
7-day window after every publish), the other the same definition without the
Vacuum state. After every day it counts the snapshots of each table and the
warehouse's bytes. Then it times `stedi vacuum` (7-day window, as of the last
day) on the warehouse that never vacuumed: once as a dry run, once for real,
and once more (a no-op). Writes bench/retention.md and bench/retention.json.

Environment: STEDI_BIN (the stedi binary; default: `cargo build --release`
then target/release/stedi), CUSTOMERS, DAYS, STEDI_BENCH_DIR (work directory).
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = Path(os.environ.get("STEDI_BENCH_DIR", BENCH / "work")) / "retention"
CUSTOMERS = int(os.environ.get("CUSTOMERS", "1000"))
DAYS = int(os.environ.get("DAYS", "30"))
START = datetime.datetime(2026, 11, 1, 6, 0, tzinfo=datetime.timezone.utc)


def log(message):
    print(message, file=sys.stderr, flush=True)


def stedi_binary():
    if os.environ.get("STEDI_BIN"):
        return os.environ["STEDI_BIN"]
    subprocess.run(["cargo", "build", "--release", "--bin", "stedi"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / "stedi")


def stedi(binary, warehouse, *args):
    done = subprocess.run(
        [binary, "--warehouse", str(warehouse), *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"stedi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def snapshot_counts(warehouse):
    """Snapshots per table: folders <dataset>/<zone>/<run id>/ holding a manifest."""
    counts = {}
    for manifest in warehouse.glob("*/*/*/_manifest.json"):
        dataset, zone = manifest.parts[-4], manifest.parts[-3]
        if zone in ("trusted", "curated", "quarantine"):
            counts[f"{dataset}/{zone}"] = counts.get(f"{dataset}/{zone}", 0) + 1
    return counts


def size(warehouse):
    return sum(p.stat().st_size for p in warehouse.rglob("*") if p.is_file())


def landing_size(warehouse):
    return sum(
        p.stat().st_size for p in warehouse.glob("*/landing/**/*") if p.is_file()
    )


def without_vacuum(path):
    definition = json.loads((ROOT / "statemachine.asl.json").read_text())
    states = definition["States"]
    del states["Vacuum"]
    for state in states.values():
        if state.get("Next") == "Vacuum":
            del state["Next"]
            state["End"] = True
    path.write_text(json.dumps(definition))
    return path


def timed(binary, warehouse, *args):
    started = time.perf_counter()
    out = stedi(binary, warehouse, *args)
    return time.perf_counter() - started, out


def main():
    binary = stedi_binary()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    plain = without_vacuum(WORK / "without-vacuum.asl.json")
    warehouses = {"with vacuum": WORK / "with", "without vacuum": WORK / "without"}
    for warehouse in warehouses.values():
        stedi(binary, warehouse, "seed", "--customers", str(CUSTOMERS))
        # One pseudonym key for both, so their tables compare.
        (warehouse / "_secrets").mkdir(exist_ok=True)
        (warehouse / "_secrets" / "pseudonym.key").write_bytes(bytes(range(32)))
    daily = []
    for n in range(DAYS):
        at = (START + datetime.timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        row = {"day": n + 1}
        for name, warehouse in warehouses.items():
            args = ["run", "--run-id", f"day{n + 1:02}", "--as-of", at]
            if name == "without vacuum":
                args += ["--definition", str(plain)]
            seconds, _ = timed(binary, warehouse, *args)
            counts = snapshot_counts(warehouse)
            row[name] = {
                "max_snapshots": max(counts.values()),
                "bytes": size(warehouse),
                "run_seconds": round(seconds, 2),
            }
        daily.append(row)
        log(
            f"day {n + 1:2}: with vacuum {row['with vacuum']['max_snapshots']} snapshots/table, "
            f"{row['with vacuum']['bytes'] / 2**20:.1f} MiB; without {row['without vacuum']['max_snapshots']}, "
            f"{row['without vacuum']['bytes'] / 2**20:.1f} MiB"
        )
    last = daily[-1]
    as_of = (START + datetime.timedelta(days=DAYS - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    unvacuumed = warehouses["without vacuum"]
    before = size(unvacuumed)
    dry_seconds, _ = timed(binary, unvacuumed, "vacuum", "--as-of", as_of, "--dry-run")
    vacuum_seconds, vacuum_out = timed(binary, unvacuumed, "vacuum", "--as-of", as_of)
    again_seconds, _ = timed(binary, unvacuumed, "vacuum", "--as-of", as_of)
    after = size(unvacuumed)
    results = {
        "customers": CUSTOMERS,
        "days": DAYS,
        "window": "7d (the Vacuum state's)",
        "daily": daily,
        "final": {
            name: {
                "snapshots_per_table": snapshot_counts(w),
                "bytes": size(w),
                "landing_bytes": landing_size(w),
            }
            for name, w in warehouses.items()
        },
        "vacuum_cli": {
            "bytes_before": before,
            "bytes_after": after,
            "dry_run_seconds": round(dry_seconds, 3),
            "seconds": round(vacuum_seconds, 3),
            "again_seconds": round(again_seconds, 3),
            "summary": vacuum_out.strip().splitlines()[-1],
        },
    }
    (BENCH / "retention.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# Retention: {DAYS} simulated days, {CUSTOMERS} customers, daily runs",
        "",
        "| | snapshots per table (max) | warehouse bytes | of which landing |",
        "|---|---:|---:|---:|",
    ]
    for name, warehouse in warehouses.items():
        landing = results["final"][name]["landing_bytes"]
        lines.append(
            f"| {name} | {last[name]['max_snapshots']} | {last[name]['bytes']:,} "
            f"({last[name]['bytes'] / 2**20:.1f} MiB) | {landing / 2**20:.1f} MiB |"
        )
    lines += [
        "",
        f"`stedi vacuum` (7d, as of day {DAYS}) on the warehouse that never vacuumed: "
        f"dry run {dry_seconds:.2f}s, vacuum {vacuum_seconds:.2f}s "
        f"({before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB), again {again_seconds:.2f}s.",
        f"Its summary: `{results['vacuum_cli']['summary']}`",
        "",
    ]
    (BENCH / "retention.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""The `scale` section of `make bench`: what one landing object and many small ones cost.

Cases (data made by `stedi seed`, then reshaped; each run's counts are read
from the run's facts.json and must be equal in every round):

- `one object, 210 MB` and `one object, 1 GB`: the accelerometer landing of
  `stedi seed --clean --customers 30000` (145000) concatenated into a single
  object, read by customer_trusted and accelerometer_trusted alone (the
  shipped definition cut after AccelerometerTrusted, written to the work
  directory): the peak shows what parsing one object holds, which must stay
  well under the object's size;
- `10,000 small objects`: the accelerometer landing of `stedi seed
  --customers 1000` cut into 10,000 objects of consecutive lines, same
  definition: the Parquet parts written (accelerometer_trusted, its rubric
  shadow, the quarantine) and the rows they hold;
- `50x`: `stedi seed --customers 50000`, the whole shipped pipeline.

Every measurement is the median of REPEATS runs of wall seconds and peak RSS
(`/usr/bin/time -v` through bench.timed).
"""
import json
import shutil
import statistics
import subprocess
from pathlib import Path

SMALL_OBJECTS = 10_000


def trusted_only_definition(root, work):
    """The shipped definition, ending after AccelerometerTrusted."""
    definition = json.loads((root / "statemachine.asl.json").read_text())
    states = definition["States"]
    kept = {name: states[name] for name in ("Start", "CustomerTrusted", "AccelerometerTrusted", "RunFailed")}
    kept["AccelerometerTrusted"]["Next"] = "Done"
    kept["Done"] = {"Type": "Succeed"}
    definition["States"] = kept
    path = work / "trusted-only.asl.json"
    path.write_text(json.dumps(definition, indent=1))
    return path


def seed(stedi, warehouse, customers, clean):
    args = [stedi, "--warehouse", warehouse, "seed", "--customers", str(customers)]
    subprocess.run(args + (["--clean"] if clean else []), check=True, capture_output=True)


def one_object(stedi, warehouse, customers, log):
    """A warehouse whose accelerometer landing is one object: the seeded objects concatenated."""
    landing = warehouse / "accelerometer" / "landing"
    if (landing / "accelerometer.json").exists():
        return
    log(f"[scale] seeding {customers} customers into one accelerometer object ...")
    shutil.rmtree(warehouse, ignore_errors=True)
    seed(stedi, warehouse, customers, clean=True)
    parts = sorted(landing.glob("*.json"))
    with open(landing / "accelerometer.json.tmp", "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    for part in parts:
        part.unlink()
    (landing / "accelerometer.json.tmp").rename(landing / "accelerometer.json")


def small_objects(stedi, warehouse, log):
    """A warehouse whose accelerometer landing is SMALL_OBJECTS objects of consecutive lines."""
    landing = warehouse / "accelerometer" / "landing"
    if landing.exists() and len(list(landing.iterdir())) == SMALL_OBJECTS:
        return
    log(f"[scale] cutting the 1x accelerometer landing into {SMALL_OBJECTS} objects ...")
    shutil.rmtree(warehouse, ignore_errors=True)
    seed(stedi, warehouse, 1000, clean=False)
    parts = sorted(landing.glob("*.json"))
    lines = [line for part in parts for line in part.read_bytes().splitlines(keepends=True)]
    for part in parts:
        part.unlink()
    for n in range(SMALL_OBJECTS):
        chunk = lines[n * len(lines) // SMALL_OBJECTS:(n + 1) * len(lines) // SMALL_OBJECTS]
        (landing / f"accelerometer-{n:05}.json").write_bytes(b"".join(chunk))


def clean_run(warehouse):
    """Removes what runs wrote (snapshots, runs, catalog), keeping landing data."""
    for path in warehouse.iterdir():
        if path.name in ("_runs", "_catalog", "machine_learning"):
            shutil.rmtree(path)
        elif path.is_dir() and not path.name.startswith("_"):
            for zone in ("trusted", "curated", "quarantine"):
                shutil.rmtree(path / zone, ignore_errors=True)


COUNTED = ("counts", "rubric_rows", "rubric_counts")


def run_counts(warehouse, run_id):
    """Each transition's counts, and the Parquet parts of each table it wrote, from the run's facts.json."""
    facts = json.loads((warehouse / "_runs" / run_id / "facts.json").read_text())
    counts, parts = {}, {}
    for name, result in facts["results"].items():
        counts[name] = {k: result.get(k) for k in COUNTED}
        for role in ("table", "rubric", "quarantine"):
            table = result.get(role)
            if table:
                manifest = json.loads((warehouse / table["location"] / "_manifest.json").read_text())
                parts[f"{name} {role}"] = {"parts": len(manifest["parts"]), "rows": manifest["rows"]}
    return counts, parts


def run(root, stedi, work, repeats, timed, log):
    work = work / "scale"
    work.mkdir(parents=True, exist_ok=True)
    trusted_only = trusted_only_definition(root, work)
    cases = [
        ("one object, 210 MB", work / "one-210mb", trusted_only,
         lambda w: one_object(stedi, w, 30_000, log)),
        ("one object, 1 GB", work / "one-1gb", trusted_only,
         lambda w: one_object(stedi, w, 145_000, log)),
        (f"{SMALL_OBJECTS:,} small objects", work / "small", trusted_only,
         lambda w: small_objects(stedi, w, log)),
        ("50x whole run", work / "50x", None,
         lambda w: None if (w / "customer" / "landing").exists() else seed(stedi, w, 50_000, clean=False)),
    ]
    results = {}
    for name, warehouse, definition, prepare in cases:
        prepare(warehouse)
        landing = [p for p in warehouse.glob("*/landing/**/*") if p.is_file()]
        entry = {
            "landing_objects": len(landing),
            "largest_object_mb": round(max(p.stat().st_size for p in landing) / 1e6, 1),
        }
        command = [stedi, "--warehouse", warehouse, "run", "--run-id", "bench-scale"]
        if definition:
            command += ["--definition", definition]
        samples, counts = [], None
        for round_number in range(1, repeats + 1):
            log(f"[scale] round {round_number}/{repeats}: {name} ...")
            clean_run(warehouse)
            seconds, peak_mib, _ = timed(command)
            samples.append((seconds, peak_mib))
            measured, parts = run_counts(warehouse, "bench-scale")
            if counts is not None and measured != counts:
                raise SystemExit(f"[scale] {name}: counts differ between rounds:\n  {measured}\n  {counts}")
            counts = measured
        entry["seconds"] = statistics.median(s[0] for s in samples)
        entry["peak_mib"] = statistics.median(s[1] for s in samples)
        entry["samples_seconds"] = [round(s[0], 3) for s in samples]
        entry["parts"] = parts
        entry["counts"] = counts
        results[name] = entry
    return results


def render(results):
    lines = [
        "## Scale",
        "",
        "One landing object parsed in chunks at line boundaries (its peak must stay well under its size), many "
        "small objects coalesced into few parts, and the 50x data whole (`bench/scale_bench.py`). The one-object "
        "and small-object cases run customer_trusted and accelerometer_trusted alone (the shipped definition cut "
        "after AccelerometerTrusted). Median wall seconds and peak RSS.",
        "",
        "| case | landing objects | largest object MB | seconds | peak MiB | Parquet parts (accelerometer_trusted, "
        "rubric shadow, quarantine) |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in results.items():
        acc = [e["parts"].get(f"accelerometer_trusted {role}", {}).get("parts", "-")
               for role in ("table", "rubric", "quarantine")]
        lines.append(f"| {name} | {e['landing_objects']} | {e['largest_object_mb']} | {e['seconds']:.2f} | "
                     f"{e['peak_mib']:.0f} | {', '.join(map(str, acc))} |")
    lines.append("")
    return "\n".join(lines)

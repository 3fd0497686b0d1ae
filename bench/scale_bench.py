"""The `scale` section of `make bench`: what one landing object, many small ones and large data sets cost,
and what one Distributed Map child costs alone.

Cases (data made by `stedi seed`, then reshaped; each run's counts are read
from the run's facts.json and must be equal in every round):

- `one object, 210 MB` and `one object, 1 GB`: the accelerometer landing of
  `stedi seed --clean --customers 30000` (145000) concatenated into a single
  object, read by customer_trusted and accelerometer_trusted alone (the
  shipped definition cut after the accelerometer Map's reduce, written to
  the work directory): the peak shows what parsing one object holds, which
  must stay well under the object's size;
- `10,000 small objects`: the accelerometer landing of `stedi seed
  --customers 1000` cut into 10,000 objects of consecutive lines, same
  definition: the Parquet parts written (accelerometer_trusted, its rubric
  shadow, the quarantine) and the rows they hold;
- `50x whole run` and `500x whole run`: `stedi seed --customers 50000`
  (500000: about 5.5 GB of landing JSON), the whole shipped pipeline.

Every measurement is the median of REPEATS runs of wall seconds and peak RSS
(`/usr/bin/time -v` through bench.timed). For each Distributed Map of a run
(from its ResultWriter files, `_map_results/<run id>/<table>/`): its items
(landing objects listed, or days of readings), its children, and its
largest child (by the bytes of its objects, or the step readings of its
days) run again alone, as Lambda runs it: its function's binary beside
`stedi`, served the child's request by a minimal Runtime API
(bench/lambda_bench.py) under a scratch run id, its peak RSS read from /proc
and its seconds from the event handed out to the answer posted. For the
whole runs the children's requests come from one more run of the definition
cut after the last Map's reduce (the gate of a whole run deletes the rubric
shadows a strict child reads).

STEDI_BENCH_SCALE_CASES picks cases by their folder under the work
directory (`one-210mb`, `one-1gb`, `small`, `50x`, `500x`, comma-separated);
all by default. The 500x case needs about 8 GB of disk.
"""
import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

import lambda_bench

SMALL_OBJECTS = 10_000


def definition_until(root, work, last):
    """The shipped definition, following Next from StartAt up to the state `last`, then succeeding."""
    definition = json.loads((root / "statemachine.asl.json").read_text())
    states = definition["States"]
    kept, name = {"RunFailed": states["RunFailed"]}, definition["StartAt"]
    while name != last:
        kept[name] = states[name]
        name = states[name]["Next"]
    kept[last] = dict(states[last], Next="Done")
    kept["Done"] = {"Type": "Succeed"}
    definition["States"] = kept
    path = work / f"until-{last}.asl.json"
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


def seeded(stedi, warehouse, customers, log):
    """A warehouse of `stedi seed --customers N`, seeded once."""
    if not (warehouse / "customer" / "landing").exists():
        log(f"[scale] seeding {customers} customers ...")
        seed(stedi, warehouse, customers, clean=False)


def clean_run(warehouse):
    """Removes what runs wrote (snapshots, runs, Map results, catalog), keeping landing data."""
    for path in warehouse.iterdir():
        if path.name in ("_runs", "_catalog", "_map_results", "machine_learning"):
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
            if table and (warehouse / table["location"] / "_manifest.json").exists():
                manifest = json.loads((warehouse / table["location"] / "_manifest.json").read_text())
                parts[f"{name} {role}"] = {"parts": len(manifest["parts"]), "rows": manifest["rows"]}
    return counts, parts


# The function serving each Map's children, and how a child's size is told from its answer.
MAP_FUNCTIONS = {
    "accelerometer_trusted": "landing-to-trusted",
    "step_trainer_trusted": "landing-to-trusted",
    "machine_learning_curated": "trusted-to-curated",
}


def child_size(answer):
    """A child's work, for finding the largest: its objects' bytes, or the step readings its days joined."""
    return answer["bytes"] if "bytes" in answer else answer["table"]["counts"]["input"]


def describe_child(answer):
    if "bytes" in answer:
        return f"{answer['objects']} objects, {answer['bytes'] / 1e6:.1f} MB"
    return f"{answer['buckets']} days, {answer['table']['counts']['input']:,} step readings"


def map_runs(warehouse, run_id):
    """Each Distributed Map of the run, by its table: its items, its children, and the request of its
    largest child, from the ResultWriter's files."""
    runs = {}
    for manifest_path in sorted((warehouse / "_map_results" / run_id).glob("*/*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        children = [child for file in manifest["ResultFiles"]["SUCCEEDED"]
                    for child in json.loads((warehouse / file["Key"]).read_text())]
        answers = [json.loads(child["Output"]) for child in children]
        largest = max(range(len(children)), key=lambda n: child_size(answers[n]))
        runs[manifest_path.parent.parent.name] = {
            "items": sum(len(json.loads(child["Input"])["Items"]) for child in children),
            "children": len(children),
            "largest_child": describe_child(answers[largest]),
            "request": json.loads(children[largest]["Input"]),
        }
    return runs


def child_alone(binary, warehouse, request, scratch_run):
    """Runs one Map child's request in a fresh process of its function under `scratch_run`:
    (seconds from the event handed out to the answer, the process's peak MiB)."""
    request = json.loads(json.dumps(request))
    request["BatchInput"]["run_id"] = scratch_run
    api = lambda_bench.RuntimeApi(binary.name)
    try:
        _, process = api.start(binary, warehouse)
        try:
            api.wait_first_next(process)
            ms, _ = api.invoke(scratch_run, json.dumps(request).encode(), process)
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
        finally:
            process.kill()
            process.wait()
    finally:
        api.close()
    return ms / 1000, peak_kib / 1024


def run(root, stedi, work, repeats, timed, log):
    work = work / "scale"
    work.mkdir(parents=True, exist_ok=True)
    trusted_only = definition_until(root, work, "AccelerometerTrustedReduce")
    # Up to the last Map's reduce: a run whose rubric shadows the gate has
    # not deleted yet, for the Map children run alone.
    maps_only = definition_until(root, work, "MachineLearningCuratedReduce")
    cases = [
        ("one object, 210 MB", "one-210mb", trusted_only, lambda w: one_object(stedi, w, 30_000, log)),
        ("one object, 1 GB", "one-1gb", trusted_only, lambda w: one_object(stedi, w, 145_000, log)),
        (f"{SMALL_OBJECTS:,} small objects", "small", trusted_only, lambda w: small_objects(stedi, w, log)),
        ("50x whole run", "50x", None, lambda w: seeded(stedi, w, 50_000, log)),
        ("500x whole run", "500x", None, lambda w: seeded(stedi, w, 500_000, log)),
    ]
    chosen = [c for c in os.environ.get("STEDI_BENCH_SCALE_CASES", "").split(",") if c]
    results = {}
    for name, key, definition, prepare in cases:
        if chosen and key not in chosen:
            continue
        warehouse = work / key
        prepare(warehouse)
        landing = [p for p in warehouse.glob("*/landing/**/*") if p.is_file()]
        entry = {
            "landing_objects": len(landing),
            "landing_mb": round(sum(p.stat().st_size for p in landing) / 1e6),
            "largest_object_mb": round(max(p.stat().st_size for p in landing) / 1e6, 1),
        }
        command = [stedi, "--warehouse", warehouse, "run", "--run-id", "bench-scale"]
        if definition:
            command += ["--definition", definition]
        samples, counts, alone = [], None, {}
        for round_number in range(1, repeats + 1):
            log(f"[scale] round {round_number}/{repeats}: {name} ...")
            clean_run(warehouse)
            seconds, peak_mib, _ = timed(command)
            samples.append((seconds, peak_mib))
            measured, parts = run_counts(warehouse, "bench-scale")
            if counts is not None and measured != counts:
                raise SystemExit(f"[scale] {name}: counts differ between rounds:\n  {measured}\n  {counts}")
            counts = measured
        # The Maps' largest children alone, against a run the gate has not
        # ended (a whole run's gate deletes the rubric shadows they read).
        if definition is None:
            clean_run(warehouse)
            subprocess.run([*command[:-1], "bench-maps", "--definition", maps_only], check=True,
                           capture_output=True)
        maps = map_runs(warehouse, "bench-maps" if definition is None else "bench-scale")
        for round_number in range(1, repeats + 1):
            for table, m in maps.items():
                log(f"[scale]   {table}: the largest of {m['children']} children alone ...")
                binary = Path(stedi).with_name(MAP_FUNCTIONS[table])
                alone.setdefault(table, []).append(
                    child_alone(binary, warehouse, m["request"], f"bench-child-{round_number}"))
        entry["seconds"] = statistics.median(s[0] for s in samples)
        entry["peak_mib"] = statistics.median(s[1] for s in samples)
        entry["samples_seconds"] = [round(s[0], 3) for s in samples]
        entry["maps"] = {
            table: {
                **{k: v for k, v in m.items() if k != "request"},
                "largest_child_seconds": round(statistics.median(a[0] for a in alone[table]), 2),
                "largest_child_peak_mib": round(statistics.median(a[1] for a in alone[table]), 1),
            }
            for table, m in maps.items()
        }
        entry["parts"] = parts
        entry["counts"] = counts
        results[name] = entry
        clean_run(warehouse)
    return results


def render(results):
    lines = [
        "## Scale",
        "",
        "One landing object parsed in chunks at line boundaries (its peak must stay well under its size), many "
        "small objects coalesced into few parts, and the 50x and 500x data whole (`bench/scale_bench.py`). The "
        "one-object and small-object cases run customer_trusted and accelerometer_trusted alone (the shipped "
        "definition cut after the accelerometer Map's reduce). Median wall seconds and peak RSS of `stedi run`.",
        "",
        "| case | landing objects | landing MB | largest object MB | seconds | peak MiB | Parquet parts "
        "(accelerometer_trusted, rubric shadow, quarantine) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in results.items():
        acc = [e["parts"].get(f"accelerometer_trusted {role}", {}).get("parts", "-")
               for role in ("table", "rubric", "quarantine")]
        lines.append(f"| {name} | {e['landing_objects']} | {e.get('landing_mb', '-')} | {e['largest_object_mb']} | "
                     f"{e['seconds']:.2f} | {e['peak_mib']:.0f} | {', '.join(map(str, acc))} |")
    lines += [
        "",
        "Each Distributed Map of those runs: its items (landing objects listed, or days of readings for the "
        "training table), its children (batches of MaxItemsPerBatch items), and its largest child run again "
        "alone in a fresh process of its function served by a minimal Runtime API, as Lambda runs it: its "
        "seconds and its process's peak RSS (median of the rounds).",
        "",
        "| case | Map (table) | items | children | largest child | seconds | peak MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in results.items():
        for table, m in e.get("maps", {}).items():
            lines.append(f"| {name} | {table} | {m['items']} | {m['children']} | {m['largest_child']} | "
                         f"{m['largest_child_seconds']:.2f} | {m['largest_child_peak_mib']:.0f} |")
    lines.append("")
    return "\n".join(lines)

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::sync::Arc;

use aws_sdk_sfn::types::ExecutionStatus;
use lakehouse::aws::Aws;
use lakehouse::catalog::Format as TableFormat;
use lakehouse::query::PolarsSql;
use lakehouse::{Config, Env, Store, runs, tables};
use stedi::asl::{Event, MapRunStatus};
use stedi::output::{self, Format};
use stedi::{listing, runner, seed, sfn, summary};
use zones::report::Report;
use zones::{Policy, RunId, Table, layout};

/// STEDI lakehouse: landing -> trusted -> curated, on one machine or on AWS.
#[derive(Parser)]
#[command(name = "stedi", version)]
struct Cli {
    /// The warehouse root: a local directory standing in for the S3 bucket,
    /// or s3://bucket/prefix (credentials, region and AWS_ENDPOINT_URL from
    /// the standard AWS configuration).
    #[arg(
        long,
        global = true,
        env = "STEDI_WAREHOUSE",
        default_value = "./lakehouse"
    )]
    warehouse: String,
    /// Publish to and read tables from this Glue database instead of the
    /// catalog document in the warehouse (needs an S3 warehouse).
    #[arg(long, global = true, env = "STEDI_GLUE_DATABASE")]
    glue_database: Option<String>,
    /// Run queries and quality checks through Athena in this workgroup.
    #[arg(long, global = true, env = "STEDI_ATHENA_WORKGROUP")]
    athena_workgroup: Option<String>,
    /// Athena results location, if the workgroup does not enforce one.
    #[arg(long, global = true, env = "STEDI_ATHENA_OUTPUT")]
    athena_output: Option<String>,
    /// The AWS Secrets Manager secret (id or ARN) holding the pseudonym
    /// key, instead of _secrets/pseudonym.key in the warehouse (S3 only).
    #[arg(long, global = true, env = "STEDI_PSEUDONYM_SECRET")]
    pseudonym_secret: Option<String>,
    /// The AWS Secrets Manager secret (id or ARN) holding the erasure key
    /// (what `stedi erase` files requests with), instead of
    /// _secrets/erasure.key in the warehouse (S3 only).
    #[arg(long, global = true, env = "STEDI_ERASURE_SECRET")]
    erasure_secret: Option<String>,
    /// A deployed SAM stack (infra/template.yaml): its outputs give the
    /// warehouse, Glue database, Athena workgroup and state machine.
    #[arg(long, global = true, env = "STEDI_STACK")]
    stack: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write deterministic synthetic landing data (with the real feeds' defects).
    Seed {
        #[arg(long, default_value_t = 1000)]
        customers: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// No damaged lines and no old `timeStamp` spelling (for benchmarks).
        #[arg(long)]
        clean: bool,
        /// Write over landing data the warehouse already has (refused otherwise).
        #[arg(long)]
        force: bool,
    },
    /// Run the pipeline: execute statemachine.asl.json through the local
    /// runner, or with --aws start the deployed Step Functions state machine.
    Run {
        #[arg(long, default_value = "strict")]
        policy: Policy,
        /// Defaults to the UTC time plus a random suffix (on AWS: the
        /// execution's name). 1-80 characters of A-Z a-z 0-9 _ . -, starting
        /// with a letter or digit, no `..`. A run id that finished before is
        /// refused; one that was cut off resumes.
        #[arg(long)]
        run_id: Option<RunId>,
        /// Execute this state machine definition instead of the built-in statemachine.asl.json.
        #[arg(long, conflicts_with = "aws")]
        definition: Option<PathBuf>,
        /// Save each function's request as DIR/<function>/<transition>.json
        /// (events for `cargo lambda invoke --data-file`).
        #[arg(long, value_name = "DIR", conflicts_with = "aws")]
        save_requests: Option<PathBuf>,
        /// Run on AWS Step Functions (with --state-machine or --stack).
        #[arg(long)]
        aws: bool,
        /// The state machine's ARN.
        #[arg(long, requires = "aws")]
        state_machine: Option<String>,
        /// Redrive this failed execution (ARN) from the state that failed, instead of starting one.
        #[arg(long, requires = "aws", conflicts_with_all = ["run_id", "policy"])]
        redrive: Option<String>,
        /// Run as if the time were TIME (RFC 3339, e.g. 2026-12-01T00:00:00Z):
        /// the run records it as its start and end, names itself after it,
        /// and its Vacuum state decides by it. For simulating days of runs
        /// (`bench/retention.py`); a real schedule leaves it out.
        #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with = "aws")]
        as_of: Option<u64>,
    },
    /// Delete the snapshots, quarantine snapshots, rubric shadows and staging
    /// databases that the catalog no longer references and that are older
    /// than the retention window (the last published runs are kept whatever
    /// their age; a running run's snapshots are never touched; run reports
    /// are kept). Prints what it deleted, per table.
    Vacuum {
        /// The retention window: objects of runs that ended within it are kept
        /// (`7d`, `12h`, `0s`). Under 1h needs --force.
        #[arg(long, default_value = "7d", value_parser = parse_window)]
        retain: Duration,
        /// Keep the snapshots of the last N published runs whatever their age.
        #[arg(long, value_name = "N", default_value_t = zones::retention::DEFAULT_KEEP_RUNS)]
        keep_runs: usize,
        /// Print what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Accept a window under 1 hour (a run still writing could lose its
        /// snapshots: use it only when no run is running).
        #[arg(long)]
        force: bool,
        /// Decide as if the time were TIME (RFC 3339): what a vacuum then
        /// would delete, or a simulation of days of runs.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        as_of: Option<u64>,
    },
    /// Run SQL over the catalog's tables: Polars SQL locally, Athena with --aws.
    Query {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Run in Athena (needs --stack, or --glue-database and --athena-workgroup).
        #[arg(long)]
        aws: bool,
        sql: String,
    },
    /// List the catalog's tables (zone, rows, snapshot, policy), or one table in full.
    Tables {
        /// Show this table: location, run, format and its columns.
        name: Option<String>,
        /// List every table's columns too.
        #[arg(long)]
        columns: bool,
    },
    /// List the published snapshots (run, time, policy, rows) of every produced table, or of one.
    History { table: Option<String> },
    /// Print the summary of a run's report (the latest run by default).
    Report {
        run_id: Option<RunId>,
        /// Write the run's page, _runs/<run id>/report.html, and print where it is.
        #[arg(long)]
        html: bool,
        /// Open the page in a browser (implies --html).
        #[arg(long)]
        open: bool,
    },
    /// Check every part of the published tables (or of TABLE) against its
    /// snapshot manifest: size and CRC32C checksum.
    Verify { table: Option<String> },
    /// Ask for people to be erased (GDPR Art. 17). Stores a request holding
    /// HMACs of the addresses, never the addresses; the next run drops their
    /// records, rewrites the landing objects that held them, deletes older
    /// snapshots that hold them and writes _runs/<run id>/erasure.json.
    #[command(group(clap::ArgGroup::new("who").required(true).args(["email", "from_file", "status"])))]
    Erase {
        /// An address to erase (repeat for several); surrounding blanks and
        /// case do not matter.
        #[arg(long)]
        email: Vec<String>,
        /// A file of addresses, one a line (blank lines and `#` comments skipped).
        #[arg(long, value_name = "FILE", conflicts_with = "email")]
        from_file: Option<PathBuf>,
        /// List pending and completed requests (by id and time, never by address).
        #[arg(long, conflicts_with_all = ["email", "from_file"])]
        status: bool,
    },
    /// Rotate the pseudonym key: a new random key replaces it now, and the
    /// next run keys machine_learning_curated with it (its report says so).
    /// Every customerKey changes: models keyed on the old ones must be re-split.
    RotateKey,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEDI_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// `e` and its causes, `: `-separated, each once: a cause whose text the
/// message already ends with (an error whose own text quotes its source, as
/// the I/O errors' do) is not repeated.
fn message(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out = format!("{out}: {text}");
        }
    }
    out
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let deployment = match &cli.stack {
        Some(stack) => Some(sfn::deployment(&*Aws::from_env()?, stack)?),
        None => None,
    };
    let config = match &deployment {
        Some(d) => Config {
            warehouse: d.warehouse.clone(),
            glue_database: Some(d.glue_database.clone()),
            athena_workgroup: Some(d.athena_workgroup.clone()),
            athena_output: cli.athena_output.clone(),
            pseudonym_secret: cli
                .pseudonym_secret
                .clone()
                .or_else(|| d.pseudonym_secret.clone()),
            erasure_secret: cli
                .erasure_secret
                .clone()
                .or_else(|| d.erasure_secret.clone()),
        },
        None => Config {
            warehouse: cli.warehouse.clone(),
            glue_database: cli.glue_database.clone(),
            athena_workgroup: cli.athena_workgroup.clone(),
            athena_output: cli.athena_output.clone(),
            pseudonym_secret: cli.pseudonym_secret.clone(),
            erasure_secret: cli.erasure_secret.clone(),
        },
    };
    // A local warehouse is a directory. Commands on an existing lakehouse
    // refuse one that does not exist: a typo (an erasure filed there would
    // never reach the data); `seed` and `run` create it.
    let root = std::path::Path::new(&config.warehouse);
    if !config.warehouse.starts_with("s3://") && !root.is_dir() {
        let on_existing = !matches!(cli.command, Command::Seed { .. } | Command::Run { .. });
        if root.exists() {
            bail!(
                "the warehouse {} is not a directory (give --warehouse or STEDI_WAREHOUSE)",
                config.warehouse
            );
        }
        if on_existing {
            bail!(
                "the warehouse {} does not exist (give --warehouse or STEDI_WAREHOUSE)",
                config.warehouse
            );
        }
    }
    match cli.command {
        Command::Seed {
            customers,
            seed,
            clean,
            force,
        } => {
            let env = Env::open(&config)?;
            // Landing data is the only copy of the input: never overwritten by accident.
            if !force {
                for dataset in zones::Dataset::ALL {
                    let prefix = layout::landing_prefix(dataset);
                    if let Some(object) = env.store.list(&prefix)?.first() {
                        bail!(
                            "{} already has landing data ({}): seeding would overwrite it; pass --force, or seed another warehouse",
                            config.warehouse,
                            env.store.url(&object.key)
                        );
                    }
                }
            }
            let started = std::time::Instant::now();
            let written = seed::seed(
                env.store.as_ref(),
                seed::SeedOptions {
                    customers,
                    seed,
                    clean,
                },
            )?;
            println!(
                "seeded {} in {:.2}s: {customers} customers; landing lines: customer {}, accelerometer {}, step_trainer {}",
                config.warehouse,
                started.elapsed().as_secs_f64(),
                written.customer_lines,
                written.accelerometer_lines,
                written.step_trainer_lines,
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            aws: true,
            policy,
            run_id,
            state_machine,
            redrive,
            ..
        } => {
            let state_machine =
                state_machine.or_else(|| deployment.as_ref().map(|d| d.state_machine_arn.clone()));
            run_on_aws(&config, state_machine, redrive, policy, run_id)
        }
        Command::Run {
            policy,
            run_id,
            definition,
            save_requests,
            as_of,
            ..
        } => run(&config, policy, run_id, definition, save_requests, as_of),
        Command::Vacuum {
            retain,
            keep_runs,
            dry_run,
            force,
            as_of,
        } => {
            let mut env = Env::open(&config)?;
            if let Some(ms) = as_of {
                env = env.at(ms);
            }
            let options = zones::contract::VacuumOptions {
                retain_ms: u64::try_from(retain.as_millis()).unwrap_or(u64::MAX),
                keep_runs,
                dry_run,
                force,
            };
            let (plan, result) = lakehouse::vacuum::vacuum(&env, &options)?;
            print!("{}", stedi::vacuum::render(&plan, &result));
            Ok(ExitCode::SUCCESS)
        }
        Command::Query { format, aws, sql } => {
            if aws && config.athena_workgroup.is_none() {
                bail!(
                    "`stedi query --aws` needs --stack, or --glue-database and --athena-workgroup"
                );
            }
            let mut env = Env::open(&config)?;
            if !aws {
                // Polars SQL over whichever catalog, unless Athena was asked for.
                env.query = Some(Arc::new(PolarsSql {
                    store: env.store.clone(),
                    streaming: false,
                }));
            }
            let catalog = env.catalog.load()?;
            if catalog.tables.is_empty() {
                match &config.glue_database {
                    Some(database) => bail!(
                        "the Glue database {database} has no tables of {}: run `stedi run` first, \
                         or check --glue-database",
                        config.warehouse
                    ),
                    None => bail!(
                        "the catalog of {} is empty: run `stedi run` first",
                        config.warehouse
                    ),
                }
            }
            let df = env.query()?.execute(&catalog, &sql)?;
            output::print(&df, format, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tables { name, columns } => {
            let env = Env::open(&config)?;
            let catalog = env.catalog.load()?;
            match name {
                Some(name) => print!(
                    "{}",
                    listing::table(&catalog, env.store.as_ref(), table_named(&name)?)?
                ),
                None => print!("{}", listing::tables(&catalog, columns)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::History { table } => {
            let env = Env::open(&config)?;
            let catalog = env.catalog.load()?;
            let only = table.as_deref().map(table_named).transpose()?;
            if let Some(table) = only.filter(|t| !Table::PRODUCED.contains(t)) {
                bail!(
                    "history lists the snapshots of the five produced tables; {table} is a {} table (its current state: `stedi tables {table}`)",
                    table.zone().as_str()
                );
            }
            let runs = listing::published_runs(env.store.as_ref())?;
            print!("{}", listing::history(&catalog, &runs, only));
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { run_id, html, open } => {
            let env = Env::open(&config)?;
            let store = env.store.as_ref();
            // The latest run with a page, whether or not it reached its
            // gate: the summary of one that did not says so.
            let run_id = match run_id {
                Some(id) => id,
                None => latest_run(&env, &["/report.json", "/facts.json"])?,
            };
            if html || open {
                let location = write_html(store, &run_id)?;
                println!("{location}");
                if open {
                    open_page(&location)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let (report, location) = load_report(store, &run_id)?;
            print!("{}", summary::render(&report, &location));
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { table } => verify(&Env::open(&config)?, table.as_deref()),
        Command::Erase {
            email,
            from_file,
            status,
        } => erase(&Env::open(&config)?, email, from_file, status),
        Command::RotateKey => {
            let env = Env::open(&config)?;
            let (old, new) = lakehouse::rotate_key(&env, runs::now_ms())?;
            println!(
                "pseudonym key rotated: fingerprint {} -> {new}; the next run keys machine_learning_curated with the new key (every customerKey changes)",
                old.as_deref().unwrap_or("none")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Whether `address` has the shape of an email address: one `@`, a local
/// part, a domain with an inner dot, no whitespace.
fn plausible_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address.chars().any(char::is_whitespace)
}

fn erase(
    env: &Env,
    emails: Vec<String>,
    from_file: Option<PathBuf>,
    status: bool,
) -> Result<ExitCode> {
    if status {
        let requests = lakehouse::erasure::requests(env.store.as_ref())?;
        print!("{}", listing::erasure_requests(&requests));
        return Ok(ExitCode::SUCCESS);
    }
    // Each address with where it came from: the file's line, or the command line.
    let (addresses, origin): (Vec<(String, String)>, String) = match &from_file {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .lines()
                .enumerate()
                .map(|(n, l)| (format!(" ({} line {})", path.display(), n + 1), l.trim()))
                .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
                .map(|(at, l)| (l.to_string(), at))
                .collect(),
            format!(" in {}", path.display()),
        ),
        None => (
            emails
                .into_iter()
                .map(|e| (e.trim().to_string(), String::new()))
                .collect(),
            String::new(),
        ),
    };
    if addresses.is_empty() {
        bail!("no address to erase{origin}");
    }
    if let Some((bad, at)) = addresses.iter().find(|(a, _)| !plausible_email(a)) {
        bail!(
            "`{bad}`{at} is not an email address (one `@`, a name before it, a domain with a dot after it, no spaces)"
        );
    }
    let emails: Vec<String> = addresses.into_iter().map(|(a, _)| a).collect();
    let request = lakehouse::erasure::file(env, &emails, runs::now_ms())?;
    println!(
        "erasure request {} filed: {} {}; the next run (`stedi run`, or the schedule) applies it",
        request.id,
        request.subjects.len(),
        if request.subjects.len() == 1 {
            "person"
        } else {
            "people"
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn run(
    config: &Config,
    policy: Policy,
    run_id: Option<RunId>,
    definition: Option<PathBuf>,
    save_requests: Option<PathBuf>,
    as_of: Option<u64>,
) -> Result<ExitCode> {
    let definition_text = match &definition {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => runner::DEFINITION.to_string(),
    };
    let definition: serde_json::Value =
        serde_json::from_str(&definition_text).context("parsing the state machine definition")?;
    let mut env = Env::open(config)?;
    if let Some(ms) = as_of {
        env = env.at(ms);
    }
    let run_id = run_id.unwrap_or_else(|| runner::new_run_id(env.clock.now_ms()));
    // Refused before any state runs: a finished or published run id, one
    // that another process is running, a resume under another policy.
    let _lease = runner::Lease::take(&env, &run_id)?;
    let resumed = runs::check_reusable(&env, &run_id, &env.catalog.load()?)?;
    if let Some(record) = &resumed
        && record.policy != policy
    {
        bail!(
            "run {run_id} was started with policy {}: resume it with --policy {}, or choose a new run id",
            record.policy,
            record.policy
        );
    }
    match resumed {
        Some(record) => eprintln!(
            "run {run_id}: resuming (started {} with policy {}), warehouse {}",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_millis(record.started_at_ms)
            ),
            record.policy,
            config.warehouse
        ),
        None => eprintln!(
            "run {run_id}: policy {policy}, warehouse {}",
            config.warehouse
        ),
    }

    let spinner = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let print = |line: String| match &spinner {
        Some(bar) => bar.println(line),
        None => eprintln!("{line}"),
    };
    let observer = |event: &Event| {
        let line = match event {
            Event::Entered { state } => {
                if let Some(bar) = &spinner {
                    bar.set_message(format!("{state} ..."));
                }
                return;
            }
            Event::Succeeded { state, seconds } => format!("  done   {state:<28} {seconds:>7.2}s"),
            Event::Retrying {
                state,
                error,
                attempt,
                delay,
            } => {
                format!(
                    "  retry  {state:<28} {error} (attempt {attempt}, after {:.1}s)",
                    delay.as_secs_f64()
                )
            }
            Event::Failed { state, error } => format!("  failed {state:<28} {error}"),
            Event::Caught { state, error, next } => {
                format!("  failed {state:<28} {error} (caught: next {next})")
            }
            Event::MapRun {
                state,
                counts,
                status,
                ..
            } => {
                let progress = counts.progress();
                if *status == MapRunStatus::Running {
                    if let Some(bar) = &spinner {
                        bar.set_message(format!(
                            "{state} ... {progress}, {} running",
                            counts.running
                        ));
                    }
                    return;
                }
                format!("  map    {state:<28} {progress}")
            }
        };
        print(line);
    };
    let started = std::time::Instant::now();
    let result = runner::run(
        &env,
        &definition,
        &run_id,
        policy,
        &observer,
        save_requests.as_deref(),
    );
    if let Some(bar) = &spinner {
        bar.finish_and_clear();
    }
    print_report(env.store.as_ref(), &run_id);
    if let Some(vacuum) = result.as_ref().ok().and_then(|output| {
        serde_json::from_value::<zones::contract::VacuumResult>(output["vacuum"].clone()).ok()
    }) {
        println!(
            "vacuum: deleted {} objects, {} (snapshots kept per table: at most {})",
            vacuum.objects,
            report_html::bytes(vacuum.bytes),
            vacuum
                .tables
                .values()
                .map(|t| t.snapshots_kept)
                .max()
                .unwrap_or(0)
        );
    }
    println!("wall time: {:.2}s", started.elapsed().as_secs_f64());
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(failure) => {
            eprintln!(
                "error: run {run_id} failed: {}: {}",
                failure.error, failure.cause
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `stedi run --aws`: an execution on Step Functions, followed to its end.
fn run_on_aws(
    config: &Config,
    state_machine: Option<String>,
    redrive: Option<String>,
    policy: Policy,
    run_id: Option<RunId>,
) -> Result<ExitCode> {
    let aws = Aws::from_env()?;
    let executions = sfn::Executions::new(&aws);
    let (arn, seen) = match (redrive, state_machine) {
        (Some(arn), _) => {
            let seen = executions.redrive(&arn)?;
            eprintln!("redriving {arn}");
            (arn, seen)
        }
        (None, Some(state_machine)) => {
            let run_id = run_id.unwrap_or_else(|| runner::new_run_id(runs::now_ms()));
            let arn = executions.start(&state_machine, &run_id, policy)?;
            eprintln!("run {run_id}: policy {policy}, execution {arn}");
            (arn, 0)
        }
        (None, None) => bail!("`stedi run --aws` needs --state-machine ARN or --stack NAME"),
    };
    let started = std::time::Instant::now();
    let ended = executions.follow(&arn, seen, &mut |line| eprintln!("{line}"))?;
    if let (true, Ok(run_id)) = (
        config.warehouse.starts_with("s3://"),
        RunId::parse(&ended.name),
    ) {
        let env = Env::open(config)?;
        print_report(env.store.as_ref(), &run_id);
        // The page again, with every state's outcome from the execution's history.
        let page = executions.timeline(&arn).and_then(|(timeline, results)| {
            let failure =
                (ended.status != ExecutionStatus::Succeeded).then(|| stedi::asl::Failure {
                    error: ended
                        .error
                        .clone()
                        .unwrap_or_else(|| ended.status.as_str().to_string()),
                    cause: ended.cause.clone().unwrap_or_default(),
                });
            let definition: serde_json::Value = serde_json::from_str(runner::DEFINITION)?;
            let policy = results.values().next().map_or(policy, |r| r.policy);
            runner::write_page(
                &env,
                &runner::RunSeen {
                    run_id: &run_id,
                    policy,
                    definition: &definition,
                    timeline: &timeline,
                    map_runs: &Default::default(),
                    results: &results,
                    failure: failure.as_ref(),
                    seconds: started.elapsed().as_secs_f64(),
                    written_by: "stedi run --aws",
                },
            )
        });
        match page {
            Ok(location) => println!("page: {location}"),
            Err(e) => eprintln!("warning: could not write the run's page: {}", message(&e)),
        }
    }
    println!("wall time: {:.2}s", started.elapsed().as_secs_f64());
    if ended.status == ExecutionStatus::Succeeded {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: execution {} {}: {}: {}",
        ended.arn,
        ended.status.as_str(),
        ended.error.as_deref().unwrap_or("(no error)"),
        ended.cause.as_deref().unwrap_or("(no cause)")
    );
    Ok(ExitCode::FAILURE)
}

/// Prints the run's report summary, if the run got as far as writing one.
fn print_report(store: &dyn Store, run_id: &RunId) {
    if let Ok((report, location)) = load_report(store, run_id) {
        print!("{}", summary::render(&report, &location));
    }
    if let Ok(bytes) = store.get(&layout::erasure_report_key(run_id))
        && let Ok(erasure) = serde_json::from_slice(&bytes)
    {
        print!(
            "{}",
            summary::erasure(&erasure, &store.url(&layout::erasure_report_key(run_id)))
        );
    }
}

fn load_report(store: &dyn Store, run_id: &RunId) -> Result<(Report, String)> {
    let key = layout::report_key(run_id);
    let bytes = match store.get(&key) {
        Err(lakehouse::Error::NotFound { .. })
            if store.get(&layout::run_facts_key(run_id)).is_ok() =>
        {
            bail!(
                "run {run_id} ended before its quality gate, so it has no report.json; its page shows how far it got: `stedi report {run_id} --html`"
            )
        }
        other => other?,
    };
    let report =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", store.url(&key)))?;
    Ok((report, store.url(&key)))
}

/// The run that started last (by its run record; runs from before run
/// records count as oldest, then by id) among those with an object whose key
/// ends in one of `suffixes`.
fn latest_run(env: &Env, suffixes: &[&str]) -> Result<RunId> {
    let mut latest: Option<(u64, RunId)> = None;
    for object in env.store.list(layout::runs_prefix())? {
        let Some(id) = suffixes
            .iter()
            .find_map(|s| object.key.strip_suffix(s))
            .and_then(|k| k.strip_prefix(layout::runs_prefix()))
            .and_then(|id| RunId::parse(id).ok())
        else {
            continue;
        };
        let started = runs::load(env.store.as_ref(), &id)?.map_or(0, |r| r.started_at_ms);
        if latest.as_ref().is_none_or(|l| (started, &id) > (l.0, &l.1)) {
            latest = Some((started, id));
        }
    }
    latest
        .map(|(_, id)| id)
        .context("no run has written a report yet: run `stedi run` first")
}

/// `stedi verify`: every part of every published Parquet table (or of one)
/// read and checked against its snapshot manifest.
fn verify(env: &Env, only: Option<&str>) -> Result<ExitCode> {
    let catalog = env.catalog.load()?;
    let tables: Vec<_> = catalog
        .tables
        .iter()
        .filter(|(t, e)| e.format == TableFormat::Parquet && only.is_none_or(|n| t.name() == n))
        .collect();
    if let Some(name) = only
        && tables.is_empty()
    {
        bail!("`{name}` is not a published Parquet table of the catalog");
    }
    let mut damaged = 0;
    for (table, entry) in tables {
        match tables::verify(env.store.as_ref(), &entry.table) {
            Ok((parts, bytes)) => println!(
                "ok       {:<28} snapshot {}  {parts} parts, {bytes} bytes",
                table.name(),
                entry.table.snapshot
            ),
            Err(e) => {
                damaged += 1;
                println!("DAMAGED  {:<28} {e}", table.name());
            }
        }
    }
    Ok(if damaged == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: {damaged} table(s) failed verification");
        ExitCode::FAILURE
    })
}

/// A retention window such as `7d`, `12h` or `0s`.
fn parse_window(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration such as 7d, 12h or 0s: {e}"))
}

/// An RFC 3339 time (`2026-12-01T00:00:00Z`) as epoch milliseconds.
fn parse_time(text: &str) -> Result<u64, String> {
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("`{text}` is not an RFC 3339 time such as 2026-12-01T00:00:00Z: {e}")
    })?;
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| format!("`{text}` is before 1970"))
}

fn table_named(name: &str) -> Result<zones::Table> {
    zones::Table::from_name(name).with_context(|| {
        let names: Vec<&str> = zones::Table::ALL.iter().map(|t| t.name()).collect();
        format!("no table `{name}`; the tables are {}", names.join(", "))
    })
}

/// Draws run `run_id`'s page again from its report.json and facts.json and
/// writes it beside them; returns where it is.
fn write_html(store: &dyn Store, run_id: &RunId) -> Result<String> {
    let (report, facts) = quality_gate::page::load(store, run_id)?;
    let facts = match (facts, &report) {
        (Some(facts), _) => facts,
        // A report from before pages existed: what storage can still tell.
        (None, Some(report)) => quality_gate::page::gather(
            store,
            run_id,
            report.policy,
            &Default::default(),
            "stedi report --html",
            runner::DEFINITION,
        ),
        (None, None) => bail!(
            "run `{run_id}` has no report.json or facts.json under {}",
            store.url(layout::runs_prefix())
        ),
    };
    let definition: serde_json::Value = serde_json::from_str(runner::DEFINITION)?;
    let key = quality_gate::page::write(store, report.as_ref(), &facts, &definition)?;
    Ok(store.url(&key))
}

/// Opens a local page in the desktop's browser.
fn open_page(location: &str) -> Result<()> {
    if location.starts_with("s3://") {
        bail!("--open needs a local warehouse: download {location} and open it");
    }
    let path = PathBuf::from(location);
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(&path)
        .spawn()
        .with_context(|| format!("starting `{opener}`: open {} yourself", path.display()))?;
    Ok(())
}

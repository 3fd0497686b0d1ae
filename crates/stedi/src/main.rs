use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use lakehouse::catalog::LocalCatalog;
use lakehouse::{Env, LocalStore, Store};
use stedi::asl::Event;
use stedi::output::{self, Format};
use stedi::{runner, seed, summary};
use zones::report::Report;
use zones::{Policy, layout};

/// STEDI lakehouse: landing -> trusted -> curated, on one machine or on AWS.
#[derive(Parser)]
#[command(name = "stedi", version)]
struct Cli {
    /// The warehouse root: a local directory standing in for the S3 bucket.
    #[arg(long, global = true, default_value = "./lakehouse")]
    warehouse: PathBuf,
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
    },
    /// Run the pipeline: execute statemachine.asl.json through the local runner.
    Run {
        #[arg(long, default_value = "strict")]
        policy: Policy,
        /// Defaults to the UTC time plus a random suffix.
        #[arg(long)]
        run_id: Option<String>,
        /// Execute this state machine definition instead of the built-in statemachine.asl.json.
        #[arg(long)]
        definition: Option<PathBuf>,
    },
    /// Run SQL over the catalog's tables (Polars SQL standing in for Athena).
    Query {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        sql: String,
    },
    /// List the catalog's tables: snapshot, rows, location, columns.
    Tables,
    /// Print the summary of a run's report (the latest run by default).
    Report { run_id: Option<String> },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEDI_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let warehouse = cli.warehouse;
    match cli.command {
        Command::Seed {
            customers,
            seed,
            clean,
        } => {
            let started = std::time::Instant::now();
            let written = seed::seed(
                &warehouse,
                seed::SeedOptions {
                    customers,
                    seed,
                    clean,
                },
            )?;
            println!(
                "seeded {} in {:.2}s: {customers} customers; landing lines: customer {}, accelerometer {}, step_trainer {}",
                warehouse.display(),
                started.elapsed().as_secs_f64(),
                written.customer_lines,
                written.accelerometer_lines,
                written.step_trainer_lines,
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            policy,
            run_id,
            definition,
        } => run(&warehouse, policy, run_id, definition),
        Command::Query { format, sql } => {
            let store = LocalStore::new(&warehouse);
            let catalog = LocalCatalog::new(&store).load()?;
            if catalog.tables.is_empty() {
                bail!(
                    "the catalog of {} is empty: run `stedi run` first",
                    warehouse.display()
                );
            }
            let df = lakehouse::query::execute(&store, &catalog, &sql)?;
            output::print(&df, format, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tables => {
            let store = LocalStore::new(&warehouse);
            let catalog = LocalCatalog::new(&store).load()?;
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
                .set_header(["table", "zone", "snapshot", "rows", "location", "columns"]);
            for (name, entry) in &catalog.tables {
                let columns: Vec<String> = entry
                    .table
                    .columns
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.ty))
                    .collect();
                table.add_row([
                    name.to_string(),
                    name.zone().as_str().to_string(),
                    entry.table.snapshot.clone(),
                    entry.table.rows.to_string(),
                    store.url(&entry.table.location),
                    columns.join(", "),
                ]);
            }
            println!("{table}");
            println!("catalog version {}", catalog.version);
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { run_id } => {
            let store = LocalStore::new(&warehouse);
            let run_id = match run_id {
                Some(id) => id,
                None => latest_run(&store)?,
            };
            let (report, location) = load_report(&store, &run_id)?;
            print!("{}", summary::render(&report, &location));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(
    warehouse: &std::path::Path,
    policy: Policy,
    run_id: Option<String>,
    definition: Option<PathBuf>,
) -> Result<ExitCode> {
    let definition_text = match &definition {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => runner::DEFINITION.to_string(),
    };
    let definition: serde_json::Value =
        serde_json::from_str(&definition_text).context("parsing the state machine definition")?;
    let env = Env::local(warehouse)?;
    let run_id = run_id.unwrap_or_else(runner::new_run_id);
    eprintln!(
        "run {run_id}: policy {policy}, warehouse {}",
        warehouse.display()
    );

    let spinner = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let observer = |event: &Event| {
        let line = match event {
            Event::Entered { state } => {
                if let Some(bar) = &spinner {
                    bar.set_message(format!("{state} ..."));
                }
                return;
            }
            Event::Succeeded { state, seconds } => format!("  done   {state:<24} {seconds:>7.2}s"),
            Event::Retrying {
                state,
                error,
                attempt,
                delay,
            } => {
                format!(
                    "  retry  {state:<24} {error} (attempt {attempt}, after {:.1}s)",
                    delay.as_secs_f64()
                )
            }
            Event::Failed { state, error } => format!("  failed {state:<24} {error}"),
        };
        match &spinner {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    };
    let started = std::time::Instant::now();
    let result = runner::run(&env, &definition, &run_id, policy, &observer);
    if let Some(bar) = &spinner {
        bar.finish_and_clear();
    }
    let report = load_report(env.store.as_ref(), &run_id).ok();
    if let Some((report, location)) = &report {
        print!("{}", summary::render(report, location));
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

fn load_report(store: &dyn Store, run_id: &str) -> Result<(Report, String)> {
    let key = layout::report_key(run_id);
    let bytes = store.get(&key)?;
    let report =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", store.url(&key)))?;
    Ok((report, store.url(&key)))
}

fn latest_run(store: &dyn Store) -> Result<String> {
    store
        .list(layout::runs_prefix())?
        .into_iter()
        .filter(|o| o.key.ends_with("/report.json"))
        .filter_map(|o| o.key.split('/').nth(1).map(str::to_string))
        .max()
        .context("no run has written a report yet: run `stedi run` first")
}

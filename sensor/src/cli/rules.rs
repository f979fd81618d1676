//! The commands that need no kernel: `validate`, `list-fields`, `test-rules`, `replay`.

use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use sensor::{
    event::Event,
    outputs::OutputStage,
    pipeline::{Pipeline, load_rules},
    rules::{self, EngineOptions},
    state::{FieldMapEvent, State, StateConfig},
};

/// Options of `sensor validate`.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Rules files or directories (`.yaml`/`.yml`, loaded in order; later ones override).
    #[arg(required = true, value_name = "RULES")]
    paths: Vec<PathBuf>,
    /// Print the report as JSON: counts, and each error and warning with its file, line,
    /// column, item and message.
    #[arg(long)]
    json: bool,
}

/// Loads and checks rules; non-zero exit on any error.
pub fn validate(args: ValidateArgs) -> anyhow::Result<()> {
    let report = rules::validate(&args.paths);
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{report}");
    }
    if !report.is_ok() {
        bail!("{} error(s) in the rules", report.errors());
    }
    Ok(())
}

/// Options of `sensor list-fields`.
#[derive(clap::Args)]
pub struct ListFieldsArgs {
    /// Print the registry as JSON.
    #[arg(long)]
    json: bool,
}

/// Prints every field rules can use.
pub fn list_fields(args: ListFieldsArgs) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rules::fields::list_json())?);
    } else {
        print!("{}", rules::fields::list_text());
    }
    Ok(())
}

/// Options of `sensor test-rules`.
#[derive(clap::Args)]
pub struct TestRulesArgs {
    /// Test files or directories of rule unit tests.
    #[arg(required = true, value_name = "TESTS")]
    paths: Vec<PathBuf>,
    /// Rules to test (default: the files each test names).
    #[arg(long, value_name = "RULES")]
    rules: Vec<PathBuf>,
    /// Show passing cases too.
    #[arg(short, long)]
    verbose: bool,
}

/// Runs rule unit tests; non-zero exit on any failure.
pub fn test_rules(args: TestRulesArgs) -> anyhow::Result<()> {
    let report = rules::run_rule_tests(&args.paths, &args.rules);
    print!("{}", report.render(args.verbose));
    if !report.is_success() {
        bail!("rule tests failed");
    }
    Ok(())
}

/// Options of `sensor replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Rules files or directories (default: the configuration's `rules`, else the built-in rules).
    #[arg(long, value_name = "RULES")]
    rules: Vec<PathBuf>,
    /// Events, one JSON object per line: a capture file (`sensor capture --output`), which
    /// goes through the same state and rules as live events, or field maps
    /// (`{"evt.type": "openat", "fd.name": "/etc/shadow"}`). `-` reads standard input until
    /// it closes.
    #[arg(long, value_name = "FILE")]
    events: PathBuf,
    #[command(flatten)]
    config: super::ConfigArgs,
}

/// Runs recorded events through the rules and sends the alerts to the outputs.
pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let rules = if args.rules.is_empty() { &config.rules } else { &args.rules };
    let (engine, diagnostics) = match load_rules(rules, EngineOptions::default()) {
        Ok(loaded) => loaded,
        Err(report) => bail!("{report}"),
    };
    for d in &diagnostics {
        eprintln!("{d}");
    }
    let input: Box<dyn BufRead> = if args.events == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(&args.events).with_context(|| format!("opening {}", args.events.display()))?;
        Box::new(BufReader::new(file))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let stage = runtime.block_on(OutputStage::start(&config.outputs))?;
    let mut pipeline = Pipeline::new(engine, State::new(StateConfig::default()));
    // The outputs deliver what was found even when a bad line stops the replay.
    let replayed = replay_lines(input, &args.events, &mut pipeline, &stage);
    if let Ok((events, alerts)) = &replayed {
        eprintln!("replay: {events} events, {alerts} alerts");
    }
    runtime.block_on(args.config.finish(stage));
    replayed.map(drop)
}

/// Evaluates each line of `input`; the counts of events and alerts.
fn replay_lines(
    input: impl BufRead,
    name: &Path,
    pipeline: &mut Pipeline,
    stage: &OutputStage,
) -> anyhow::Result<(u64, u64)> {
    let (mut events, mut alerts) = (0u64, 0u64);
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", name.display(), i + 1);
        let value: serde_json::Value = serde_json::from_str(text).with_context(at)?;
        events += 1;
        let fired = if value.get("event").is_some() {
            let event: Event = serde_json::from_value(value).with_context(at)?;
            pipeline.process(&event)
        } else {
            let event = FieldMapEvent::from_json(&value).map_err(anyhow::Error::msg).with_context(at)?;
            let mismatches = event.mismatches();
            if !mismatches.is_empty() {
                bail!("{}: {}", at(), mismatches.join("; "));
            }
            pipeline.evaluate(&event.view())
        };
        for alert in fired {
            alerts += 1;
            stage.publish(alert);
        }
    }
    Ok((events, alerts))
}

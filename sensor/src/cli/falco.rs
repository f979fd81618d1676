//! Falco's command line, understood by `sensor` itself: `sensor -c /etc/falco/falco.yaml -r
//! rules.yaml -o json_output=true` runs as `falco` would, and `-L`, `-l`, `--list`,
//! `--list-events`, `-V`, `--dry-run` and `--support` answer as Falco's do. A command line
//! whose first argument is not one of `sensor`'s subcommands is taken as Falco's.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;
use sensor::config::{RuleSelection, SelectedRules, SensorConfig};

/// Where Falco looks for its configuration when `-c` is not given.
const FALCO_CONFIG: &str = "/etc/falco/falco.yaml";

/// Falco's options (Falco 0.44's meanings).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "sensor",
    disable_version_flag = true,
    about = "Falco's command line: the sensor runs as `falco` would with these options.",
    after_help = "The sensor's own commands: `sensor --help` (run, validate, config check, alerts, console...)."
)]
pub struct FalcoArgs {
    /// Configuration file (default /etc/falco/falco.yaml when it exists); Falco's or the
    /// sensor's own.
    #[arg(short = 'c', value_name = "PATH")]
    config: Option<PathBuf>,
    /// Rules file or directory, instead of the configuration's `rules_files`; repeatable.
    #[arg(short = 'r', value_name = "RULES")]
    rules: Vec<PathBuf>,
    /// Set a configuration key: `-o json_output=true`, `-o rules_files[]=/x.yaml` (appends).
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// Print every rule's name and description, and exit.
    #[arg(short = 'L')]
    list_rules: bool,
    /// Print one rule's name and description, and exit.
    #[arg(short = 'l', value_name = "RULE")]
    describe_rule: Option<String>,
    /// Print every field rules can use (of one source: syscall or k8s_audit), and exit.
    #[arg(long = "list", value_name = "SOURCE", num_args = 0..=1, default_missing_value = "")]
    list_fields: Option<String>,
    /// With --list: the field names only.
    #[arg(short = 'N')]
    names_only: bool,
    /// Print every event (system call) the sensor captures, and exit.
    #[arg(long = "list-events")]
    list_events: bool,
    /// Check the rules files given and exit: 0 when they load, 1 when not; repeatable.
    #[arg(short = 'V', long = "validate", value_name = "RULES")]
    validate: Vec<PathBuf>,
    /// Capture every event, not only those the rules can match (the kernel prefilter off).
    #[arg(short = 'A')]
    all_events: bool,
    /// Unbuffered outputs: what the sensor's outputs always are (each batch is written at once).
    #[arg(short = 'U', long = "unbuffered")]
    unbuffered: bool,
    /// Disable the rules whose names contain this text; repeatable.
    #[arg(short = 'D', value_name = "SUBSTRING")]
    disable: Vec<String>,
    /// Disable the rules with this tag; repeatable.
    #[arg(short = 'T', value_name = "TAG")]
    disable_tag: Vec<String>,
    /// Run only the rules with this tag; repeatable.
    #[arg(short = 't', value_name = "TAG")]
    enable_tag: Vec<String>,
    /// Load the configuration and rules, start nothing, and exit.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Print support information (version, system, command line, configuration, rules) as
    /// JSON, and exit.
    #[arg(long)]
    support: bool,
    /// Stop after this many seconds.
    #[arg(short = 'M', value_name = "SECONDS")]
    duration: Option<u64>,
    /// Write the sensor's pid to this file.
    #[arg(short = 'P', long = "pidfile", value_name = "PATH")]
    pidfile: Option<PathBuf>,
    /// Print the version, and exit.
    #[arg(long)]
    version: bool,
}

impl FalcoArgs {
    /// The configuration file: `-c`, else Falco's when it exists.
    fn config_file(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let default = PathBuf::from(FALCO_CONFIG);
            default.exists().then_some(default)
        })
    }

    /// The configuration as these options make it: the file with `-o`, `-r`, `-A` and the
    /// rule selections of `-D`, `-T`, `-t` over it.
    fn configuration(&self) -> anyhow::Result<SensorConfig> {
        let mut config = SensorConfig::load_with_overrides(self.config_file().as_deref(), &self.options)?;
        self.adjust(&mut config);
        Ok(config)
    }

    /// What `-r`, `-A`, `-D`, `-T` and `-t` change.
    pub fn adjust(&self, config: &mut SensorConfig) {
        if !self.rules.is_empty() {
            config.rules.clone_from(&self.rules);
        }
        if self.all_events {
            config.capture.prefilter = false;
        }
        let select = &mut config.engine.select;
        if !self.enable_tag.is_empty() {
            select.push(RuleSelection::Disable(SelectedRules::Rule("*".into())));
            select.extend(self.enable_tag.iter().map(|t| RuleSelection::Enable(SelectedRules::Tag(t.clone()))));
        }
        select.extend(self.disable_tag.iter().map(|t| RuleSelection::Disable(SelectedRules::Tag(t.clone()))));
        select.extend(self.disable.iter().map(|s| RuleSelection::Disable(SelectedRules::Rule(format!("*{s}*")))));
    }
}

/// Whether `args` (without the program name) are Falco's command line rather than a
/// `sensor` subcommand's.
pub fn is_falco_command_line(args: &[String]) -> bool {
    let Some(first) = args.first() else { return false };
    // `sensor --log debug run ...`: the sensor's global option before its subcommand.
    // `--help` is the sensor's own; `-h`, Falco's options.
    if first == "--log" || first.starts_with("--log=") || matches!(first.as_str(), "--help" | "help") {
        return false;
    }
    first.starts_with('-')
}

/// Runs Falco's command line; the exit code is Falco's (1 on an invalid rules file).
pub fn main(args: Vec<String>) -> ExitCode {
    let falco = FalcoArgs::parse_from(std::iter::once("sensor".to_owned()).chain(args));
    match run(falco) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(falco: FalcoArgs) -> anyhow::Result<ExitCode> {
    // A run (and a dry run) starts its log once its configuration is read (log_level); what
    // only prints logs its warnings.
    let prints = falco.version
        || !falco.validate.is_empty()
        || falco.list_fields.is_some()
        || falco.list_events
        || falco.support
        || falco.list_rules
        || falco.describe_rule.is_some();
    if prints {
        let level = std::env::var("SENSOR_LOG").unwrap_or_else(|_| "warn".into());
        super::init_logging(&level, sensor::config::LogFormat::Text);
    }
    if falco.version {
        println!("sensor {}", env!("CARGO_PKG_VERSION"));
        return Ok(ExitCode::SUCCESS);
    }
    if !falco.validate.is_empty() {
        return Ok(validate(&falco.validate));
    }
    if let Some(source) = &falco.list_fields {
        print_fields(source, falco.names_only)?;
        return Ok(ExitCode::SUCCESS);
    }
    if falco.list_events {
        print(sensor_abi::syscalls::SYSCALLS.iter().map(|s| format!("{}\n", s.name)).collect())?;
        return Ok(ExitCode::SUCCESS);
    }
    if falco.support {
        println!("{}", serde_json::to_string_pretty(&support(&falco)?)?);
        return Ok(ExitCode::SUCCESS);
    }
    if falco.list_rules || falco.describe_rule.is_some() {
        return describe_rules(&falco);
    }
    if falco.dry_run {
        let config = falco.configuration()?;
        super::init_logging_for(&Ok(config.clone()), None);
        let (engine, _) = sensor::pipeline::load_rules(&config.rules, super::run::engine_options(&config))
            .map_err(|report| anyhow::anyhow!("the rules do not load:\n{report}"))?;
        log::info!("dry run: configuration and {} rules loaded; not starting", engine.rule_count());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(pidfile) = &falco.pidfile {
        std::fs::write(pidfile, format!("{}\n", std::process::id()))
            .with_context(|| format!("-P {}", pidfile.display()))?;
    }
    let mut argv = vec!["sensor".to_owned(), "run".to_owned()];
    if let Some(config) = falco.config_file() {
        argv.extend(["--config".to_owned(), config.display().to_string()]);
    }
    for option in &falco.options {
        argv.extend(["-o".to_owned(), option.clone()]);
    }
    if let Some(seconds) = falco.duration {
        argv.extend(["--duration".to_owned(), seconds.to_string()]);
    }
    let mut run = super::run::RunArgs::parse_from_argv(argv)?;
    run.falco = Some(falco);
    super::block_on(super::run::run(run, None))?;
    Ok(ExitCode::SUCCESS)
}

/// `-V`: Falco's report of each file, and its exit code.
fn validate(paths: &[PathBuf]) -> ExitCode {
    println!("Validating rules file(s):");
    for path in paths {
        println!("   {}", path.display());
    }
    let report = sensor::rules::validate(paths);
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    if report.is_ok() {
        for d in &report.diagnostics {
            eprintln!("{d}");
        }
        println!("{}: Ok", names.join(", "));
        ExitCode::SUCCESS
    } else {
        println!("{}: Invalid", names.join(", "));
        println!("{report}");
        ExitCode::FAILURE
    }
}

/// Writes `text` to stdout; a reader that had enough (`| head`) is no error.
fn print(text: String) -> anyhow::Result<()> {
    use std::io::Write as _;
    super::printed(std::io::stdout().lock().write_all(text.as_bytes()))?;
    Ok(())
}

fn print_fields(source: &str, names_only: bool) -> anyhow::Result<()> {
    let fields = sensor::rules::fields::list_json();
    let known = ["", "syscall", "k8s_audit"];
    anyhow::ensure!(known.contains(&source), "--list {source}: the sources are syscall and k8s_audit");
    let mut out = String::new();
    for f in fields.as_array().into_iter().flatten() {
        let sources: Vec<&str> = f["sources"].as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
        if !source.is_empty() && !sources.contains(&source) {
            continue;
        }
        let name = f["name"].as_str().unwrap_or_default();
        if names_only {
            out.push_str(&format!("{name}\n"));
        } else {
            out.push_str(&format!("{name:<32} {}\n", f["desc"].as_str().unwrap_or_default()));
        }
    }
    print(out)
}

/// `-L` and `-l RULE`: Falco's table of names and descriptions (JSON with `json_output`).
fn describe_rules(falco: &FalcoArgs) -> anyhow::Result<ExitCode> {
    let config = falco.configuration()?;
    let set = sensor::pipeline::load_rule_set(&config.rules);
    let rules: Vec<_> =
        set.rules.iter().filter(|r| falco.describe_rule.as_ref().is_none_or(|name| r.name == *name)).collect();
    if let Some(name) = &falco.describe_rule
        && rules.is_empty()
    {
        anyhow::bail!("no rule `{name}` in the rules loaded");
    }
    let json = config.outputs.outputs.iter().any(|o| {
        matches!(&o.kind, sensor::outputs::OutputKind::Stdout(s) if s.format == sensor::outputs::stdout::LineFormat::Json)
    });
    if json {
        let list: Vec<serde_json::Value> = rules
            .iter()
            .map(|r| {
                serde_json::json!({"info": {
                    "name": r.name, "desc": r.desc, "priority": r.priority.as_str(), "source": r.source,
                    "tags": r.tags, "enabled": r.enabled,
                }})
            })
            .collect();
        print(format!("{}\n", serde_json::json!({ "rules": list })))?;
    } else {
        let mut out = format!("{:<50} Description\n{:<50} -----------\n", "Rule", "----");
        for r in rules {
            let desc = r.desc.split_whitespace().collect::<Vec<_>>().join(" ");
            out.push_str(&format!("{:<50} {desc}\n", r.name));
        }
        print(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--support`: what a bug report needs, as Falco gives it.
fn support(falco: &FalcoArgs) -> anyhow::Result<serde_json::Value> {
    let config = falco.configuration()?;
    // SAFETY: uname fills the struct it is given.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut uts) };
    let field = |f: &[libc::c_char]| {
        // SAFETY: uname's fields are NUL-terminated.
        unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned()
    };
    let config_text = match falco.config_file() {
        Some(path) => std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        None => String::new(),
    };
    let rules_files: Vec<serde_json::Value> = config
        .rules
        .iter()
        .map(|p| serde_json::json!({"name": p.display().to_string(), "content": std::fs::read_to_string(p).unwrap_or_default()}))
        .collect();
    Ok(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "system_info": {
            "sysname": field(&uts.sysname), "nodename": field(&uts.nodename), "release": field(&uts.release),
            "version": field(&uts.version), "machine": field(&uts.machine),
        },
        "cmdline": std::env::args().collect::<Vec<_>>().join(" "),
        "config": config_text,
        "rules_files": rules_files,
    }))
}

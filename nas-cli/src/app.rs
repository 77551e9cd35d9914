//! The `nas` command line: its arguments (clap) and the dispatch to the command modules.
//! The binary (`main.rs`) only calls [`main`].

use crate::{
    bench, bench_strategies_cmd, device, export_cmd, plugins_cmd, profile_cmd, rank_check_cmd,
    report_cmd, retrain_cmd, search_args, search_cmd, spaces_cmd, train_cmd, trial_cmd,
};
use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "nas", version, about = "Neural architecture search toolkit")]
pub struct Cli {
    /// Worker threads for the CPU kernels, 1 to 1024 (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Train one fixed architecture of a space (default the seed network) and report
    /// test accuracy.
    Train(train_cmd::TrainArgs),
    /// Benchmark the kernels and the seed network's training step (CPU or a device).
    Bench(bench::BenchArgs),
    /// List the built-in search spaces, or the choices of one space.
    Spaces(spaces_cmd::SpacesArgs),
    /// List the strategy plugins found (name, version, kind, ABI).
    Plugins(plugins_cmd::PluginsArgs),
    /// Run a search: a strategy plugin proposes, an evaluator scores, a run directory
    /// records every trial.
    Search(search_args::SearchArgs),
    /// Continue a search that stopped or was killed.
    Resume {
        /// The run directory (as `nas search --out` made it).
        dir: std::path::PathBuf,
        /// Where the rest of the search runs (cpu, wgpu, cuda or cuda:N), recorded in the
        /// run for later resumes; default the device it ran on.
        #[arg(long)]
        device: Option<String>,
        /// Directories to look for the strategy's plugin in, instead of those the run
        /// recorded (a plugin built elsewhere that moved); recorded in the run.
        #[arg(long)]
        plugin_dir: Vec<std::path::PathBuf>,
        /// Run the search in this process, whatever executor it was given (what the
        /// cluster job of a one-shot search runs).
        #[arg(long, hide = true)]
        here: bool,
    },
    /// Evaluate one trial of a run and write its result (what a cluster job runs).
    Trial(trial_cmd::TrialArgs),
    /// Write a run's best architecture (or its Pareto set).
    Export(export_cmd::ExportArgs),
    /// Train a run's best architecture from scratch and report test accuracy.
    Retrain(retrain_cmd::RetrainArgs),
    /// Print a run's table and write its plots (best so far, Pareto front); with
    /// --html, the whole report as one page.
    Report(report_cmd::ReportArgs),
    /// How well a one-shot run's supernet ranks architectures: Kendall tau, Spearman
    /// rho and regret against architectures trained from scratch.
    RankCheck(rank_check_cmd::RankCheckArgs),
    /// Every strategy plugin on the NAS-Bench-201 table, many runs each.
    BenchStrategies(bench_strategies_cmd::BenchStrategiesArgs),
    /// Profile a supernet weight step kernel by kernel (fused and unfused mixed ops),
    /// and write a Chrome trace.
    Profile(profile_cmd::ProfileArgs),
    /// Compile the CUDA kernels to CUBINs (needs NVRTC, not a GPU), for a GPU machine
    /// without NVRTC: point NAS_CUDA_KERNELS there at the directory.
    CudaKernels(device::CudaKernelsArgs),
}

/// The `nas` command: parses the arguments, runs the command, and exits with its status.
pub fn main() {
    crate::logging::init();
    quit_on_closed_pipe();
    let parsed = Cli::command().try_get_matches().and_then(|m| {
        let mut cli = Cli::from_arg_matches(&m)?;
        if let (Cmd::Spaces(a), Some(("spaces", sm))) = (&mut cli.cmd, m.subcommand()) {
            // `nas spaces --space X` shows X, as `--show` would.
            a.named = sm.value_source("space") == Some(clap::parser::ValueSource::CommandLine);
        }
        Ok(cli)
    });
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            eprint!("{}", shorten(&e.render().to_string()));
            std::process::exit(e.exit_code());
        }
    };
    let trace = span_trace_start();
    // A device call that fails mid-step (a buffer past the adapter's limits, a CUDA call that fails) unwinds
    // as a panic: report it as an error, quietly; any other panic stays a crash.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if nas_core::device::failure(info.payload()).is_none() {
            hook(info)
        }
    }));
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli))) {
        Ok(r) => r,
        Err(p) => match nas_core::device::failure(&*p) {
            Some(msg) => Err(anyhow::anyhow!("{msg}")),
            None => std::panic::resume_unwind(p),
        },
    };
    if let Some(path) = trace {
        span_trace_write(&path);
    }
    if let Err(e) = result {
        // A command that stopped on Ctrl-C or SIGTERM (a cluster search, which cancels
        // its jobs first) ends as a local search does: with 128 plus the signal.
        if let Some(signal) = crate::interrupt::signal() {
            eprintln!("\n{}", shorten(&format!("{e:#}")));
            std::process::exit(128 + signal);
        }
        eprintln!("error: {}", shorten(&format!("{e:#}")));
        std::process::exit(1);
    }
}

/// `NAS_TRACE=FILE`: every span of the command is recorded, and written to FILE as a
/// Chrome trace when it ends (Perfetto and chrome://tracing open it).
pub fn span_trace_start() -> Option<std::path::PathBuf> {
    let path: std::path::PathBuf = std::env::var_os("NAS_TRACE")
        .filter(|p| !p.is_empty())?
        .into();
    // Checked as `--trace` is: a run's own file (its journal, say) is not written over.
    if let Err(e) = nas_core::experiment::check_output(&path) {
        tracing::warn!("NAS_TRACE {}: {e}; no trace is written", path.display());
        return None;
    }
    crate::spans::start(std::time::Instant::now());
    Some(path)
}

pub fn span_trace_write(path: &std::path::Path) {
    let events = crate::spans::chrome_events(&crate::spans::stop(), 0.0);
    let trace = serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ms" });
    let written = serde_json::to_vec(&trace)
        .map_err(|e| e.to_string())
        .and_then(|b| nas_core::experiment::write_output(path, &b));
    if let Err(e) = written {
        tracing::warn!("NAS_TRACE: {e}");
    }
}

/// Ends the process quietly when its output is a pipe that was closed (`nas report DIR |
/// head -1`), as other command-line tools do, instead of a panic in `println!`. A search
/// ended this way resumes like one killed at that moment.
pub fn quit_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default action of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The longest line of an error message printed whole.
pub const MAX_LINE: usize = 1000;

/// An error message with the middle of every over-long line cut out: a bad value can be
/// megabytes long (a 10 MB string in a config), and the message needs only where it is
/// and what is wrong, which the start and the end of the line say.
pub fn shorten(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(8 * MAX_LINE));
    for (i, line) in msg.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let chars = line.chars().count();
        if chars <= MAX_LINE {
            out.push_str(line);
            continue;
        }
        let (head, tail) = (MAX_LINE / 2, MAX_LINE / 4);
        out.extend(line.chars().take(head));
        out.push_str(&format!(
            " [... {} characters cut ...] ",
            chars - head - tail
        ));
        out.extend(line.chars().skip(chars - tail));
    }
    out
}

/// The most worker threads `--threads` takes.
pub const MAX_THREADS: usize = 1024;

pub fn run(cli: Cli) -> Result<()> {
    if let Some(t) = cli.threads {
        // Each is an OS thread made at start: 100,000 of them took minutes and gigabytes
        // before any work, where past the cores none runs faster.
        if !(1..=MAX_THREADS).contains(&t) {
            anyhow::bail!(
                "--threads {t}: expected 1 to {MAX_THREADS} (leave it out for one per core; \
                 this machine has {})",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            );
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {t}: {e}"))?;
    }
    match cli.cmd {
        Cmd::Train(a) => train_cmd::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Spaces(a) => spaces_cmd::run(a),
        Cmd::Plugins(a) => plugins_cmd::plugins(a),
        Cmd::Search(a) => search_cmd::run(a),
        Cmd::Resume {
            dir,
            device,
            plugin_dir,
            here,
        } => search_cmd::resume(&dir, device.as_deref(), &plugin_dir, here),
        Cmd::Trial(a) => trial_cmd::run(a),
        Cmd::Export(a) => export_cmd::export(a),
        Cmd::Retrain(a) => retrain_cmd::retrain(a),
        Cmd::Report(a) => report_cmd::report(a),
        Cmd::RankCheck(a) => rank_check_cmd::rank_check(a),
        Cmd::BenchStrategies(a) => bench_strategies_cmd::bench_strategies(a),
        Cmd::Profile(a) => profile_cmd::run(a),
        Cmd::CudaKernels(a) => device::cuda_kernels(a),
    }
}

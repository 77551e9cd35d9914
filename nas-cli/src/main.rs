//! `nas`: the command-line host. Trains networks, runs searches (multi-trial and
//! one-shot), resumes, exports, retrains, reports, profiles and benchmarks.

mod bench;
mod bench_strategies_cmd;
mod device;
mod export_cmd;
mod oneshot_cmd;
mod plugins_cmd;
mod profile_cmd;
mod report_cmd;
mod retrain_cmd;
mod search_args;
mod search_cmd;
mod space_args;
mod spaces_cmd;
mod train_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "nas", version, about = "Neural architecture search toolkit")]
struct Cli {
    /// Worker threads for the CPU kernels (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a fixed architecture of the seed network and report test accuracy.
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
    Resume { dir: std::path::PathBuf },
    /// Write a run's best architecture (or its Pareto set).
    Export(export_cmd::ExportArgs),
    /// Train a run's best architecture from scratch and report test accuracy.
    Retrain(retrain_cmd::RetrainArgs),
    /// Print a run's table and write its plots (best so far, Pareto front).
    Report(report_cmd::ReportArgs),
    /// Every strategy plugin on the NAS-Bench-201 table, many runs each.
    BenchStrategies(bench_strategies_cmd::BenchStrategiesArgs),
    /// Profile a supernet weight step kernel by kernel (fused and unfused mixed ops),
    /// and write a Chrome trace.
    Profile(profile_cmd::ProfileArgs),
    /// Compile the CUDA kernels to CUBINs (needs NVRTC, not a GPU), for a GPU machine
    /// without NVRTC: point NAS_CUDA_KERNELS there at the directory.
    CudaKernels(device::CudaKernelsArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NAS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(t) = cli.threads {
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
        Cmd::Resume { dir } => search_cmd::resume(&dir),
        Cmd::Export(a) => export_cmd::export(a),
        Cmd::Retrain(a) => retrain_cmd::retrain(a),
        Cmd::Report(a) => report_cmd::report(a),
        Cmd::BenchStrategies(a) => bench_strategies_cmd::bench_strategies(a),
        Cmd::Profile(a) => profile_cmd::run(a),
        Cmd::CudaKernels(a) => device::cuda_kernels(a),
    }
}

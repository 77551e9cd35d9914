//! `nas trial RUN --trial N`: evaluates one trial of a run, as a cluster job does. It
//! reads the run's config (evaluator, data, table) and the trial's spec
//! (`RUN/trials/N/spec.json`: architecture and seed), and writes the result atomically
//! to `RUN/trials/N/result.json` (a temporary file, flushed to disk, renamed). A trial
//! that has its result already is left as it is, so a job started twice, or rerun after
//! a requeue, changes nothing.

use crate::search_args::SearchArgs;
use crate::search_cmd::EvalInputs;
use crate::slurm::{read_result, result_path, spec_path, Spec, TrialResult};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nas_core::experiment::{write_atomic, RunDir};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct TrialArgs {
    /// The run directory.
    pub dir: PathBuf,
    /// The trial to evaluate (its spec is RUN/trials/N/spec.json).
    #[arg(long, required_unless_present = "probe")]
    pub trial: Option<usize>,
    /// Only write RUN/trials/probe-NONCE (the Slurm executor's check that the nodes see
    /// the run directory).
    #[arg(long, value_name = "NONCE", conflicts_with = "trial")]
    pub probe: Option<String>,
}

pub fn run(t: TrialArgs) -> Result<()> {
    if let Some(nonce) = &t.probe {
        if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!("--probe {nonce:?}: letters and digits only");
        }
        let p = t.dir.join("trials").join(format!("probe-{nonce}"));
        return write_atomic(&p, b"ok\n").map_err(|e| anyhow!(e));
    }
    let trial = t.trial.expect("clap requires --trial without --probe");
    let run = RunDir::open(&t.dir).map_err(|e| anyhow!(e))?;
    let a = SearchArgs::recorded(&run)?;
    let sp = spec_path(&t.dir, trial);
    let spec: Spec = serde_json::from_slice(
        &std::fs::read(&sp).with_context(|| format!("trial {trial}: {}", sp.display()))?,
    )
    .with_context(|| format!("{}: not a trial spec", sp.display()))?;
    if spec.trial != trial {
        bail!("{}: holds trial {}, not {trial}", sp.display(), spec.trial);
    }
    if read_result(&t.dir, trial, &spec.arch).is_some() {
        println!("trial {trial}: its result is there already");
        return Ok(());
    }
    fault_hooks(trial)?;
    crate::device::select(&a.device)?;
    let inputs = EvalInputs::load(&a)?;
    nas_core::space::arch::validate(
        &nas_core::space::describe(inputs.space.as_ref()),
        &spec.arch,
    )
    .map_err(|e| anyhow!("{}: {e}", sp.display()))?;
    let start = Instant::now();
    // A device failure is the trial's result (the executor fails the trial as a local
    // search would, and does not submit it again); any other error is the job's.
    let evaluated = inputs.with_evaluator(&a, |ev| {
        nas_core::device::catch(|| ev.evaluate(&spec.arch, spec.seed))
    })?;
    let (metrics, device_failure) = match evaluated {
        Ok(m) => (m.map_err(|e| anyhow!("trial {trial}: {e}"))?, None),
        Err(why) => {
            // A device that does not work after the failure may have failed the trial
            // for its own fault, not the network's: the job fails without a result, so
            // the trial is submitted again (another node, maybe), as a local search
            // leaves it to its resume. Before, the trial was journaled failed.
            if let Err(e) = crate::executor::devices_usable() {
                bail!("trial {trial}: {why}; the device does not work after it: {e}");
            }
            (nas_core::evaluate::Metrics::failed(&why), Some(why))
        }
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let result = TrialResult {
        trial,
        arch: spec.arch,
        metrics,
        seconds: start.elapsed().as_secs_f64(),
        job: env("SLURM_JOB_ID"),
        restart: env("SLURM_RESTART_COUNT").and_then(|v| v.parse().ok()),
        device_failure,
    };
    write_atomic(
        &result_path(&t.dir, trial),
        &serde_json::to_vec_pretty(&result)?,
    )
    .map_err(|e| anyhow!(e))?;
    if let Some(why) = &result.device_failure {
        bail!("trial {trial}: failed on the device: {why}");
    }
    println!(
        "trial {trial}: accuracy {:.2}% in {:.1} s",
        result.metrics.accuracy * 100.0,
        result.seconds
    );
    Ok(())
}

/// Faults for the tests of the cluster executor (no user sets these):
/// `NAS_TEST_TRIAL_DELAY_MS` waits before evaluating, so a test can requeue or kill a
/// running job; `NAS_TEST_FAIL_TRIALS=3,5` makes those trials fail every time.
fn fault_hooks(trial: usize) -> Result<()> {
    if let Some(ms) = std::env::var("NAS_TEST_TRIAL_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let failing = std::env::var("NAS_TEST_FAIL_TRIALS").unwrap_or_default();
    if failing.split(',').any(|t| t.trim() == trial.to_string()) {
        bail!("trial {trial}: failed on purpose (NAS_TEST_FAIL_TRIALS)");
    }
    Ok(())
}

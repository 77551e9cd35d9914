//! Where a multi-trial search's trials run. The strategy loop asks a batch of
//! architectures, hands it to an [`Executor`], and journals what comes back in the order
//! it asked, so the loop, the journal and resume do not care where a trial ran: in this
//! process ([`Local`], `--parallel` threads) or as cluster jobs ([`crate::slurm`]).

use crate::search_args::trial_seed;
use anyhow::{anyhow, Result};
use nas_core::evaluate::{Evaluator, Metrics};
use nas_core::space::Architecture;
use std::time::Instant;

/// What became of one trial.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Its metrics and the seconds its evaluation took.
    Done(Metrics, f64),
    /// It produced no result however often it was tried; why. Journaled as failed
    /// ([`Metrics::failed`]) and told to the strategy as such.
    Failed(String),
    /// Its evaluation failed on the device (on wgpu a buffer past the adapter's limits
    /// or its memory; on CUDA an allocation, copy or launch that failed), which still
    /// works; why. A trial failed like [`Outcome::Failed`] where other
    /// trials of the search have finished on this device (this architecture is too large
    /// for it); where none has, the search ends with the error instead (a setting such as
    /// the batch size is the cause, and every trial would fail the same way).
    DeviceFailed(String),
    /// Its evaluation failed on a device that no longer works after it (or another
    /// trial's failure did; why): not journaled, the search ends before it, and a resume
    /// (a new process, which opens the device afresh) evaluates it again.
    Interrupted(String),
}

impl Outcome {
    /// The first of `outcomes` that failed on the device: its place and why.
    pub fn first_device_failure(outcomes: &[Outcome]) -> Option<(usize, &str)> {
        outcomes.iter().enumerate().find_map(|(k, o)| match o {
            Outcome::DeviceFailed(why) => Some((k, why.as_str())),
            _ => None,
        })
    }

    /// Where a batch's journaling stops, and the error the search then ends with: at
    /// the first trial a broken device interrupted, or at the first device failure when
    /// no trial of the search has finished (`finished`: the journal holds one, or this
    /// batch does), since a setting rather than the architecture is then the likely
    /// cause. None: the whole batch is journaled (device failures as failed trials).
    /// `first` is the trial number of `outcomes[0]`. The trials before the stop are
    /// journaled; those after it that finished are held ([`RunDir::hold`]), and the
    /// resume journals each in its place as it finished where it asks the same
    /// architecture for that trial number (a restored strategy asks the same batch),
    /// else evaluates it again. (Journaling them at once, ahead of the stopped one, would
    /// give them other numbers than the ones they ran with, and a trial's number gives
    /// its seed.)
    ///
    /// [`RunDir::hold`]: nas_core::experiment::RunDir::hold
    pub fn stop(outcomes: &[Outcome], first: usize, finished: bool) -> Option<(usize, String)> {
        let interrupted = outcomes.iter().enumerate().find_map(|(k, o)| match o {
            Outcome::Interrupted(why) => Some((k, why)),
            _ => None,
        });
        if let Some((k, why)) = interrupted {
            let after = outcomes[k + 1..]
                .iter()
                .filter(|o| matches!(o, Outcome::Done(..)))
                .count();
            let kept = match after {
                0 => String::new(),
                1 => ", and the trial after it that finished is kept".into(),
                n => format!(", and the {n} trials after it that finished are kept"),
            };
            return Some((
                k,
                format!(
                    "trial {}: {why}\nThe trials before it are journaled{kept}; `nas resume` \
                     evaluates it and the rest of its batch",
                    first + k
                ),
            ));
        }
        let finished = finished || outcomes.iter().any(|o| matches!(o, Outcome::Done(..)));
        match Outcome::first_device_failure(outcomes) {
            Some((k, why)) if !finished => Some((
                k,
                format!(
                    "trial {}: {why}\nNo trial of this search has finished on this device, so \
                     a setting (the batch size, the image size) or a layer that every \
                     architecture of the space has, rather than this architecture alone, is \
                     the likely cause: the search stops here",
                    first + k
                ),
            )),
            _ => None,
        }
    }
}

/// Whether the devices still work after a failure (`nas_core::device::usable`).
/// `NAS_TEST_DEVICE_BREAKS` (the tests', no user sets it) makes them not.
pub fn devices_usable() -> Result<(), String> {
    if std::env::var_os("NAS_TEST_DEVICE_BREAKS").is_some() {
        return Err("the device broke (NAS_TEST_DEVICE_BREAKS)".into());
    }
    nas_core::device::usable()
}

/// Runs trials. `first` is the trial number of `archs[0]`; the others follow in order.
pub trait Executor {
    /// Evaluates every architecture of a batch and returns their outcomes in order. An
    /// error ends the search (it resumes from its journal).
    fn evaluate(&mut self, archs: &[Architecture], first: usize) -> Result<Vec<Outcome>>;
}

/// Trials in this process, one thread each.
pub struct Local<'a> {
    pub evaluator: &'a dyn Evaluator,
    /// The run's seed, from which each trial's own is derived.
    pub seed: u64,
}

impl Executor for Local<'_> {
    fn evaluate(&mut self, archs: &[Architecture], first: usize) -> Result<Vec<Outcome>> {
        let mut outcomes = evaluate_all(self.evaluator, archs, self.seed, first)
            .into_iter()
            .enumerate()
            .map(|(k, r)| r.map_err(|e| anyhow!("trial {}: {e}", first + k)))
            .collect::<Result<Vec<_>>>()?;
        if Outcome::first_device_failure(&outcomes).is_some() {
            // A device whose stream broke fails every later trial: the search ends (a new
            // process opens the device afresh when it resumes), and the trials it failed
            // may not be too large for it at all.
            if let Err(e) = devices_usable() {
                for o in &mut outcomes {
                    if let Outcome::DeviceFailed(why) = o {
                        let why = format!("{why}; the device does not work after it: {e}");
                        *o = Outcome::Interrupted(why);
                    }
                }
            }
        }
        Ok(outcomes)
    }
}

/// Evaluates architectures concurrently, one thread each. A device failure (which
/// unwinds out of the pass that met it) is that trial's outcome; an evaluator's error is
/// the search's; any other panic stays one.
fn evaluate_all(
    ev: &dyn Evaluator,
    archs: &[Architecture],
    seed: u64,
    first: usize,
) -> Vec<Result<Outcome, String>> {
    // Each trial is a span of the search's, on whichever thread evaluates it.
    let search = tracing::Span::current();
    let one = |k: usize| {
        let _span = tracing::debug_span!(parent: &search, "trial", n = first + k).entered();
        let t = Instant::now();
        match nas_core::device::catch(|| ev.evaluate(&archs[k], trial_seed(seed, first + k))) {
            Ok(r) => r.map(|m| Outcome::Done(m, t.elapsed().as_secs_f64())),
            Err(msg) => Ok(Outcome::DeviceFailed(msg)),
        }
    };
    if archs.len() == 1 {
        return vec![one(0)];
    }
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..archs.len()).map(|k| s.spawn(move || one(k))).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("evaluation panicked".into()))
            })
            .collect()
    })
}

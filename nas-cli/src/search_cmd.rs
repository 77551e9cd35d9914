//! `nas search` and `nas resume`: the host's experiment loop. A strategy plugin proposes
//! architectures, an evaluator scores them (several in flight at once), and every trial
//! is journaled before the strategy hears of it, so a killed run resumes exactly.

use crate::executor::{Executor, Local, Outcome};
use crate::host::{discover, search_dirs, Discovery, LoadedStrategy, Plugin};
use crate::search_args::{
    best_of, load_train_data, run_limits, search_input, SearchArgs, TrainData,
};
use crate::state_saves::StateSaves;
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use nas_core::evaluate::{Evaluator, Metrics, Nb201Table, TrainEvaluator};
use nas_core::experiment::{self, write_atomic, Leaderboard, Limits, RunDir, TrialRecord};
use nas_core::space::{arch, describe, Architecture, Choice, Space};
use nas_strategies::Setup;
use std::path::{Path, PathBuf};

pub fn run(a: SearchArgs) -> Result<()> {
    let _span = tracing::info_span!("search", strategy = %a.strategy, budget = a.budget).entered();
    // A directory chosen for the run (no --out) that another search takes first is
    // passed over for the next free name.
    let chosen = a.out.is_none();
    let mut dir = a.out_dir();
    let mut a = a;
    // Pin the directory in the config, so `nas resume` and the run agree on it.
    a.out = Some(dir.clone());
    // The data options are checked as given (so errors show the values given), then
    // every path it reads is made absolute, so the run works from any directory.
    a.dataset.check()?;
    a.pin_paths();
    // Everything the search runs on is checked before its directory is made, so a
    // mistake leaves no run behind for `nas resume` to replay.
    let found = discover(&search_dirs(&a.plugin_dir));
    let job = prepare(&a, &found)?;
    a.plugin_version = found.get(&a.strategy).ok().map(|p| p.version.clone());
    let mut run = loop {
        // (Absolute, as pin_paths made it: the run works from any directory.)
        a.out = Some(crate::data_paths::absolute(&dir));
        let config = serde_json::to_value(&a)?;
        match RunDir::create(&dir, &config) {
            Ok(run) => break run,
            // Two searches started at once in one directory both chose runs/X; the
            // second refused by the first's lock, or by its run when the first has
            // already ended (it was an error, where the README promises runs/X-2).
            Err(e)
                if chosen
                    && [
                        "another nas process",
                        "already holds a run",
                        "is not a run but",
                    ]
                    .iter()
                    .any(|m| e.contains(m)) =>
            {
                let mut next = a.clone();
                next.out = None;
                dir = next.out_dir();
            }
            Err(e) => bail!(e),
        }
    };
    println!("run directory: {}", dir.display());
    job.stop_on_interrupt(&a, &dir)?;
    let result = crate::search_args::record_setup(&run, &a)
        .and_then(|_| save_space(&run, &job.choices()))
        .and_then(|_| job.drive(&a, &mut run));
    let result = result.and_then(|_| mark_ended(&run));
    crate::report_html::finish(&run, &a, result.is_ok());
    if result.is_err() && run.discard_if_empty() {
        tracing::info!(
            "the search failed before its first trial; {} holds no run",
            dir.display()
        );
    }
    result
}

/// `here`: run the search in this process whatever its executor (what the cluster job
/// of a one-shot search runs).
/// `device`: where the rest of the search runs (`--device`), when not where it ran.
/// `plugin_dirs`: where to look for the strategy's plugin (`--plugin-dir`), when not
/// where the run recorded.
pub fn resume(dir: &Path, device: Option<&str>, plugin_dirs: &[PathBuf], here: bool) -> Result<()> {
    let mut run = RunDir::open_to_write(dir).map_err(|e| anyhow!(e))?;
    if let Some(msg) = run.repair_journal().map_err(|e| anyhow!(e))? {
        println!("{msg}");
    }
    let mut a = SearchArgs::recorded(&run)?;
    // (Its errors name config.json, or setup.json where that is what is wrong.)
    crate::search_args::check_setup(&run, &a)?;
    let moved = match device {
        Some(d) if d != a.device => {
            // Opened here, so a device that does not work is the flag's error, not the
            // recorded options'.
            crate::device::select(d)?;
            Some(std::mem::replace(&mut a.device, d.to_string()))
        }
        _ => None,
    };
    let plugins_moved = !plugin_dirs.is_empty();
    if plugins_moved {
        a.plugin_dir = plugin_dirs
            .iter()
            .map(|d| crate::data_paths::absolute(d))
            .collect();
    }
    if here {
        a.executor = "local".into();
        a.slurm = None;
    }
    let _span = tracing::info_span!("search", strategy = %a.strategy, budget = a.budget).entered();
    let found = discover(&search_dirs(&a.plugin_dir));
    if plugins_moved {
        // The flag's directories, not the run's record, are what failed.
        found
            .get(&a.strategy)
            .map_err(|e| anyhow!("--plugin-dir: {e}"))?;
    }
    let job = prepare(&a, &found).with_context(|| crate::search_args::recorded_context(&run))?;
    if let (Some(then), Ok(now)) = (&a.plugin_version, found.get(&a.strategy)) {
        if *then != now.version {
            eprintln!(
                "warning: `{}` {then} started this run and {} is resuming it: where the \
                 two search differently, the resumed search is not the one the run began \
                 (the journal's trials are kept)",
                a.strategy, now.version
            );
        }
    }
    if moved.is_some() || plugins_moved {
        // Only these change in the record (`--here` is this process's alone).
        let mut recorded = run.config().map_err(|e| anyhow!(e))?;
        if let Some(before) = &moved {
            recorded["device"] = serde_json::Value::from(a.device.clone());
            println!(
                "the rest of the search runs on {} (before: {before}); the run records it",
                a.device
            );
        }
        if plugins_moved {
            recorded["plugin_dir"] = serde_json::to_value(&a.plugin_dir)?;
            println!(
                "plugins are looked for in {} (then NAS_PLUGIN_PATH and beside nas); the run \
                 records it",
                a.plugin_dir
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        run.set_config(&recorded).map_err(|e| anyhow!(e))?;
    }
    // A run made before runs recorded their space, or whose record is damaged: written
    // (again) from the run's options.
    if !matches!(crate::search_args::recorded_space(&run), Ok(Some(_))) {
        save_space(&run, &job.choices())?;
    }
    job.stop_on_interrupt(&a, dir)?;
    match std::fs::remove_file(run.ended_path()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            bail!("{}: {e}", run.ended_path().display())
        }
        _ => {}
    }
    let result = job.drive(&a, &mut run).and_then(|_| mark_ended(&run));
    crate::report_html::finish(&run, &a, result.is_ok());
    result
}

/// Marks the run as ended of itself ([`RunDir::ended_path`]).
fn mark_ended(run: &RunDir) -> Result<()> {
    experiment::write_atomic(&run.ended_path(), b"ended\n").map_err(|e| anyhow!(e))
}

/// Records the choices of the run's space (see [`RunDir::space_path`]).
fn save_space(run: &RunDir, choices: &[Choice]) -> Result<()> {
    experiment::write_atomic(&run.space_path(), &serde_json::to_vec_pretty(choices)?)
        .map_err(|e| anyhow!(e))
}

/// A search ready to run: its strategy found and loaded, its space, data or table and
/// config read and checked.
enum Job<'p> {
    AskTell(Box<AskTell>),
    OneShot(&'p Plugin, Box<crate::oneshot_cmd::Inputs>),
    /// A one-shot search run as one cluster job.
    OneShotJob(crate::slurm::SlurmConfig, Vec<Choice>),
}

/// What a multi-trial search runs on.
struct AskTell {
    inputs: EvalInputs,
    choices: Vec<Choice>,
    strategy: LoadedStrategy,
    limits: Limits,
}

/// What a search's trials are scored with: the table, or the training data and the
/// space (resolved for their images). `nas trial` loads the same from a run's config.
pub(crate) struct EvalInputs {
    data: Option<TrainData>,
    table: Option<Nb201Table>,
    pub space: Box<dyn Space>,
}

impl EvalInputs {
    pub(crate) fn load(a: &SearchArgs) -> Result<EvalInputs> {
        let table_eval = a.uses_table()?;
        let data = if table_eval {
            None
        } else {
            Some(load_train_data(a)?)
        };
        let space = a
            .space
            .resolve_for_batch(search_input(table_eval, data.as_ref()), a.batch)?;
        let table = if table_eval {
            let mut t = Nb201Table::load(&a.table_path()?).map_err(|e| anyhow!("--table: {e}"))?;
            t.count_macs = true;
            Some(t)
        } else {
            None
        };
        Ok(EvalInputs { data, table, space })
    }

    /// Runs `f` with the search's evaluator.
    pub(crate) fn with_evaluator<R>(
        &self,
        a: &SearchArgs,
        f: impl FnOnce(&dyn Evaluator) -> R,
    ) -> Result<R> {
        let device = crate::device::parse(&a.device)?;
        if let Some(t) = &self.table {
            return Ok(f(t));
        }
        let d = self
            .data
            .as_ref()
            .expect("a search without a table has data");
        Ok(f(&TrainEvaluator {
            space: self.space.as_ref(),
            device,
            train: &d.train,
            val: &d.val,
            epochs: a.epochs,
            batch_size: a.batch,
            lr: 0.05,
        }))
    }
}

/// Checks and loads everything a search needs, writing nothing.
fn prepare<'p>(a: &SearchArgs, found: &'p Discovery) -> Result<Job<'p>> {
    crate::at_least_one(&[
        ("--budget", a.budget),
        ("--parallel", a.parallel),
        ("--batch", a.batch),
        ("--epochs", a.epochs),
    ])?;
    crate::device::select(&a.device)?;
    // The data options, checked even where the search reads no data (a table search):
    // its run retrains on them.
    a.dataset.check()?;
    let plugin = found.get(&a.strategy).map_err(|e| anyhow!(e))?;
    if plugin.kind == nas_strategies::abi::KIND_ASK_TELL && a.uses_table()? {
        if let Some(w) = table_search_leaves(a) {
            eprintln!("warning: {w}");
        }
    }
    let limits = run_limits(a)?;
    let executor = crate::slurm::ExecutorKind::from_args(a)?;
    if let Some(from) = &a.init_from {
        if plugin.kind != nas_strategies::abi::KIND_ONE_SHOT {
            bail!(
                "--init-from {}: `{}` trains no supernet (only one-shot strategies start from \
                 another run's weights)",
                from.display(),
                a.strategy
            );
        }
        if !from.exists() {
            bail!("--init-from {}: no such file or directory", from.display());
        }
    }
    if plugin.kind == nas_strategies::abi::KIND_ONE_SHOT {
        let inputs = crate::oneshot_cmd::prepare(a)?;
        if let crate::slurm::ExecutorKind::Slurm(cfg) = executor {
            return Ok(Job::OneShotJob(cfg, inputs.choices()));
        }
        return Ok(Job::OneShot(plugin, Box::new(inputs)));
    }
    let inputs = EvalInputs::load(a)?;
    let choices = describe(inputs.space.as_ref());
    let setup = Setup {
        space: choices.clone(),
        config: a.strategy_config()?,
        seed: a.seed,
        budget: a.budget,
    };
    let strategy = plugin.create(&setup).map_err(|e| anyhow!(e))?;
    Ok(Job::AskTell(Box::new(AskTell {
        inputs,
        choices,
        strategy,
        limits,
    })))
}

impl Job<'_> {
    /// The choices of the space the search runs on.
    fn choices(&self) -> Vec<Choice> {
        match self {
            Job::AskTell(j) => j.choices.clone(),
            Job::OneShot(_, inputs) => inputs.choices(),
            Job::OneShotJob(_, choices) => choices.clone(),
        }
    }

    /// Makes Ctrl-C (or SIGTERM) stop a search that runs in this process with its page
    /// marked stopped and a word on how to resume (`interrupt`); a cluster search
    /// catches them itself, to cancel its jobs.
    fn stop_on_interrupt(&self, a: &SearchArgs, dir: &Path) -> Result<()> {
        let local = match self {
            Job::AskTell(_) => a.executor == "local",
            Job::OneShot(..) => true,
            Job::OneShotJob(..) => false,
        };
        if local {
            crate::interrupt::stop_search_on_interrupt(dir.to_path_buf(), a.clone());
        }
        Ok(())
    }

    fn drive(self, a: &SearchArgs, run: &mut RunDir) -> Result<()> {
        match self {
            Job::AskTell(j) => j.drive(a, run),
            Job::OneShot(plugin, inputs) => crate::oneshot_cmd::drive(a, run, plugin, *inputs),
            Job::OneShotJob(cfg, _) => {
                // The job writes the run now; this process only watches it.
                run.release();
                crate::slurm::one_shot(cfg, &run.path, a.seed)
            }
        }
    }
}

impl AskTell {
    fn drive(self, a: &SearchArgs, run: &RunDir) -> Result<()> {
        let AskTell {
            inputs,
            choices,
            strategy,
            limits,
        } = self;
        inputs.with_evaluator(a, |evaluator| {
            let mut executor: Box<dyn Executor + '_> =
                match crate::slurm::ExecutorKind::from_args(a)? {
                    crate::slurm::ExecutorKind::Local => Box::new(Local {
                        evaluator,
                        seed: a.seed,
                    }),
                    crate::slurm::ExecutorKind::Slurm(cfg) => {
                        Box::new(crate::slurm::start(cfg, &run.path, a.seed)?)
                    }
                };
            drive_loop(
                a,
                run,
                &choices,
                strategy,
                &limits,
                evaluator,
                executor.as_mut(),
                inputs.space.name(),
            )
        })?
    }
}

/// The strategy loop: ask a batch, run it on the executor, journal and tell in order.
#[allow(clippy::too_many_arguments)]
fn drive_loop(
    a: &SearchArgs,
    run: &RunDir,
    choices: &[Choice],
    mut strategy: LoadedStrategy,
    limits: &Limits,
    evaluator: &dyn Evaluator,
    executor: &mut dyn Executor,
    space_name: &str,
) -> Result<()> {
    let mut journal = run.journal().map_err(|e| anyhow!(e))?;
    crate::search_args::check_journal(
        run,
        choices,
        &mut journal,
        &format!("the space {}", a.space.display()),
    )?;
    let mut in_flight = vec![];
    if !journal.is_empty() || run.load_state().map_err(|e| anyhow!(e))?.is_some() {
        in_flight = restore(&mut strategy, a, run, choices, &journal, evaluator)?;
        println!(
            "resumed: {} already journaled",
            crate::count(journal.len(), "trial")
        );
    }
    let bar = ProgressBar::new(a.budget as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} trials, {msg} eta {eta}")?
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} on {}", a.strategy, space_name));
    bar.set_position(journal.len() as u64);
    // Each trial is ranked once as it comes in, and the state saved when due (see
    // `state_saves`): nothing in the loop re-reads the whole journal.
    let mut board = Leaderboard::new(limits.clone());
    for r in &journal {
        board.add(r);
    }
    // Whether a journaled trial finished (device failures end a search that has none).
    let mut finished = journal.iter().any(|r| !r.metrics.is_failed());
    let mut saves = StateSaves::default();
    let (mut journal_bytes, mut best_written) = (0usize, None);
    let best_msg = |j: &[TrialRecord], board: &Leaderboard| match board.best() {
        Some(b) => format!("best {:.2}%", b.metrics.accuracy * 100.0),
        None if j.is_empty() => "no trial yet".into(),
        None if limits.is_empty() => "no trial succeeded yet".into(),
        None => "no trial within the limits yet".into(),
    };
    bar.set_message(best_msg(&journal, &board));
    let mut page = crate::report_html::Live::new();
    // Trials an interrupted batch finished after the trial it stopped at, for the same
    // batch asked again now.
    let mut held = run.held().unwrap_or_else(|e| {
        tracing::warn!("{e}; its trials are evaluated again");
        vec![]
    });
    let mut holding = run.held_path().exists();
    while journal.len() < a.budget {
        // A resumed run first evaluates what its last batch asked and did not journal.
        let asked = if in_flight.is_empty() {
            let want = a.parallel.min(a.budget - journal.len());
            ask_batch(&mut strategy, a, choices, want, evaluator)?
        } else {
            std::mem::take(&mut in_flight)
        };
        if asked.is_empty() {
            crate::oneshot_cmd::say(&bar, "the strategy has nothing more to propose".into());
            break;
        }
        let first = journal.len();
        let outcomes = evaluate_unheld(executor, &asked, first, &std::mem::take(&mut held))?;
        let stop = Outcome::stop(&outcomes, first, finished);
        let journaled = stop.as_ref().map_or(outcomes.len(), |(k, _)| *k);
        if stop.is_some() {
            // Those after the stop that finished are kept for the resume (before the
            // trials ahead of them are journaled: killed in between, the resume
            // evaluates those and still finds these).
            let keep: Vec<TrialRecord> = (asked.iter().zip(&outcomes).enumerate())
                .skip(journaled)
                .filter_map(|(k, (arch, out))| match out {
                    Outcome::Done(m, s) => Some(TrialRecord {
                        trial: first + k,
                        arch: arch.clone(),
                        metrics: m.clone(),
                        seconds: *s,
                    }),
                    _ => None,
                })
                .collect();
            run.hold(&keep).map_err(|e| anyhow!(e))?;
            holding = !keep.is_empty();
        }
        let whole = stop.is_none();
        for (arch, out) in asked.into_iter().zip(outcomes).take(journaled) {
            let (metrics, seconds) = match out {
                Outcome::Done(m, s) => (m, s),
                Outcome::Interrupted(_) => unreachable!("the batch stops before it"),
                Outcome::Failed(why) | Outcome::DeviceFailed(why) => {
                    let msg = format!("trial {}: failed: {why}", journal.len());
                    bar.suspend(|| tracing::warn!("{msg}"));
                    (Metrics::failed(&why), 0.0)
                }
            };
            let rec = TrialRecord {
                trial: journal.len(),
                arch,
                metrics,
                seconds,
            };
            // Journal first: a trial is never lost once evaluated, and never re-run.
            let n = run.append(&rec).map_err(|e| anyhow!(e))?;
            journal_bytes += n;
            saves.journaled(n);
            strategy
                .tell(&rec.arch, &rec.metrics)
                .map_err(|e| anyhow!(e))?;
            board.add(&rec);
            finished |= !rec.metrics.is_failed();
            journal.push(rec);
        }
        if whole && holding {
            // A batch journaled whole holds nothing more (removed only now: killed while
            // journaling, the resume still finds what was held; a record behind the
            // journal's end never matches a trial again).
            run.hold(&[]).map_err(|e| anyhow!(e))?;
            holding = false;
        }
        if let Some((_, why)) = stop {
            bar.finish_and_clear();
            write_best(run, &board, &mut best_written, evaluator)?;
            bail!(why);
        }
        saves.after_batch(&mut strategy, run, journal.len())?;
        write_best(run, &board, &mut best_written, evaluator)?;
        page.update(run, a, &journal);
        bar.set_position(journal.len() as u64);
        bar.set_message(best_msg(&journal, &board));
        // Without a terminal to draw the bar on, a plain line every tenth of the budget.
        let tenth = (a.budget / 10).max(1);
        if bar.is_hidden() && journal.len() < a.budget && journal.len() / tenth > first / tenth {
            println!(
                "{}/{} trials, {}",
                journal.len(),
                a.budget,
                best_msg(&journal, &board)
            );
        }
    }
    bar.finish_and_clear();
    saves.at_end(&mut strategy, run, journal.len())?;
    write_best(run, &board, &mut best_written, evaluator)?;
    tracing::debug!(
        trials = journal.len(),
        journal_bytes,
        state_saves = saves.saves,
        state_saves_on_time = saves.on_time,
        state_bytes = saves.bytes,
        trials_ranked = experiment::trials_ranked(),
        "search wrote its run"
    );
    summarize(&journal, limits, evaluator, run)
}

/// The outcomes of the batch `asked` (trial numbers from `first`): a trial `held` for
/// it (the same number and architecture, finished when an earlier run's batch stopped
/// before it) as it finished then; the others on `executor`, in runs of consecutive
/// trials. Once a run meets a broken device, the trials after it are interrupted
/// unevaluated, as a resume evaluates them anyway.
fn evaluate_unheld(
    executor: &mut dyn Executor,
    asked: &[Architecture],
    first: usize,
    held: &[TrialRecord],
) -> Result<Vec<Outcome>> {
    let mut out: Vec<Option<Outcome>> = (0..asked.len())
        .map(|k| {
            let r = held
                .iter()
                .find(|r| r.trial == first + k && r.arch == asked[k])?;
            Some(Outcome::Done(r.metrics.clone(), r.seconds))
        })
        .collect();
    if out.iter().all(Option::is_none) {
        return executor.evaluate(asked, first);
    }
    let mut k = 0;
    while k < asked.len() {
        if out[k].is_some() {
            k += 1;
            continue;
        }
        let end = (k..asked.len())
            .find(|&e| out[e].is_some())
            .unwrap_or(asked.len());
        let got = executor.evaluate(&asked[k..end], first + k)?;
        let broke = got.iter().any(|o| matches!(o, Outcome::Interrupted(_)));
        for (slot, o) in out[k..end].iter_mut().zip(got) {
            *slot = Some(o);
        }
        if broke {
            for slot in out.iter_mut().skip(end).filter(|o| o.is_none()) {
                *slot = Some(Outcome::Interrupted(
                    "not evaluated: the device broke before it".into(),
                ));
            }
            break;
        }
        k = end;
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every trial has an outcome"))
        .collect())
}

/// Asks the strategy for up to `want` architectures (fewer when it runs out), each
/// checked against the space; the evaluator's cost model is open to it while it asks.
fn ask_batch(
    s: &mut LoadedStrategy,
    a: &SearchArgs,
    choices: &[Choice],
    want: usize,
    evaluator: &dyn Evaluator,
) -> Result<Vec<Architecture>> {
    let mut asked = vec![];
    // A strategy that costs many architectures before it asks (DPP-Net under tight
    // limits) says so every half minute, rather than leave the terminal silent.
    let start = std::cell::Cell::new(std::time::Instant::now());
    let (costed, said) = (std::cell::Cell::new(0usize), std::cell::Cell::new(0u64));
    let costs = |arch: &Architecture| {
        arch::validate(choices, arch)
            .map_err(|e| format!("costs of an invalid architecture: {e}"))?;
        costed.set(costed.get() + 1);
        let half_minutes = start.get().elapsed().as_secs() / 30;
        if half_minutes > said.get() {
            said.set(half_minutes);
            println!(
                "strategy `{}` has costed {} before its next ask ({} s)",
                a.strategy,
                crate::count(costed.get(), "architecture"),
                start.get().elapsed().as_secs()
            );
        }
        evaluator.costs(arch)
    };
    while asked.len() < want {
        let Some(x) = s.ask_costed(&costs).map_err(|e| anyhow!(e))? else {
            break;
        };
        start.set(std::time::Instant::now());
        costed.set(0);
        said.set(0);
        arch::validate(choices, &x).map_err(|e| {
            anyhow!(
                "strategy `{}` proposed an invalid architecture: {e}",
                a.strategy
            )
        })?;
        // Journaled as the network it builds: without the choices it does not make (an
        // unpicked edge's op, a repeat's unbuilt blocks), so one network is one entry.
        asked.push(arch::made_only(choices, x));
    }
    Ok(asked)
}

/// Brings a fresh strategy to where the journal ends, by the very calls the interrupted
/// run made: its saved state, then, batch by batch as the loop asked them, the asks of
/// the trials journaled after that state, each told its journaled result. Returns the
/// architectures the last of those batches asked that the journal does not hold yet
/// (the run evaluates them next), so the resumed run proposes what the uninterrupted
/// one would have.
fn restore(
    s: &mut LoadedStrategy,
    a: &SearchArgs,
    run: &RunDir,
    choices: &[Choice],
    journal: &[TrialRecord],
    evaluator: &dyn Evaluator,
) -> Result<Vec<Architecture>> {
    // What to do about a state file that does not load: without it the strategy starts
    // fresh and is told the journal from its first trial.
    let recover = || {
        format!(
            "(remove {} to resume from the journal alone: the strategy is then told every \
             journaled trial again)",
            run.state_path().display()
        )
    };
    let told = match run.load_state().map_err(|e| anyhow!("{e} {}", recover()))? {
        // A state saved after trials the journal no longer holds (its last line was cut
        // by a kill and moved aside): the strategy starts fresh and is told the journal
        // from its first trial, which brings it to where the journal ends all the same.
        // Before, the resume refused, on every try.
        Some((_, Some(by), _)) if by.replace('-', "_") != a.strategy.replace('-', "_") => {
            bail!(
                "{}: saved by strategy `{by}`, but the run's config.json names `{}`: a run \
                 keeps the strategy it began with (set `strategy` back to `{by}`, or start \
                 a new run)",
                run.state_path().display(),
                a.strategy
            );
        }
        Some((told, _, _)) if told > journal.len() => {
            println!(
                "{}: the strategy state says {}, the journal {} has {}: replaying the \
                 journal from its start instead",
                run.state_path().display(),
                crate::count(told, "trial"),
                run.journal_path().display(),
                journal.len()
            );
            0
        }
        Some((told, _, state)) => {
            s.load(&state).map_err(|e| {
                anyhow!(
                    "{}: the strategy's saved state does not load: {e} {}",
                    run.state_path().display(),
                    recover()
                )
            })?;
            told
        }
        None => 0,
    };
    let mut at = told;
    let mut differs = None;
    let mut in_flight = vec![];
    while at < journal.len() {
        let want = a.parallel.min(a.budget.saturating_sub(at)).max(1);
        let mut asked = ask_batch(s, a, choices, want, evaluator)?;
        // A strategy that has run out asked nothing: it is told the rest as they are.
        let n = match asked.len() {
            0 => journal.len() - at,
            k => k.min(journal.len() - at),
        };
        for (k, r) in journal[at..at + n].iter().enumerate() {
            if asked.get(k) != Some(&r.arch) {
                differs.get_or_insert(r.trial);
            }
            s.tell(&r.arch, &r.metrics).map_err(|e| anyhow!(e))?;
        }
        at += n;
        in_flight = asked.split_off(n.min(asked.len()));
    }
    if let Some(t) = differs {
        tracing::warn!(
            "the restored strategy `{}` proposed another architecture than trial {t} of {} \
             (its saved state and seed should determine its asks); it was told the \
             journaled trials, and the run goes on from them",
            a.strategy,
            run.journal_path().display()
        );
    }
    Ok(in_flight)
}

/// Writes `best.json` when the best differs from the one `written` last (another
/// architecture, or more trials of it).
fn write_best(
    run: &RunDir,
    board: &Leaderboard,
    written: &mut Option<(usize, usize)>,
    ev: &dyn Evaluator,
) -> Result<()> {
    if let Some(b) = board.best() {
        let key = Some((b.trials[0], b.trials.len()));
        if *written == key {
            return Ok(());
        }
        *written = key;
        let v = serde_json::json!({
            "trial": b.trials[0],
            "trials": b.trials,
            "arch": b.arch,
            "metrics": b.metrics,
            "final_accuracy": ev.final_accuracy(&b.arch),
        });
        write_atomic(&run.best_path(), &serde_json::to_vec_pretty(&v)?).map_err(|e| anyhow!(e))?;
    }
    Ok(())
}

/// Prints what the search found. A search whose every trial failed is an error (its
/// run holds nothing to return, and a script must see that it did not work); one whose
/// trials are over the limits returns nothing, and says so, but ran as asked.
fn summarize(j: &[TrialRecord], limits: &Limits, ev: &dyn Evaluator, run: &RunDir) -> Result<()> {
    if j.is_empty() {
        println!("no trials");
        return Ok(());
    }
    let b = match best_of(j, limits) {
        Ok(b) => b,
        Err(e) if j.iter().all(|t| t.metrics.is_failed()) => {
            // The search itself ran to its end: the run says so (it is not one to
            // resume), and the command fails.
            mark_ended(run)?;
            bail!("{e}; no architecture to return")
        }
        Err(e) => {
            println!("{e}; no architecture to return");
            return Ok(());
        }
    };
    if let Some(what) = crate::search_args::left_out(j, limits) {
        let why = match j.iter().any(|t| t.metrics.is_failed()) {
            true => " (`nas report` says why each failed)",
            false => "",
        };
        println!("{what}; left out of the ranking{why}");
    }
    let within = if limits.is_empty() {
        String::new()
    } else {
        format!(" within the limits ({limits})")
    };
    println!(
        "{}; best{within} is trial {} ({} of it): observed accuracy {:.2}%",
        crate::count(j.len(), "trial"),
        b.trials[0],
        crate::count(b.trials.len(), "trial"),
        b.metrics.accuracy * 100.0
    );
    if let Some(f) = ev.final_accuracy(&b.arch) {
        println!(
            "its benchmark accuracy (mean over seeds): {:.2}%",
            f * 100.0
        );
    }
    println!(
        "architecture: {}",
        serde_json::to_string(&b.arch).unwrap_or_default()
    );
    println!("written to {}", run.best_path().display());
    Ok(())
}

/// What a table search does not use of the options given: it looks accuracies up and
/// trains nothing, so `--limit` does nothing, and the data options only say what
/// `nas retrain` trains on. `None` when none of them was given.
pub fn table_search_leaves(a: &SearchArgs) -> Option<String> {
    let d = &a.dataset;
    // (`--data` is not among them: the bundled data's path stands in it when none is
    // given.)
    let data: Vec<&str> = [
        ("--train-images", d.train_images.is_some()),
        ("--classes", d.classes.is_some()),
        ("--device", a.device != "cpu"),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect();
    // Training options the table search and its retraining do not read (given, or at
    // least set off their defaults: an option given its default changes nothing).
    let mut unused: Vec<String> = [
        ("--limit", a.limit.map(|n| n.to_string())),
        ("--epochs", (a.epochs != 1).then(|| a.epochs.to_string())),
        ("--batch", (a.batch != 64).then(|| a.batch.to_string())),
        ("--val", (a.val != 10_000).then(|| a.val.to_string())),
    ]
    .into_iter()
    .filter_map(|(flag, v)| Some(format!("{flag} {}", v?)))
    .collect();
    let mut parts = vec![];
    if let Some(last) = unused.pop() {
        parts.push(match unused.is_empty() {
            true => format!("{last} is not used"),
            false => format!("{} and {last} are not used", unused.join(", ")),
        });
    }
    if !data.is_empty() {
        parts.push(format!(
            "{} only say{} what `nas retrain` trains on",
            data.join(", "),
            if data.len() == 1 { "s" } else { "" }
        ));
    }
    // The table's cells were trained at C = 16, N = 5, whatever the run's network.
    let size: Vec<String> = [("--channels", a.space.channels), ("--cells", a.space.cells)]
        .into_iter()
        .filter_map(|(flag, v)| Some(format!("{flag} {}", v?)))
        .collect();
    if !size.is_empty() {
        parts.push(format!(
            "its accuracies and costs are of NAS-Bench-201's networks (C 16, 5 cells a \
             stage), so {} only size{} what `nas retrain` builds",
            size.join(" and "),
            if size.len() == 1 { "s" } else { "" }
        ));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "the table evaluator looks accuracies up in NAS-Bench-201 (CIFAR-10) and \
             trains nothing: {} (--evaluator train trains each trial)",
            parts.join("; ")
        )
    })
}

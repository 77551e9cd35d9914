//! What `nas search` and the commands on finished runs share: the search's arguments
//! (as the run's config.json keeps them), its training data, its trials' seeds, and what
//! a run returns under its hard limits.

use crate::data_args::DataArgs;
use crate::data_paths::{absolute, find, resolve, Bundled};
use crate::space_args::SpaceArgs;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nas_core::data::Dataset;
use nas_core::experiment::{
    self, candidates, cost, Candidate, JournalTail, Limits, RunDir, TrialRecord,
};
use nas_core::space::builtin::InputSpec;
use nas_core::Rng;
use nas_strategies::Value;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct SearchArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub space: SpaceArgs,
    /// Strategy plugin to run (see `nas plugins`).
    #[arg(long)]
    pub strategy: String,
    /// Number of trials.
    #[arg(long, default_value_t = 100)]
    pub budget: usize,
    /// Random seed of the strategy and of each trial's evaluation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run directory (default runs/<space>-<strategy>-<seed>, the space being a space
    /// file's name without .json; -2, -3, ... added when that directory exists).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How trials are scored: `table` (NAS-Bench-201 lookup), `train` (train from
    /// scratch, score on a validation split), or `auto` (table for nb201, else train).
    #[arg(long, default_value = "auto")]
    pub evaluator: String,
    /// NAS-Bench-201 table for the `table` evaluator [default: the bundled
    /// nasbench201/nb201_cifar10.csv, looked up in $NAS_DATA, ./data and beside the binary].
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub table: Option<PathBuf>,
    /// The data of the `train` evaluator and of one-shot searches (and of retraining):
    /// --data or IDX files, --classes, --test-split.
    #[command(flatten)]
    #[serde(flatten)]
    pub dataset: DataArgs,
    /// Epochs each trial trains (`train` evaluator); for one-shot strategies, epochs of
    /// supernet training in the search.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Backend: cpu, wgpu (the first Vulkan adapter) or cuda[:N] (NVIDIA GPU N). On a
    /// device the network, its gradients and the optimiser's state live in its memory;
    /// each batch goes up once and the loss comes back once per step.
    #[arg(long, default_value = "cpu")]
    #[serde(default = "default_device")]
    pub device: String,
    /// Batch size of trial training and of one-shot supernet training.
    #[arg(long, default_value_t = 64)]
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Training images held out to score trials on (`train` evaluator).
    #[arg(long, default_value_t = 10_000)]
    pub val: usize,
    /// Train trials on only this many images (quick searches).
    #[arg(long, value_parser = crate::data_args::parse_limit)]
    pub limit: Option<usize>,
    /// Trials evaluated at once (threads of this process, or jobs in flight on a cluster).
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Where trials run: `local` (in this process) or `slurm` (one `sbatch` job per
    /// trial; a one-shot search as one job). See --slurm.
    #[arg(long, default_value = "local")]
    #[serde(default = "default_executor")]
    pub executor: String,
    /// Options of `--executor slurm` as JSON, inline or `@file.json`: partition, account,
    /// gres, time, sbatch_args, max_attempts, poll_seconds, result_grace_seconds, probe,
    /// probe_timeout_seconds, nas (the binary the jobs run).
    #[arg(long, value_name = "JSON")]
    #[serde(default)]
    pub slurm: Option<String>,
    /// Strategy options as JSON, inline or `@file.json`.
    #[arg(long)]
    pub config: Option<String>,
    /// One-shot strategies: start the supernet from another run's weights (a one-shot
    /// run's directory: its final supernet, or its last checkpoint's) or from a
    /// .safetensors file, instead of fresh ones (transfer to other data or classes).
    /// Tensors are matched by name and shape; those that do not fit (a classifier for
    /// another number of classes) start fresh and are listed.
    #[arg(long, value_name = "RUN_DIR|FILE")]
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Extra directories to look for plugins in (before NAS_PLUGIN_PATH and the binary's).
    #[arg(long)]
    #[serde(default)]
    pub plugin_dir: Vec<PathBuf>,
    /// The version of the strategy plugin that started the run (recorded, not a flag), so
    /// a resume by another version says so.
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<String>,
}

pub fn default_batch() -> usize {
    64
}

pub fn default_executor() -> String {
    "local".into()
}

pub fn default_device() -> String {
    "cpu".into()
}

/// What an error in a run's recorded options (its `config.json`, which a resume,
/// report or retrain reads back) says first: the file, and that its fields are the
/// flags of `nas search`, which the checks name.
pub fn recorded_context(run: &RunDir) -> String {
    format!(
        "{} (the run's options: a field for each flag of `nas search`, `test_split` for \
         --test-split)",
        run.config_path().display()
    )
}

/// Where a run records what scores its trials ([`scoring`]), as it began.
pub const SETUP_FILE: &str = "setup.json";

/// The options that decide how a run's trials are scored (the space and its size, the
/// data, the evaluator and its training, the seed), and a space file's text: a trial
/// scored under others is not comparable with the journal's.
pub fn scoring(a: &SearchArgs) -> Result<Value> {
    let all = serde_json::to_value(a)?;
    // Every field of the space's and the data's options, and these of the search's.
    let (space, data) = (
        serde_json::to_value(&a.space)?,
        serde_json::to_value(&a.dataset)?,
    );
    let mut keys: Vec<&str> = vec![
        "seed",
        "evaluator",
        "table",
        "epochs",
        "batch",
        "val",
        "limit",
        "init_from",
    ];
    for part in [&space, &data] {
        keys.extend(
            part.as_object()
                .into_iter()
                .flat_map(|m| m.keys().map(String::as_str)),
        );
    }
    let mut v = serde_json::Map::new();
    for k in keys {
        v.insert(k.to_string(), all.get(k).cloned().unwrap_or(Value::Null));
    }
    if let Some(f) = &a.space.space_file {
        let text = nas_core::json::read_file(f).with_context(|| format!("{}", f.display()))?;
        v.insert("space_file_text".into(), Value::from(text));
    }
    Ok(Value::Object(v))
}

/// Records [`scoring`] in a new run, for [`check_setup`].
pub fn record_setup(run: &RunDir, a: &SearchArgs) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(&scoring(a)?)?;
    nas_core::experiment::write_atomic(&run.path.join(SETUP_FILE), &bytes).map_err(|e| anyhow!(e))
}

/// Checks that `a` (a run's `config.json` as it is now) scores trials as the run did
/// when it began: a field edited since (the evaluator, the data, `limit`, `epochs`, the
/// space or its file...) is an error naming each, "then" and "now". Before, a resume ran
/// on the edited options and ranked its trials beside the journal's, and a retrain built
/// the edited network. A run made before runs recorded this is not checked.
pub fn check_setup(run: &RunDir, a: &SearchArgs) -> Result<()> {
    let p = run.path.join(SETUP_FILE);
    if let Some(f) = a.space.space_file.as_deref().filter(|f| !f.exists()) {
        bail!(
            "{}: `space_file` {} is not there (moved or deleted?): put it back, or set \
             `space_file` to where it is now (with the text it had{})",
            run.config_path().display(),
            f.display(),
            if p.exists() {
                format!(", recorded in {}", p.display())
            } else {
                String::new()
            }
        );
    }
    let then: Value = match nas_core::json::read_file(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("{}: {e}", p.display()),
        Ok(t) => nas_core::json::parse(&t).map_err(|e| {
            anyhow!(
                "{}: not the run's setup ({e}); it was damaged (remove it, and the run \
                     resumes without checking its options against how it began)",
                p.display()
            )
        })?,
    };
    let now = scoring(a)?;
    let (Some(then), Some(now)) = (then.as_object(), now.as_object()) else {
        bail!("{}: not the run's setup; it was damaged", p.display());
    };
    // A space file moved (a run taken to another machine) is the same space when its
    // text is.
    let same_text = then.get("space_file_text") == now.get("space_file_text");
    let changed: Vec<String> = crate::changed_fields(then, now)
        .filter(|(k, _, _)| !(*k == "space_file" && same_text))
        .map(|(k, was, v)| match k {
            "space_file_text" => format!(
                "the space file {} is not what it was (its text differs)",
                a.space.display()
            ),
            _ => format!("`{k}` {was} then, {v} now"),
        })
        .collect();
    if !changed.is_empty() {
        bail!(
            "{}: the run's trials were scored otherwise than these options would score \
             them: {}. Trials scored both ways would be ranked as one; set them back (the \
             run's setup is in {}), or start a new run",
            run.config_path().display(),
            changed.join("; "),
            p.display()
        );
    }
    Ok(())
}

impl SearchArgs {
    /// The options a run was started with, from its `config.json`: a field of the
    /// wrong type or range for its kind (a hand-edited file) is an error naming the file
    /// and the field. (What a field's value means is checked where the run is prepared,
    /// as its flag's is; see [`recorded_context`].)
    pub fn recorded(run: &RunDir) -> Result<SearchArgs> {
        let v = run.config().map_err(|e| anyhow!(e))?;
        let p = run.config_path();
        let field = |path: String, e: &dyn std::fmt::Display| match path.as_str() {
            "." => None,
            f => Some(anyhow!("{}: field `{f}`: {e}", p.display())),
        };
        let mut a: SearchArgs = serde_path_to_error::deserialize(v.clone()).map_err(|e| {
            // A field of a flattened part is found by reading that part alone.
            let flat = || {
                let space = serde_path_to_error::deserialize::<_, SpaceArgs>(v.clone()).err();
                let data = serde_path_to_error::deserialize::<_, DataArgs>(v.clone()).err();
                [space.map(|e| (e.path().to_string(), e.into_inner()))]
                    .into_iter()
                    .chain([data.map(|e| (e.path().to_string(), e.into_inner()))])
                    .flatten()
                    .find_map(|(path, e)| field(path, &e))
            };
            field(e.path().to_string(), e.inner())
                .or_else(flat)
                .unwrap_or_else(|| anyhow!("{}: not a search config: {}", p.display(), e.inner()))
        })?;
        // A field the search does not know (a misspelt one) would go unheeded in silence.
        let known = serde_json::to_value(&a)?;
        if let (Some(file), Some(known)) = (v.as_object(), known.as_object()) {
            for k in file.keys().filter(|k| !known.contains_key(*k)) {
                tracing::warn!(
                    "{}: field `{k}` is not an option of `nas search`; ignored",
                    p.display()
                );
            }
        }
        // A run made before a space file refused --channels/--cells may have recorded
        // them; they never applied to it, and are dropped so that it still resumes.
        if a.space.space_file.is_some() {
            a.space.channels = None;
            a.space.cells = None;
        }
        Ok(a)
    }

    /// `--out`, or the first of runs/<space>-<strategy>-<seed>, ...-2, ...-3 that does
    /// not exist yet (so running the same command twice starts a second run).
    pub fn out_dir(&self) -> PathBuf {
        if let Some(o) = &self.out {
            return o.clone();
        }
        // A space file's run is named after the file, not after --space's default.
        let space = match &self.space.space_file {
            Some(f) => f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "space-file".into()),
            None => self.space.space.clone(),
        };
        let base = format!("{space}-{}-{}", self.strategy, self.seed);
        (1..)
            .map(|i| match i {
                1 => PathBuf::from("runs").join(&base),
                _ => PathBuf::from("runs").join(format!("{base}-{i}")),
            })
            .find(|p| !p.exists())
            .unwrap()
    }

    pub fn strategy_config(&self) -> Result<Value> {
        match self.config.as_deref() {
            None => Ok(Value::Object(Default::default())),
            Some(s) => json_option("--config", s),
        }
    }

    /// The NAS-Bench-201 table: `--table`, or the bundled one (see [`crate::data_paths`]).
    pub fn table_path(&self) -> Result<PathBuf> {
        resolve(self.table.as_deref(), Bundled::Nb201Table, "--table")
    }

    /// Makes every path the search names absolute (the bundled data and table that the
    /// defaults find included, when found), so that its run's config.json means the same
    /// from any working directory: `nas resume`, `retrain` and `report` run anywhere.
    /// A path that does not exist is made absolute too; the search reports it where it
    /// reads it.
    pub fn pin_paths(&mut self) {
        self.table = match &self.table {
            Some(t) => Some(absolute(t)),
            None => find(Bundled::Nb201Table),
        };
        self.dataset.pin(self.seed);
        if let Some(f) = &self.space.space_file {
            self.space.space_file = Some(absolute(f));
        }
        for d in &mut self.plugin_dir {
            *d = absolute(d);
        }
        if let Some(o) = &self.out {
            self.out = Some(absolute(o));
        }
        if let Some(f) = &self.init_from {
            self.init_from = Some(absolute(f));
        }
        if let Some(f) = self.slurm.as_deref().and_then(|c| c.strip_prefix('@')) {
            self.slurm = Some(format!("@{}", absolute(Path::new(f)).display()));
        }
        if let Some(f) = self.config.as_deref().and_then(|c| c.strip_prefix('@')) {
            self.config = Some(format!("@{}", absolute(Path::new(f)).display()));
        }
    }

    pub fn uses_table(&self) -> Result<bool> {
        match self.evaluator.as_str() {
            "table" => {
                if self.space.space != "nb201" || self.space.space_file.is_some() {
                    bail!("--evaluator table looks architectures up in NAS-Bench-201; use --space nb201");
                }
                Ok(true)
            }
            "train" => Ok(false),
            "auto" => Ok(self.space.space == "nb201" && self.space.space_file.is_none()),
            e => bail!("--evaluator {e}: expected table, train or auto"),
        }
    }
}

/// The data a `train` evaluator uses: the training set split into train and validation.
pub struct TrainData {
    pub train: Dataset,
    pub val: Dataset,
    pub input: InputSpec,
}

/// Loads the search's data (see [`DataArgs::load`]: its test set, held out or not, is
/// left out) and splits its training images into train and validation.
pub fn load_train_data(a: &SearchArgs) -> Result<TrainData> {
    let mut train = a.dataset.load(a.seed)?.splits.train;
    let (mean, std) = train.channel_stats();
    train.normalise(&mean, &std);
    if a.val == 0 || a.val >= train.len() {
        let held = match a.dataset.test_split {
            Some(f) => format!(" left after --test-split {f} held out the test images"),
            None => String::new(),
        };
        bail!(
            "--val {}: must be at least 1 and fewer than the {}{held} (the rest train)",
            a.val,
            crate::count(train.len(), "training image"),
        );
    }
    let (mut train, val) = train.split(a.val, &mut Rng::new(a.seed));
    if let Some(n) = a.limit {
        // The flag refuses 0; a run's config.json can still hold it.
        if n == 0 {
            bail!("--limit 0: expected at least 1 training image (0 would train on nothing)");
        }
        train = train.take(n);
    }
    let input = InputSpec {
        channels: train.c,
        height: train.h,
        width: train.w,
        classes: train.classes,
    };
    Ok(TrainData { train, val, input })
}

/// The input shape a search's space is built for.
pub fn search_input(table: bool, data: Option<&TrainData>) -> InputSpec {
    match data {
        Some(d) => d.input,
        None if table => InputSpec {
            channels: 3,
            height: 32,
            width: 32,
            classes: 10,
        },
        None => InputSpec {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        },
    }
}

pub use nas_core::evaluate::trial_seed;

/// The JSON an option such as `--config` or `--slurm` gives, inline or as `@file.json`;
/// an error names the option and what it was given.
pub fn json_option(flag: &str, s: &str) -> Result<Value> {
    match s.strip_prefix('@') {
        Some(file) => {
            let t = nas_core::json::read_file(std::path::Path::new(file))
                .with_context(|| format!("{flag} {s}"))?;
            nas_core::json::parse(&t).with_context(|| format!("{flag} {s}: not JSON"))
        }
        None => nas_core::json::parse(s).with_context(|| format!("{flag} {s}: not JSON")),
    }
}

/// The hard limits of a run, from its strategy config (see [`Limits::from_config`]).
pub fn run_limits(a: &SearchArgs) -> Result<Limits> {
    Limits::from_config(&a.strategy_config()?).map_err(|e| anyhow!("--config: {e}"))
}

/// A run's answer among its candidates: a one-shot run's is its export, trial 0,
/// whatever the accuracy of the Pareto set a multi-objective strategy journals beside
/// it; a multi-trial run's is its most accurate candidate.
pub fn answer(c: &[Candidate], one_shot: bool) -> Option<&Candidate> {
    if one_shot {
        c.iter().find(|c| c.trials.contains(&0))
    } else {
        experiment::best(c)
    }
}

/// The architecture a run returns: the feasible one with the highest accuracy (mean
/// over its trials), or an error that says why no trial can be returned (each failed,
/// or is over the limits).
pub fn best_of(j: &[TrialRecord], limits: &Limits) -> Result<Candidate> {
    let c = candidates(j, limits);
    match answer(&c, crate::report_html::one_shot(j, false)).or_else(|| experiment::best(&c)) {
        Some(b) => Ok(b.clone()),
        None => bail!("{}", none_returned(j, limits)),
    }
}

/// The trials of a run that failed (each journaled with why).
pub fn failed_trials(j: &[TrialRecord]) -> impl Iterator<Item = (usize, &str)> {
    j.iter()
        .filter_map(|t| t.metrics.failure().map(|why| (t.trial, why)))
}

/// What a run's ranking leaves out, for the user: `2 trials failed and 1 is over the
/// limits (params <= 10)`; `None` when it leaves nothing out.
pub fn left_out(j: &[TrialRecord], limits: &Limits) -> Option<String> {
    let failed = failed_trials(j).count();
    let over = j
        .iter()
        .filter(|t| !t.metrics.is_failed() && !limits.feasible(&t.metrics))
        .count();
    let over_text = |n: usize, noun: bool| {
        let who = match (n, noun) {
            (1, true) => "1 trial is".to_string(),
            (n, true) => format!("{n} trials are"),
            (1, false) => "1 is".to_string(),
            (n, false) => format!("{n} are"),
        };
        format!("{who} over the limits ({limits})")
    };
    match (failed, over) {
        (0, 0) => None,
        (0, o) => Some(over_text(o, true)),
        (f, 0) => Some(format!("{} failed", crate::count(f, "trial"))),
        (f, o) => Some(format!(
            "{} failed and {}",
            crate::count(f, "trial"),
            over_text(o, false)
        )),
    }
}

/// Why a run with trials returns no architecture: each of them failed (the first
/// failure's reason given), or is over the limits, or some of each.
pub fn none_returned(j: &[TrialRecord], limits: &Limits) -> String {
    let failed: Vec<(usize, &str)> = failed_trials(j).collect();
    let first = failed
        .first()
        .map(|(t, why)| format!(" (trial {t}: {why})"))
        .unwrap_or_default();
    if failed.is_empty() {
        format!(
            "none of the run's {} is within the limits ({limits})",
            crate::count(j.len(), "trial")
        )
    } else if failed.len() == j.len() {
        match failed.len() {
            1 => format!("the run's one trial failed{first}"),
            n => format!("every one of the run's {n} trials failed; the first{first}"),
        }
    } else {
        format!(
            "none of the run's {} can be returned: {}; the first failure{first}",
            crate::count(j.len(), "trial"),
            left_out(j, limits).unwrap_or_default()
        )
    }
}

/// A run as the commands on finished runs read it (never writing its journal): its
/// directory, its search's arguments and its journaled trials. A last line cut short
/// by a kill is left out, with a warning; a corrupt line before it is an error.
pub fn load_run(dir: &Path) -> Result<(RunDir, SearchArgs, Vec<TrialRecord>)> {
    let (run, a, j) = load_run_as_is(dir)?;
    if j.is_empty() {
        bail!(
            "{}: the run has no finished trials yet (`nas report {}` says how it stands; \
             `nas resume {}` continues it)",
            dir.display(),
            dir.display(),
            dir.display()
        );
    }
    Ok((run, a, j))
}

/// [`load_run`], a run with no finished trial yet included (`nas report` says how such a
/// run stands and shows a one-shot search's progress).
pub fn load_run_as_is(dir: &Path) -> Result<(RunDir, SearchArgs, Vec<TrialRecord>)> {
    let run = RunDir::open(dir).map_err(|e| anyhow!(e))?;
    let a = SearchArgs::recorded(&run)?;
    let journal = run.read_journal().map_err(|e| anyhow!(e))?;
    if let JournalTail::Torn { line, .. } = journal.tail {
        tracing::warn!(
            "{}: line {line} is cut short (a search writing it, or killed while it \
             did); left out (`nas resume {}` repairs it)",
            run.journal_path().display(),
            dir.display()
        );
    }
    let mut j = journal.trials;
    check_against_space(&run, &mut j)?;
    Ok((run, a, j))
}

/// Checks every journaled architecture against the choices the run recorded of its
/// space (a run made before runs recorded them is not checked): a journal edited or
/// damaged into an architecture its space does not have is an error naming the trial.
pub fn check_against_space(run: &RunDir, journal: &mut [TrialRecord]) -> Result<()> {
    let Some(choices) = recorded_space(run)? else {
        return Ok(());
    };
    let p = run.space_path();
    check_journal(
        run,
        &choices,
        journal,
        &format!("the run's space ({})", p.display()),
    )
}

/// The choices the run recorded of its space (`space.json`); `None` for a run made before
/// runs recorded them. A record that cannot be read is an error naming the file.
pub fn recorded_space(run: &RunDir) -> Result<Option<Vec<nas_core::space::Choice>>> {
    let p = run.space_path();
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("{}: {e}", p.display()),
    };
    let choices = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{}: not the choices of a space (the run's record of them; `nas resume {}` \
             writes it again from the run's options)",
            p.display(),
            run.path.display()
        )
    })?;
    Ok(Some(choices))
}

/// Checks that every journaled architecture fits `choices`, the choices of `space` (how
/// errors name it); an error names the journal and the trial. Each is then read as the
/// network it builds: the ops of edges its nodes do not pick, which journals written
/// before 2026-12 name, are dropped, so one network is one candidate however its
/// trials were journaled.
pub fn check_journal(
    run: &RunDir,
    choices: &[nas_core::space::Choice],
    journal: &mut [TrialRecord],
    space: &str,
) -> Result<()> {
    for r in journal {
        nas_core::space::arch::validate(choices, &r.arch).map_err(|e| {
            anyhow!(
                "{}: trial {}: its architecture does not fit {space}: {e}",
                run.journal_path().display(),
                r.trial,
            )
        })?;
        r.arch = nas_core::space::arch::made_only(choices, std::mem::take(&mut r.arch));
    }
    Ok(())
}

/// The cost a multi-objective run traded accuracy against, if it had one.
pub fn run_cost(a: &SearchArgs) -> Option<String> {
    let cfg = a.strategy_config().ok()?;
    // One cost named beside accuracy (NAT's `objective`), or a list of objectives.
    if let Some(o) = cfg.get("objective").and_then(|v| v.as_str()) {
        if nas_types::COSTS.contains(&o) {
            return Some(o.to_string());
        }
    }
    cfg.get("objectives")?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str())
        .find(|o| *o != "accuracy")
        .map(str::to_string)
}

pub fn cost_of(name: &str) -> impl Fn(&nas_core::evaluate::Metrics) -> Option<f64> + '_ {
    move |m| cost(m, name)
}

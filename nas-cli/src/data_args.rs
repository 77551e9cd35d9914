//! The dataset options of every command that loads a dataset (`nas train`, `nas search`,
//! `nas retrain`): where the images come from (a dataset directory, or an IDX pair of
//! files with any names), which classes to keep, and how a test set is held out when the
//! files give none. A search records them in its run's config.json (paths absolute), so
//! the commands on the run load the same data.

use crate::data_paths::{absolute, find, resolve, Bundled};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nas_core::data::{idx_name, load_dir, load_idx, load_idx_splits, Dataset, Splits};
use nas_core::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Args, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataArgs {
    /// Dataset directory: IDX files with the MNIST / Fashion-MNIST names, or CIFAR-10
    /// binary batches [default: the bundled fashion-mnist, looked up in $NAS_DATA, ./data
    /// and beside the binary; for `nas retrain`, the run's data].
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// IDX images file (raw or gzip, any name) to train on instead of --data; with
    /// --train-labels, and --test-images/--test-labels or --test-split.
    #[arg(long, value_name = "PATH")]
    #[serde(default)]
    pub train_images: Option<PathBuf>,
    /// IDX labels file of --train-images.
    #[arg(long, value_name = "PATH")]
    #[serde(default)]
    pub train_labels: Option<PathBuf>,
    /// IDX images file to test on (with --train-images and --test-labels).
    #[arg(long, value_name = "PATH")]
    #[serde(default)]
    pub test_images: Option<PathBuf>,
    /// IDX labels file of --test-images.
    #[arg(long, value_name = "PATH")]
    #[serde(default)]
    pub test_labels: Option<PathBuf>,
    /// Hold out this fraction (between 0 and 1) of the --train-images images as the test
    /// set, drawn with --split-seed; for --train-images without test files.
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    #[serde(default)]
    pub test_split: Option<f64>,
    /// Seed of the --test-split hold-out [default: --seed; a search records it, so its
    /// retraining tests on the same images].
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub split_seed: Option<u64>,
    /// Keep only these classes (comma-separated label ids, e.g. 0,1,2) in the train,
    /// validation and test images, relabelled 0..k-1 in the order listed: the network
    /// has k outputs.
    #[arg(long, value_name = "LIST")]
    #[serde(default)]
    pub classes: Option<ClassList>,
}

/// A `--classes` list: distinct class ids, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClassList(pub Vec<u32>);

impl FromStr for ClassList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("an empty list; give class ids such as 0,1,2".into());
        }
        let mut ids: Vec<u32> = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            let id: u32 = item
                .parse()
                .map_err(|_| format!("'{item}' is not a class id (a whole number, as in 0,1,2)"))?;
            if ids.contains(&id) {
                return Err(format!("class {id} is listed twice"));
            }
            ids.push(id);
        }
        if ids.len() < 2 {
            // One class trains a network of one output, which scores 100% on anything.
            return Err(format!(
                "one class ({}): a classifier needs at least two; list two or more, as in 0,{}",
                ids[0],
                ids[0].max(1)
            ));
        }
        Ok(ClassList(ids))
    }
}

impl fmt::Display for ClassList {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let s: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&s.join(","))
    }
}

/// `--test-split`'s value: a number strictly between 0 and 1.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f > 0.0 && f < 1.0 => Ok(f),
        _ => Err("expected a fraction between 0 and 1 (exclusive), such as 0.2".into()),
    }
}

/// `--limit`: a number of training images, at least one (none would train nothing and
/// still report an accuracy).
pub fn parse_limit(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => Err("expected at least 1 training image (0 would train on nothing)".into()),
        Err(e) => Err(format!("expected a number of training images: {e}")),
    }
}

/// Mixed into `--split-seed` for the test hold-out, so it does not draw the same
/// shuffle as the validation split that the same seed draws.
pub const TEST_SPLIT_SALT: u64 = 0x7E57_5917_D47A_0001;

/// A dataset loaded as [`DataArgs`] say.
pub struct Loaded {
    /// Train and test sets, classes kept and test set held out as asked.
    pub splits: Splits,
    /// The options as they were applied: paths absolute, the hold-out's seed filled in.
    pub source: DataArgs,
    /// How messages name the data: the dataset's name, and the classes kept.
    pub label: String,
}

impl DataArgs {
    /// True when the options name a source (a directory or files), not only classes or
    /// a split.
    pub fn names_source(&self) -> bool {
        self.data.is_some()
            || self.train_images.is_some()
            || self.train_labels.is_some()
            || self.test_images.is_some()
            || self.test_labels.is_some()
    }

    /// Checks that the options go together; each error says which do not and why.
    pub fn check(&self) -> Result<()> {
        let pair = |a: &Option<PathBuf>, b: &Option<PathBuf>, an: &str, bn: &str| -> Result<()> {
            match (a, b) {
                (Some(p), None) => bail!(
                    "{an} {} is given without {bn}: an IDX pair needs both files",
                    p.display()
                ),
                (None, Some(p)) => bail!(
                    "{bn} {} is given without {an}: an IDX pair needs both files",
                    p.display()
                ),
                _ => Ok(()),
            }
        };
        pair(
            &self.train_images,
            &self.train_labels,
            "--train-images",
            "--train-labels",
        )?;
        pair(
            &self.test_images,
            &self.test_labels,
            "--test-images",
            "--test-labels",
        )?;
        let files = self.train_images.is_some() || self.test_images.is_some();
        if let (Some(d), true) = (&self.data, files) {
            bail!(
                "--data {} and --train-images/--test-images both name the data: give one \
                 (a dataset directory, or IDX files)",
                d.display()
            );
        }
        if self.test_images.is_some() && self.train_images.is_none() {
            bail!("--test-images/--test-labels need --train-images and --train-labels");
        }
        if let Some(f) = self.test_split {
            if !(f > 0.0 && f < 1.0) {
                bail!("--test-split {f}: expected a fraction between 0 and 1 (exclusive)");
            }
            if self.test_images.is_some() {
                bail!(
                    "--test-split {f} holds out a test set, but --test-images/--test-labels \
                     give one: leave one of them out"
                );
            }
            if self.train_images.is_none() {
                let which = match &self.data {
                    Some(d) => format!("--data {}", d.display()),
                    None => "the default dataset (the bundled fashion-mnist)".into(),
                };
                bail!(
                    "--test-split {f}: {which} has its own test split; --test-split holds \
                     out a test set only from --train-images/--train-labels given without \
                     test files"
                );
            }
        } else if self.train_images.is_some() && self.test_images.is_none() {
            bail!(
                "--train-images/--train-labels without --test-images/--test-labels need \
                 --test-split FRACTION (such as 0.2) to hold out a test set"
            );
        }
        if let (Some(s), None) = (self.split_seed, self.test_split) {
            bail!("--split-seed {s} seeds --test-split, which is not given");
        }
        Ok(())
    }

    /// The options checked and made absolute, as a run records them and as they are
    /// loaded: the dataset directory resolved (the bundled one when none is given), the
    /// files' paths absolute, and the hold-out's seed `seed` when none is given.
    pub fn resolved(&self, seed: u64) -> Result<DataArgs> {
        self.check()?;
        let mut r = self.clone();
        if self.train_images.is_none() {
            r.data = Some(resolve(
                self.data.as_deref(),
                Bundled::FashionMnist,
                "--data",
            )?);
        }
        for p in [
            &mut r.train_images,
            &mut r.train_labels,
            &mut r.test_images,
            &mut r.test_labels,
        ]
        .into_iter()
        .flatten()
        {
            *p = absolute(p);
        }
        if r.test_split.is_some() && r.split_seed.is_none() {
            r.split_seed = Some(seed);
        }
        Ok(r)
    }

    /// Makes the options what a search's config.json records (see
    /// [`crate::search_args::SearchArgs::pin_paths`]): paths absolute, the bundled
    /// dataset's when no source is given and it is found, and the hold-out's seed. Checks
    /// nothing: the search does when it loads the data.
    pub fn pin(&mut self, seed: u64) {
        if self.train_images.is_none() && self.test_images.is_none() {
            self.data = match &self.data {
                Some(d) => Some(absolute(d)),
                None => find(Bundled::FashionMnist),
            };
        } else if let Some(d) = &self.data {
            self.data = Some(absolute(d));
        }
        for p in [
            &mut self.train_images,
            &mut self.train_labels,
            &mut self.test_images,
            &mut self.test_labels,
        ]
        .into_iter()
        .flatten()
        {
            *p = absolute(p);
        }
        if self.test_split.is_some() && self.split_seed.is_none() {
            self.split_seed = Some(seed);
        }
    }

    /// The options `nas retrain` runs with: these (the ones given to it) over `run`'s
    /// (the search's). A source given (--data or files) replaces the run's, with its
    /// split options; otherwise the run's source stays, with its split. --classes given
    /// replaces the run's.
    pub fn over(&self, run: &DataArgs) -> DataArgs {
        let mut m = if self.names_source() {
            self.clone()
        } else {
            DataArgs {
                test_split: self.test_split.or(run.test_split),
                split_seed: self.split_seed.or(run.split_seed),
                ..run.clone()
            }
        };
        m.classes = self.classes.clone().or_else(|| run.classes.clone());
        m
    }

    /// The paths these options name, each with its flag (`None` where not given).
    pub fn paths(&self) -> [(&'static str, Option<&std::path::Path>); 5] {
        [
            ("--data", self.data.as_deref()),
            ("--train-images", self.train_images.as_deref()),
            ("--train-labels", self.train_labels.as_deref()),
            ("--test-images", self.test_images.as_deref()),
            ("--test-labels", self.test_labels.as_deref()),
        ]
    }

    /// The options as command-line arguments (for `nas train`).
    pub fn argv(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (flag, p) in self.paths() {
            if let Some(p) = p {
                v.extend([flag.to_string(), p.display().to_string()]);
            }
        }
        if let Some(f) = self.test_split {
            v.extend(["--test-split".into(), f.to_string()]);
        }
        if let Some(s) = self.split_seed {
            v.extend(["--split-seed".into(), s.to_string()]);
        }
        if let Some(c) = &self.classes {
            v.extend(["--classes".into(), c.to_string()]);
        }
        v
    }

    /// The data in words, for messages: the directory or files, the hold-out, the classes.
    pub fn describe(&self) -> String {
        let mut s = match (&self.train_images, &self.train_labels) {
            (Some(i), Some(l)) => {
                let test = match (&self.test_images, &self.test_labels, self.test_split) {
                    (Some(ti), Some(tl), _) => {
                        format!("tested on {} and {}", ti.display(), tl.display())
                    }
                    (_, _, Some(f)) => format!(
                        "{f} of them held out to test on (seed {})",
                        self.split_seed.map_or("--seed".into(), |s| s.to_string())
                    ),
                    _ => "no test set".into(),
                };
                format!("{} and {} ({test})", i.display(), l.display())
            }
            _ => match &self.data {
                Some(d) => d.display().to_string(),
                None => "the bundled fashion-mnist".into(),
            },
        };
        if let Some(c) = &self.classes {
            s += &format!(", classes {c}");
        }
        s
    }

    /// Loads the data: resolves the options (see [`DataArgs::resolved`], `seed` seeding
    /// the test hold-out when --split-seed is not given), reads the directory or files,
    /// keeps the classes listed and holds out the test set.
    pub fn load(&self, seed: u64) -> Result<Loaded> {
        let _span = tracing::debug_span!("load data").entered();
        let source = self.resolved(seed)?;
        let (mut train, test, name) = match (&source.train_images, &source.train_labels) {
            (Some(ti), Some(tl)) => match (&source.test_images, &source.test_labels) {
                (Some(xi), Some(xl)) => {
                    let s = load_idx_splits((ti, tl), (xi, xl)).with_context(|| {
                        format!(
                            "--train-images {} --train-labels {} --test-images {} \
                             --test-labels {}",
                            ti.display(),
                            tl.display(),
                            xi.display(),
                            xl.display()
                        )
                    })?;
                    (s.train, Some(s.test), s.name)
                }
                _ => {
                    let d = load_idx(ti, tl).with_context(|| {
                        format!(
                            "--train-images {} --train-labels {}",
                            ti.display(),
                            tl.display()
                        )
                    })?;
                    (d, None, idx_name(ti))
                }
            },
            _ => {
                let dir = source.data.as_deref().expect("resolved");
                let s = load_dir(dir).with_context(|| format!("--data {}", dir.display()))?;
                (s.train, Some(s.test), s.name)
            }
        };
        let keep = |d: &Dataset, c: &ClassList| {
            d.filter_classes(&c.0)
                .map_err(|e| anyhow!("--classes {c}: {e}"))
        };
        if source.classes.is_none() {
            if let Some(w) = missing_classes(&train, &name) {
                eprintln!("warning: {w}");
            }
        }
        let mut test = test;
        if let Some(c) = &source.classes {
            train = keep(&train, c)?;
            test = test.map(|t| keep(&t, c)).transpose()?;
            let mut seen = vec![false; c.0.len()];
            for &l in &train.labels {
                seen[l as usize] = true;
            }
            if let Some(i) = seen.iter().position(|s| !s) {
                bail!("--classes {c}: class {} has no training images", c.0[i]);
            }
        }
        let test = match test {
            Some(t) => t,
            None => {
                let f = source.test_split.expect("checked");
                let seed = source.split_seed.expect("resolved");
                let (rest, held) = train
                    .split_fraction(f, &mut Rng::new(seed ^ TEST_SPLIT_SALT))
                    .map_err(|e| anyhow!("--test-split {f}: {e}"))?;
                train = rest;
                held
            }
        };
        let label = match &source.classes {
            Some(c) => format!("{name} classes {c}"),
            None => name.clone(),
        };
        Ok(Loaded {
            splits: Splits { train, test, name },
            source,
            label,
        })
    }
}

/// What is odd about the training labels of `d` (`name`'s), if anything: the classes
/// are counted as the largest label plus one, so a label far past the others (a
/// damaged byte) or a class no image has makes outputs nothing trains. Names the
/// classes without images and where the largest label is.
pub fn missing_classes(d: &Dataset, name: &str) -> Option<String> {
    let mut count = vec![0usize; d.classes];
    for &l in &d.labels {
        count[l as usize] += 1;
    }
    let empty: Vec<usize> = (0..d.classes).filter(|&k| count[k] == 0).collect();
    let first = *empty.first()?;
    let last = *empty.last().unwrap();
    let which = if empty.len() == 1 {
        format!("class {first} has")
    } else if last - first + 1 == empty.len() {
        format!("classes {first} to {last} have")
    } else {
        format!("{} classes (the first {first}) have", empty.len())
    };
    // The classes are the largest label plus one for IDX files; a data set of a fixed
    // count (CIFAR-10's 10) may have fewer labels in a small file.
    let (at, top) = d
        .labels
        .iter()
        .enumerate()
        .max_by_key(|&(i, &l)| (l, usize::MAX - i))?;
    let why = if *top as usize + 1 == d.classes {
        format!(
            "the largest label, {top} (image {at}), makes {} classes",
            d.classes
        )
    } else {
        format!("the data set has {} classes", d.classes)
    };
    Some(format!(
        "{name}: {which} no training images: {why}; a damaged label, or --classes to keep \
         the ones there are"
    ))
}

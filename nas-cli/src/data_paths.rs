//! Where the bundled data is found, whatever the working directory.
//!
//! A path given on the command line (`--data`, `--table`) is used as given, relative to
//! the working directory. Without one, the bundled item (the Fashion-MNIST directory, the
//! NAS-Bench-201 table) is looked up in these data directories, the first holding it
//! winning:
//!
//! 1. `$NAS_DATA`, when set;
//! 2. `data/` in the working directory (a checkout's root);
//! 3. `data/` beside the binary (an unpacked archive);
//! 4. `<prefix>/share/nas/data` for a binary in `<prefix>/bin` (an install);
//! 5. `data/` two levels above the binary (a checkout's `target/release/nas`).
//!
//! A search records the absolute paths it found in its run's config.json, so the
//! commands on the run work from any directory.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The environment variable naming a data directory to look in first.
pub const DATA_ENV: &str = "NAS_DATA";

/// An item of the bundled data.
#[derive(Clone, Copy, Debug)]
pub enum Bundled {
    /// `fashion-mnist/`: the default dataset.
    FashionMnist,
    /// `nasbench201/nb201_cifar10.csv`: the NAS-Bench-201 table.
    Nb201Table,
    /// `ground-truth/nb201-c8n1-fashion.csv`: NAS-Bench-201 cells trained on
    /// Fashion-MNIST (what `nas rank-check` judges supernets by).
    GroundTruth,
}

impl Bundled {
    /// Its path inside a data directory.
    pub fn rel(self) -> &'static str {
        match self {
            Bundled::FashionMnist => "fashion-mnist",
            Bundled::Nb201Table => "nasbench201/nb201_cifar10.csv",
            Bundled::GroundTruth => "ground-truth/nb201-c8n1-fashion.csv",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Bundled::FashionMnist => "the Fashion-MNIST directory",
            Bundled::Nb201Table => "the NAS-Bench-201 table",
            Bundled::GroundTruth => "the ground-truth table",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Bundled::FashionMnist => "directory",
            Bundled::Nb201Table | Bundled::GroundTruth => "file",
        }
    }
}

/// The data directories searched, in order, each with where it comes from.
pub fn data_dirs() -> Vec<(PathBuf, &'static str)> {
    let mut dirs = vec![];
    if let Some(d) = std::env::var_os(DATA_ENV).filter(|d| !d.is_empty()) {
        let d = absolute(Path::new(&d));
        // Likely a typo: said once (the other places are still looked in).
        static SAID: std::sync::Once = std::sync::Once::new();
        if let Some(why) = crate::not_a_directory(&d) {
            SAID.call_once(|| tracing::warn!("$NAS_DATA {} {why}", d.display()));
        }
        dirs.push((d, "$NAS_DATA"));
    }
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push((cwd.join("data"), "the working directory"));
    }
    let exe = std::env::current_exe().ok();
    if let Some(bin) = exe.as_deref().and_then(Path::parent) {
        dirs.push((bin.join("data"), "beside the binary"));
        if let Some(prefix) = bin.parent() {
            dirs.push((prefix.join("share/nas/data"), "the install prefix"));
            if let Some(root) = prefix.parent() {
                dirs.push((root.join("data"), "the checkout the binary was built in"));
            }
        }
    }
    dirs
}

/// The first data directory's copy of `item`, if any holds one.
pub fn find(item: Bundled) -> Option<PathBuf> {
    data_dirs()
        .into_iter()
        .map(|(d, _)| d.join(item.rel()))
        .find(|p| p.exists())
        .map(|p| absolute(&p))
}

/// The path `option` sets: `given` when given (it must exist), else `item` found in the
/// data directories. A path that runs recorded before they recorded absolute ones
/// (`data/...`, relative to where the search ran) is looked up like a default when it is
/// not there. The error names the option, the value or the places looked in.
pub fn resolve(given: Option<&Path>, item: Bundled, option: &str) -> Result<PathBuf> {
    match given {
        Some(p) if p.exists() => return Ok(absolute(p)),
        Some(p) if p != Path::new("data").join(item.rel()) => {
            let cwd = std::env::current_dir()
                .map(|d| format!(" (relative to the working directory {})", d.display()))
                .unwrap_or_default();
            let rel = if p.is_relative() { cwd.as_str() } else { "" };
            bail!("{option} {}: no such file or directory{rel}", p.display())
        }
        _ => {}
    }
    if let Some(p) = find(item) {
        return Ok(p);
    }
    let mut msg = format!(
        "{} was not found: pass {option} PATH, or set {DATA_ENV} to a directory holding \
         the {} `{}`; looked in:",
        item.what(),
        item.kind(),
        item.rel()
    );
    if std::env::var_os(DATA_ENV)
        .filter(|d| !d.is_empty())
        .is_none()
    {
        msg += &format!("\n  ${DATA_ENV} (not set)");
    }
    for (d, why) in data_dirs() {
        msg += &format!("\n  {} ({why})", d.join(item.rel()).display());
    }
    bail!("{msg}")
}

/// `p` as an absolute path: canonical when it exists, else joined to the working
/// directory.
pub fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

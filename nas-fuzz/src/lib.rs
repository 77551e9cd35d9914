//! Fuzz targets for every parser and loader of `nas`: one function per target, each
//! taking raw bytes, loading them as its format does on disk, and checking what a
//! successful load promises. A panic, an abort or a failed invariant is a finding; an
//! error returned by the loader is the expected answer to a bad file.
//!
//! [`TARGETS`] lists them by name. The seed corpus is in `corpus/<target>/` (made by
//! `make_corpus.sh` from the real files), `tests/smoke.rs` replays it with seeded
//! mutations in CI, and `afl/` is the AFL++ harness that `scripts/fuzz.sh` runs.
//!
//! Inputs made of several files (the IDX images and labels, a run directory) are their
//! parts joined by [`SPLIT`].

mod config;
mod data;
mod files;
mod run;
mod space;

use nas_types::Rng;
use std::path::PathBuf;

pub use config::STRATEGIES;
pub use files::small_net;
pub use space::SHAPES;

/// A fuzz target: it takes any bytes, and panics only on a finding.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("idx", idx),
    ("cifar", cifar),
    ("space_file", space_file),
    ("arch", arch),
    ("config", config),
    ("nb201_csv", nb201_csv),
    ("journal", journal),
    ("safetensors", safetensors),
    ("plugin", plugin),
];

/// The line that separates the files of an input made of several (see [`split`]).
pub const SPLIT: &[u8] = b"\n--split--\n";

/// IDX images and labels: the input is `images SPLIT labels` (each raw or gzip), loaded
/// with `load_idx` and with `load_idx_with_classes(.., 10)`; a set that loads must have
/// `n*c*h*w` pixels in [0, 1] and labels below its class count.
pub fn idx(bytes: &[u8]) {
    data::idx(bytes)
}

/// A CIFAR-10 batch file (raw or gzip) through `load_cifar10`; a set that loads must be
/// whole records of 3x32x32 pixels in [0, 1] with labels below 10.
pub fn cifar(bytes: &[u8]) {
    data::cifar(bytes)
}

/// A space file: the first byte picks the data's shape (see `space::SHAPES`), the rest
/// is the file. A file that loads is described, and when its largest network is small
/// a random architecture is built and run, and so is the supernet.
pub fn space_file(bytes: &[u8]) {
    space::space_file(bytes)
}

/// An architecture JSON file, validated against every built-in space; one valid for a
/// cheap space (`nb201`, `seed-net`) is built and run on a tiny batch.
pub fn arch(bytes: &[u8]) {
    space::arch(bytes)
}

/// A strategy config: the first byte picks one of the 18 strategies ([`STRATEGIES`]),
/// the rest is its JSON config. A config the strategy accepts is searched with: ask/tell
/// rounds and a save/load round trip (multi-trial), or a run on a tiny fake supernet and
/// a resume from its first checkpoint (one-shot).
pub fn config(bytes: &[u8]) {
    config::config(bytes)
}

/// A NAS-Bench-201 CSV table through `Nb201Table::load`, then lookups.
pub fn nb201_csv(bytes: &[u8]) {
    files::nb201_csv(bytes)
}

/// A journal through `parse_journal`, and a run directory (`config.json SPLIT
/// journal.jsonl SPLIT strategy_state.json`) read, summarised and repaired.
pub fn journal(bytes: &[u8]) {
    run::journal(bytes)
}

/// A safetensors file through `load_tensors`, and `load_module` into a small network.
pub fn safetensors(bytes: &[u8]) {
    files::safetensors(bytes)
}

/// A plugin library's bytes through the host's ELF check (`nas_cli::elf::check_image`).
pub fn plugin(bytes: &[u8]) {
    files::plugin(bytes)
}

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The first `parts - 1` pieces of `bytes` before each [`SPLIT`], and the rest; fewer
/// when it holds fewer separators.
pub fn split(bytes: &[u8], parts: usize) -> Vec<&[u8]> {
    let mut out = vec![];
    let mut rest = bytes;
    while out.len() + 1 < parts {
        match rest.windows(SPLIT.len()).position(|w| w == SPLIT) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + SPLIT.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// `parts` joined by [`SPLIT`] (how the corpus writes a multi-file input).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(SPLIT)
}

/// A random generator seeded by the input, for the choices a target makes (which
/// architectures to look up), so a run is reproducible from its input alone.
fn rng_of(bytes: &[u8]) -> Rng {
    // FNV-1a.
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    Rng::new(h)
}

/// A scratch directory of this process and thread under the system's temporary
/// directory, where targets write the files they load (emptied by [`fresh_dir`]).
pub fn scratch() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static DIR: PathBuf = {
            let d = std::env::temp_dir().join(format!(
                "nas-fuzz-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&d)
                .unwrap_or_else(|e| panic!("{}: cannot create the scratch directory: {e}", d.display()));
            d
        };
    }
    DIR.with(|d| d.clone())
}

/// Writes `bytes` to the scratch file `name` and returns its path.
fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: cannot write: {e}", p.display()));
    p
}

/// An empty scratch sub-directory `name` (whatever an earlier run left there removed).
fn fresh_dir(name: &str) -> PathBuf {
    let d = scratch().join(name);
    if d.exists() {
        std::fs::remove_dir_all(&d)
            .unwrap_or_else(|e| panic!("{}: cannot empty: {e}", d.display()));
    }
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: cannot create: {e}", d.display()));
    d
}

/// Removes this thread's scratch directory (the smoke test calls it when done).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(scratch());
}

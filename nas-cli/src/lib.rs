//! The `nas` host as a library, so tests drive it in process: the plugin loader
//! ([`host`], with its check of a library's file in [`elf`]) and the supernet services
//! behind the one-shot boundary ([`trainer`]); what it logs is [`logging`], and the spans
//! its traces are made of [`spans`]. The commands are [`app`] and the modules it
//! dispatches to (hidden from the docs: they are the binary's, public for its unit tests
//! in `tests/cli/unit/`); the `nas` binary (`main.rs`) only calls [`app::main`].

pub mod distill;
pub mod elf;
pub mod host;
pub mod hypernet;
pub mod logging;
pub mod spans;
pub mod ssl;
pub mod trainer;

pub mod app;
#[doc(hidden)]
pub mod arch_graph;
#[doc(hidden)]
pub mod bench;
#[doc(hidden)]
pub mod bench_strategies_cmd;
#[doc(hidden)]
pub mod data_args;
#[doc(hidden)]
pub mod data_paths;
#[doc(hidden)]
pub mod device;
#[doc(hidden)]
pub mod executor;
#[doc(hidden)]
pub mod export_cmd;
#[doc(hidden)]
pub mod interrupt;
#[doc(hidden)]
pub mod oneshot_cmd;
#[doc(hidden)]
pub mod onnx_out;
#[doc(hidden)]
pub mod plot;
#[doc(hidden)]
pub mod plugins_cmd;
#[doc(hidden)]
pub mod profile_cmd;
#[doc(hidden)]
pub mod rank_check_cmd;
#[doc(hidden)]
pub mod report_cmd;
#[doc(hidden)]
pub mod report_html;
#[doc(hidden)]
pub mod retrain_cmd;
#[doc(hidden)]
pub mod search_args;
#[doc(hidden)]
pub mod search_cmd;
#[doc(hidden)]
pub mod slurm;
#[doc(hidden)]
pub mod space_args;
#[doc(hidden)]
pub mod spaces_cmd;
#[doc(hidden)]
pub mod state_saves;
#[doc(hidden)]
pub mod train_cmd;
#[doc(hidden)]
pub mod trial_cmd;

/// An error naming the first of `flags` (a flag and its value) that is 0: `--budget 0:
/// must be at least 1`.
pub fn at_least_one(flags: &[(&str, usize)]) -> anyhow::Result<()> {
    match flags.iter().find(|(_, n)| *n == 0) {
        Some((flag, _)) => anyhow::bail!("{flag} 0: must be at least 1"),
        None => Ok(()),
    }
}

/// The fields of a run's setup as it began (`then`) that `now` gives otherwise: each
/// field of `now` that `then` records too, with its two values. What a checkpoint and
/// a run's `setup.json` refuse a resume by; a field only one side records is not
/// compared (a later version's addition says nothing of the run).
pub fn changed_fields<'a>(
    then: &'a serde_json::Map<String, serde_json::Value>,
    now: &'a serde_json::Map<String, serde_json::Value>,
) -> impl Iterator<Item = (&'a str, &'a serde_json::Value, &'a serde_json::Value)> {
    now.iter().filter_map(|(k, v)| {
        let was = then.get(k)?;
        (was != v).then_some((k.as_str(), was, v))
    })
}

/// An output that would write over one of the command's `inputs` (a flag and its path
/// each, the path `None` when not given) is an error naming both; otherwise `check`
/// ([`nas_core::experiment::check_output`]: a place that can be written, not a run's
/// own record) decides.
pub fn check_output(
    flag: &str,
    path: &std::path::Path,
    inputs: &[(&str, Option<&std::path::Path>)],
) -> anyhow::Result<()> {
    let clash = inputs
        .iter()
        .find(|(_, q)| q.is_some_and(|q| nas_core::experiment::same_file(path, q)));
    if let Some((input, _)) = clash {
        anyhow::bail!(
            "{flag} {}: that is the {input} file this command reads; writing it would lose \
             it, so name another file",
            path.display()
        );
    }
    nas_core::experiment::check_output(path)
        .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
}

/// Why `d`, named as a directory to look in, is not one ("does not exist", "is not a
/// directory"), or `None` where it is: what the host says of a mistyped one.
pub fn not_a_directory(d: &std::path::Path) -> Option<&'static str> {
    match (d.is_dir(), d.exists()) {
        (true, _) => None,
        (false, true) => Some("is not a directory"),
        (false, false) => Some("does not exist"),
    }
}

/// `n` and the word, plural unless `n` is 1: "1 trial", "2 trials".
pub fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

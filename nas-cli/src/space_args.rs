//! The options every command uses to pick a search space.

use anyhow::{bail, Result};
use clap::Args;
use nas_core::space::builtin::{self, darts::DartsSpace, InputSpec};
use nas_core::space::file::FileSpace;
use nas_core::space::Space;
use std::path::PathBuf;

#[derive(Args, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SpaceArgs {
    /// Built-in search space: seed-net, nb201, darts, chain or mobilenet.
    #[arg(long, default_value = "seed-net")]
    pub space: String,
    /// A space file (JSON, see docs/space-files.md) instead of a built-in space.
    #[arg(long, conflicts_with = "space")]
    pub space_file: Option<PathBuf>,
    /// Channels of the first stage (nb201: C, default 16; darts: C, default 16).
    #[arg(long)]
    pub channels: Option<usize>,
    /// nb201: cells per stage N (default 5); darts: number of cells (default 8).
    #[arg(long)]
    pub cells: Option<usize>,
}

/// Most `--channels` the nb201 and darts spaces take.
pub const MAX_CHANNELS: usize = 1024;
/// Most `--cells` the nb201 (a stage) and darts spaces take.
pub const MAX_CELLS: usize = 100;

impl SpaceArgs {
    /// The space these options name, built for data of the given shape (a space file's
    /// size bound taken at the default batch).
    pub fn resolve(&self, input: InputSpec) -> Result<Box<dyn Space>> {
        self.resolve_for_batch(input, nas_core::space::file::DEFAULT_BATCH)
    }

    /// [`SpaceArgs::resolve`] for training at `batch`: a space file's network must fit
    /// the memory bound with that many images' activations.
    pub fn resolve_for_batch(&self, input: InputSpec, batch: usize) -> Result<Box<dyn Space>> {
        if let Some(f) = &self.space_file {
            // Before, they were taken without a word (and a search recorded them).
            if self.channels.is_some() || self.cells.is_some() {
                bail!(
                    "--channels/--cells apply to the nb201 and darts spaces, not a space file \
                     ({}): its layers give their own widths and depth",
                    f.display()
                );
            }
            if !f.exists() {
                bail!("--space-file {}: no such file", f.display());
            }
            let shape = [input.channels, input.height, input.width];
            let s = FileSpace::load_for_batch(f, shape, input.classes, batch)
                .map_err(anyhow::Error::msg)?;
            return Ok(Box::new(s));
        }
        let sized = matches!(self.space.as_str(), "nb201" | "darts");
        if !sized && (self.channels.is_some() || self.cells.is_some()) {
            bail!(
                "--channels/--cells apply to the nb201 and darts spaces, not `{}`",
                self.space
            );
        }
        // Far past the papers' settings (nb201: 16 channels, 5 cells a stage; DARTS: 16
        // or 36 channels, 8 or 20 cells), and within what a supernet of them can hold:
        // `--cells 100000` grew memory without bound until the process aborted.
        for (flag, v, most) in [
            ("--channels", self.channels, MAX_CHANNELS),
            ("--cells", self.cells, MAX_CELLS),
        ] {
            match v {
                Some(0) => bail!("{flag} 0: must be at least 1"),
                Some(n) if n > most => bail!("{flag} {n}: at most {most}"),
                _ => {}
            }
        }
        if sized {
            builtin::check_input(&self.space, input).map_err(anyhow::Error::msg)?;
        }
        Ok(match self.space.as_str() {
            "nb201" => builtin::nb201(self.channels.unwrap_or(16), self.cells.unwrap_or(5), input),
            "darts" => {
                let mut d = DartsSpace::new(input.channels, input.classes);
                d.c = self.channels.unwrap_or(d.c);
                d.layers = self.cells.unwrap_or(d.layers);
                Box::new(d)
            }
            name => builtin::by_name(name, input).map_err(anyhow::Error::msg)?,
        })
    }

    /// The name to show for the space.
    pub fn display(&self) -> String {
        match &self.space_file {
            Some(f) => f.display().to_string(),
            None => self.space.clone(),
        }
    }
}

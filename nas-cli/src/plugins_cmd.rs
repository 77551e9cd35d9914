//! `nas plugins`: the strategy plugins the host finds, and why it refuses others.

use crate::host::{discover_all, search_dirs};
use anyhow::Result;
use clap::Args;
use nas_strategies::abi::ABI_VERSION;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct PluginsArgs {
    /// Extra directories to look for plugins in (before NAS_PLUGIN_PATH and the binary's).
    #[arg(long)]
    pub plugin_dir: Vec<PathBuf>,
}

pub fn plugins(a: PluginsArgs) -> Result<()> {
    let dirs = search_dirs(&a.plugin_dir);
    let d = discover_all(&dirs);
    println!(
        "{:<12} {:<9} {:<9} {:<4} path",
        "name", "version", "kind", "ABI"
    );
    for p in &d.plugins {
        println!(
            "{:<12} {:<9} {:<9} {:<4} {}",
            p.name,
            p.version,
            p.kind_name(),
            ABI_VERSION,
            p.path.display()
        );
    }
    for (p, why) in &d.rejected {
        println!("rejected {}: {why}", p.display());
    }
    if d.plugins.is_empty() {
        println!(
            "no plugins found in {}; build them with `cargo build --release --workspace`",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

//! `nas spaces`: what spaces there are and what each lets a search choose.

use crate::space_args::SpaceArgs;
use anyhow::Result;
use clap::Args;
use nas_core::space::builtin::{InputSpec, NAMES};
use nas_core::space::cost::cost;
use nas_core::space::{arch, describe, fixed, ChoiceKind, Supernet};
use nas_core::Rng;

#[derive(Args, Debug)]
pub struct SpacesArgs {
    /// Show one space's choices (as JSON with --json); naming a space with --space or
    /// --space-file shows it too.
    #[arg(long)]
    pub show: bool,
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Input channels, size and classes to build for (default: Fashion-MNIST's 1x28x28, 10).
    #[arg(long, num_args = 3, value_names = ["C", "SIZE", "CLASSES"])]
    pub input: Option<Vec<usize>>,
    /// Print the choices as JSON.
    #[arg(long)]
    pub json: bool,
    /// Whether `--space` was given (then that space is shown, as with `--show`).
    #[arg(skip)]
    pub named: bool,
}

pub fn run(a: SpacesArgs) -> Result<()> {
    let input = match &a.input {
        Some(v) => InputSpec {
            channels: v[0],
            height: v[1],
            width: v[1],
            classes: v[2],
        },
        None => InputSpec {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        },
    };
    // Naming one space (--space or --space-file) shows it, as --show does.
    let show = a.show || a.named || a.space.space_file.is_some();
    let names: Vec<String> = if show {
        vec![a.space.display()]
    } else {
        NAMES.iter().map(|s| s.to_string()).collect()
    };
    for name in names {
        let mut sa = a.space.clone();
        if sa.space_file.is_none() {
            sa.space = name.clone();
        }
        let space = sa.resolve(input)?;
        let choices = describe(space.as_ref());
        if a.json {
            println!("{}", serde_json::to_string_pretty(&choices)?);
            continue;
        }
        let log10 = arch::log10_size(&choices);
        let supernet = Supernet::build(space.as_ref(), false, 0).err();
        let sample = arch::random(&choices, &mut Rng::new(0));
        let c = cost(
            fixed(space.as_ref(), &sample, 0)?.as_ref(),
            [input.channels, input.height, input.width],
        );
        println!(
            "{name}: {}, about 10^{log10:.1} architectures, supernet: {}, e.g. {} params, {:.1} MMACs",
            crate::count(choices.len(), "choice"),
            if supernet.is_none() { "yes" } else { "no" },
            c.params,
            c.macs as f64 / 1e6
        );
        if let (Some(why), true) = (&supernet, show) {
            // Why one-shot strategies cannot search it.
            println!("  no supernet (one-shot strategies cannot search it): {why}");
        }
        if show {
            for ch in &choices {
                let kind = match &ch.kind {
                    ChoiceKind::Layer { .. } => "LayerChoice",
                    ChoiceKind::Input { reduce, .. } => match reduce {
                        nas_core::space::Reduce::Sum => "InputChoice (sum)",
                        nas_core::space::Reduce::Mean => "InputChoice (mean)",
                        nas_core::space::Reduce::Concat => "InputChoice (concat)",
                    },
                    ChoiceKind::Value { .. } => "ValueChoice",
                    ChoiceKind::Repeat { .. } => "Repeat",
                };
                let what = format!("{kind}: {}", arch::expected(ch));
                println!("  {:<24} {what}", ch.label);
            }
        }
    }
    Ok(())
}

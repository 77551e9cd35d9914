//! The spaces built into `nas`, each an ordinary `Space`.

pub mod chain;
pub mod darts;
pub mod mobilenet;
pub mod nb201;
pub mod seed;

use super::Space;

/// The shape of the data a space is built for.
#[derive(Clone, Copy, Debug)]
pub struct InputSpec {
    pub channels: usize,
    pub size: usize,
    pub classes: usize,
}

/// Names of the built-in spaces.
pub const NAMES: &[&str] = &["seed-net", "nb201", "darts", "chain", "mobilenet"];

/// A built-in space by name, for data of the given shape.
pub fn by_name(name: &str, input: InputSpec) -> Result<Box<dyn Space>, String> {
    match name {
        "seed-net" => Ok(Box::new(seed::SeedSpace {
            in_channels: input.channels,
            classes: input.classes,
        })),
        "nb201" => Ok(nb201(16, 5, input)),
        "darts" => Ok(Box::new(darts::DartsSpace::new(
            input.channels,
            input.classes,
        ))),
        "chain" => Ok(Box::new(chain::ChainSpace::new(
            input.channels,
            input.classes,
        ))),
        "mobilenet" => Ok(Box::new(mobilenet::MobileNetSpace::new(
            input.channels,
            input.classes,
            input.size,
        ))),
        _ => Err(format!(
            "unknown space `{name}` (built in: {})",
            NAMES.join(", ")
        )),
    }
}

/// The NAS-Bench-201 space with `c` channels in the first stage and `n` cells per stage
/// (the benchmark uses c = 16, n = 5), for data of the given shape.
pub fn nb201(c: usize, n: usize, input: InputSpec) -> Box<dyn Space> {
    Box::new(nb201::Nb201Space {
        c,
        n,
        in_channels: input.channels,
        classes: input.classes,
    })
}

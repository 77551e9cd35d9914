//! The spaces built into `nas`, each an ordinary `Space`.

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
pub const NAMES: &[&str] = &["seed-net"];

/// A built-in space by name, for data of the given shape.
pub fn by_name(name: &str, input: InputSpec) -> Result<Box<dyn Space>, String> {
    match name {
        "seed-net" => Ok(Box::new(seed::SeedSpace {
            in_channels: input.channels,
            classes: input.classes,
        })),
        _ => Err(format!("unknown space `{name}` (built in: {})", NAMES.join(", "))),
    }
}

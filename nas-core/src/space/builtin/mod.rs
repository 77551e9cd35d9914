//! The spaces built into `nas`, each an ordinary `Space`.

pub mod chain;
pub mod darts;
pub mod mobilenet;
pub mod nb201;
pub mod seed;

use super::Space;

/// The shape of the data a space is built for: images of `channels` x `height` x
/// `width`, in `classes` classes.
#[derive(Clone, Copy, Debug)]
pub struct InputSpec {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
}

/// Names of the built-in spaces.
pub const NAMES: &[&str] = &["seed-net", "nb201", "darts", "chain", "mobilenet"];

/// The smallest image side the built-in space `name` takes: 4 for `seed-net` (two 2x2
/// max-pools), 1 for the others (their strided ops round up, so any side works).
pub fn min_size(name: &str) -> usize {
    match name {
        "seed-net" => seed::MIN_SIZE,
        _ => 1,
    }
}

/// Checks that the built-in space `name` can take data of shape `input`; the error names
/// the space, the smallest image it takes and the image it was given.
pub fn check_input(name: &str, input: InputSpec) -> Result<(), String> {
    let min = min_size(name);
    if input.height < min || input.width < min {
        return Err(format!(
            "space `{name}` needs images of at least {min}x{min} pixels, got {}x{} \
             (height x width)",
            input.height, input.width
        ));
    }
    if input.channels == 0 || input.classes == 0 {
        return Err(format!(
            "space `{name}` needs at least one input channel and one class, got {} and {}",
            input.channels, input.classes
        ));
    }
    Ok(())
}

/// A built-in space by name, for data of the given shape (checked by [`check_input`]).
pub fn by_name(name: &str, input: InputSpec) -> Result<Box<dyn Space>, String> {
    if NAMES.contains(&name) {
        check_input(name, input)?;
    }
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
            input.height.max(input.width),
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

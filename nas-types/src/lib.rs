//! The plain data that the engine (`nas-core`), the host and strategy plugins share:
//! choice points, architectures and their validation, metrics, and the seeded random
//! generator. No tensors: a plugin that links the SDK links only this.

pub mod arch;
mod choice;
pub mod json;
pub mod metrics;
pub mod rng;

pub use arch::{ArchError, Architecture};
pub use choice::{binomial, Choice, ChoiceKind, Reduce};
pub use metrics::{config_limits, show_limits, Metrics, OpCost, COSTS, LIMIT_FIELDS};
pub use rng::Rng;

/// The tap point of a network's features: the pooled representation its classifier
/// reads (every built-in space marks it; BossNAS's last block is read there).
pub const FEATURES: &str = "features";

//! The strategy SDK. A strategy is a shared library exporting two C symbols:
//! `nas_plugin_abi_version` (checked first) and `nas_plugin_table` (a `#[repr(C)]` table
//! of entry points). Only plain data crosses the boundary: JSON bytes and status codes.
//! Plugin authors implement the safe [`Strategy`] trait and call [`export_strategy!`]
//! (or [`oneshot::EpochStrategy`] and `export_one_shot!`); the `nas` host loads the
//! libraries and drives them. The SDK depends on `nas-types` (plain data) only, so a
//! plugin links no tensor engine unless it asks for one.

pub mod abi;
pub mod choices;
pub mod decisions;
pub mod observed;
pub mod oneshot;
pub mod oneshot_abi;
pub mod pareto;
#[cfg(feature = "testing")]
pub mod testing;

pub use abi::Costs;
/// What an architecture decides in a space: which choices it makes (repeats' blocks, the
/// edges a node picks), validation, and the space's size.
pub use nas_types::arch;
pub use nas_types::arch::validate;
pub use nas_types::{
    config_limits, show_limits, ArchError, Architecture, Choice, ChoiceKind, Metrics, OpCost,
    Reduce, Rng, LIMIT_FIELDS,
};
pub use serde_json::{self, json, Value};

use serde::{Deserialize, Serialize};

/// What a strategy is created with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Setup {
    /// The space's choices, in definition order.
    pub space: Vec<Choice>,
    /// The strategy's own options (`--config` JSON); `{}` when none.
    pub config: Value,
    pub seed: u64,
    /// The number of trials the search will run.
    pub budget: usize,
}

/// A multi-trial search strategy (ask/tell). Several asks may be in flight before their
/// tells arrive, and tells may come in any order.
pub trait Strategy: Send {
    /// Builds the strategy; a bad `setup.config` is an error naming the field.
    fn new(setup: &Setup) -> Result<Self, String>
    where
        Self: Sized;
    /// Proposes the next architecture, or `None` when the strategy has nothing left
    /// (a grid that is exhausted).
    fn ask(&mut self) -> Result<Option<Architecture>, String>;
    /// [`ask`](Self::ask), where the host can also tell the costs of any architecture of
    /// the space before it is evaluated ([`Costs::metrics`]: parameters, multiply-adds,
    /// latency, activations; no accuracy). A strategy that filters candidates by a
    /// device budget (DPP-Net) overrides this; the default ignores the costs. The host
    /// calls this instead of `ask` when it has a cost model (every `nas search` and
    /// `nas bench-strategies` does). `costs` is valid for this call only.
    fn ask_costed(&mut self, costs: &Costs) -> Result<Option<Architecture>, String> {
        let _ = costs;
        self.ask()
    }
    /// Reports the metrics of an architecture this strategy proposed.
    fn tell(&mut self, arch: &Architecture, metrics: &Metrics) -> Result<(), String>;
    /// The strategy's whole state, so a search resumes where it stopped.
    fn save(&self) -> Result<Value, String>;
    /// Restores what `save` returned (on a strategy freshly made with the same setup).
    fn load(&mut self, state: Value) -> Result<(), String>;
}

/// A random architecture of the space: every choice uniform (a repeat's scoped choices
/// where the drawn depth builds them), so uniform over architectures only where the
/// space has no `Repeat`.
pub fn random_architecture(space: &[Choice], rng: &mut Rng) -> Architecture {
    nas_types::arch::random(space, rng)
}

/// Checks that a strategy's config is a JSON object (or absent) holding only the
/// fields `known` and the host's hard limits ([`LIMIT_FIELDS`], which every strategy
/// takes: the host applies them); the error names the stray field and the options.
pub fn check_config_fields(config: &Value, strategy: &str, known: &[&str]) -> Result<(), String> {
    match config {
        Value::Null => Ok(()),
        Value::Object(m) => match m
            .keys()
            .find(|k| !known.contains(&k.as_str()) && !LIMIT_FIELDS.contains(&k.as_str()))
        {
            Some(k) if known.is_empty() => Err(format!(
                "config field `{k}` is not an option of {strategy} (it takes only the \
                 host's hard limits: {})",
                LIMIT_FIELDS.join(", ")
            )),
            Some(k) => Err(format!(
                "config field `{k}` is not an option of {strategy} (options: {}; and the \
                 host's hard limits: {})",
                known.join(", "),
                LIMIT_FIELDS.join(", ")
            )),
            None => Ok(()),
        },
        v => Err(format!("config must be a JSON object, got {v}")),
    }
}

/// A count in a config that must be at least 1, with a default.
pub fn config_positive(config: &Value, field: &str, default: usize) -> Result<usize, String> {
    let v: usize = config_field(config, field, default)?;
    if v == 0 {
        return Err(format!(
            "config field `{field}`: 0 is not valid (must be at least 1)"
        ));
    }
    Ok(v)
}

/// The most members a strategy's population may hold (a stated cap: past it a
/// population is a way of never finishing, not a search).
pub const MAX_POPULATION: usize = 100_000;

/// A count in a config with a default; it must lie in `min..=max` (a stated cap, or
/// what the budget, the population or the data allow), or the error names the field,
/// its value and the allowed range.
pub fn config_count(
    config: &Value,
    field: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, String> {
    let v: usize = config_field(config, field, default)?;
    check_count(field, v, min, max)
}

/// `v`, the value of count `field`, if it lies in `min..=max`; else an error naming the
/// field, the value and the allowed range.
pub fn check_count(field: &str, v: usize, min: usize, max: usize) -> Result<usize, String> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "config field `{field}`: {v} is out of range (allowed {min}..={max})"
        ))
    }
}

/// A learning rate in a config: a finite number in (0, 1], with a default. Past 1 an
/// Adam or SGD step can carry weights to infinity in a few steps, and a state holding
/// NaN cannot be saved as JSON and loaded again.
pub fn config_rate(config: &Value, field: &str, default: f32) -> Result<f32, String> {
    let v: f32 = config_field(config, field, default)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!(
            "config field `{field}`: {v} is not valid (must be in (0, 1])"
        ))
    }
}

/// An error when any of `values` is NaN or infinite: `what` (for example "the
/// controller's weights") diverged, and `hint` says which setting to lower.
pub fn check_finite(values: &[f32], what: &str, hint: &str) -> Result<(), String> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what} diverged (value {i} is {}); {hint}",
            values[i]
        )),
    }
}

/// A probability in a config (in [0, 1]), with a default; else an error naming the field
/// and the value.
pub fn config_probability(config: &Value, field: &str, default: f64) -> Result<f64, String> {
    let v: f64 = config_field(config, field, default)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!(
            "config field `{field}`: {v} is not valid (must be in [0, 1])"
        ));
    }
    Ok(v)
}

/// A config field with a default, or an error naming the field and the bad value.
pub fn config_field<T: serde::de::DeserializeOwned + Serialize>(
    config: &Value,
    field: &str,
    default: T,
) -> Result<T, String> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => {
            let t: T = serde_json::from_value(v.clone())
                .map_err(|e| format!("config field `{field}`: {v} is not valid ({e})"))?;
            // A finite number past a 32-bit float's range reads as infinity, which the
            // field's own check would then show instead of the number given.
            if v.is_number() && serde_json::to_value(&t).is_ok_and(|r| r.is_null()) {
                return Err(format!(
                    "config field `{field}`: {v} is not valid (out of range for a 32-bit \
                     float, at most about 3.4e38)"
                ));
            }
            Ok(t)
        }
    }
}

/// Exports a [`Strategy`] as a plugin: `export_strategy!(MyStrategy, "name", "0.1.0");`
/// in a crate built as a `cdylib`.
#[macro_export]
macro_rules! export_strategy {
    ($ty:ty, $name:expr, $version:expr) => {
        #[no_mangle]
        pub extern "C" fn nas_plugin_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn nas_plugin_table() -> *const $crate::abi::PluginTable {
            static NAME: &str = concat!($name, "\0");
            static VERSION: &str = concat!($version, "\0");
            static TABLE: $crate::abi::PluginTable = $crate::abi::PluginTable {
                name: NAME.as_ptr() as *const ::std::os::raw::c_char,
                version: VERSION.as_ptr() as *const ::std::os::raw::c_char,
                kind: $crate::abi::KIND_ASK_TELL,
                create: $crate::abi::create::<$ty>,
                destroy: $crate::abi::destroy::<$ty>,
                ask: $crate::abi::ask::<$ty>,
                ask_costed: $crate::abi::ask_costed::<$ty>,
                tell: $crate::abi::tell::<$ty>,
                save: $crate::abi::save::<$ty>,
                load: $crate::abi::load::<$ty>,
                free_buf: $crate::abi::free_buf,
            };
            &TABLE
        }
    };
}

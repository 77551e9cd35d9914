//! Wall-clock timing of a piece of work (kept with the kernels, whose CPU backend
//! measures its own peaks the same way).

pub use nas_kernels::timing::{fastest_ms, median_ms};

//! Fixed networks built into `nas`.

pub mod seed;

//! The engine's unit tests, outside the library so that `cargo test` builds it once
//! (a library's own tests compile the whole crate a second time). They reach internals
//! made public for them (`#[doc(hidden)]` where they are not API).

mod buffer;
mod data;
mod data_batches;
mod data_cifar;
mod data_idx;
mod data_source;
mod device;
mod evaluate;
mod experiment;
mod nn;
mod optim;
mod profile;
mod space_builtin_nb201;
mod space_cost;
mod space_mixed;
mod tensor;
pub mod testutil;
mod timing;
mod trace;

//! `nas-core`: tensors, reverse-mode autodiff, layers, optimisers, data and training.

pub mod autodiff;
pub mod buffer;
pub mod data;
pub mod device;
pub mod evaluate;
pub mod experiment;
pub mod io;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod profile;
pub use nas_types::{json, rng};
pub mod space;
pub mod tensor;
pub mod timing;
pub mod trace;
pub mod train;

pub use ops::ConvOpts;
pub use rng::Rng;
pub use tensor::{no_grad, Saved, Tensor};

//! nas-core's integration tests, one binary (each module was a binary of its own; one
//! links the engine once). `device_parity` keeps its own binary, since it counts the
//! process's transfers, and so does `cost_model`, whose latency check wants the cores.

mod gradcheck;
mod nb201;
mod space_file;
mod spaces;
mod spaces_real_data;
mod supernet;
mod torch_parity;
mod unit;

//! nas-cli's end-to-end tests: the real `nas` binary run as a user runs it, and the
//! trainer in process. One test binary, one module per theme: each binary of a workspace
//! links the whole engine, and one binary lets the harness run the long tests of
//! different themes side by side instead of one theme's tail alone.

mod common;

mod anywhere_cli;
mod bad_plugins;
mod bench_cli;
mod chaos;
mod darts_export;
mod data_options_cli;
mod fixed_subset;
mod logging_cli;
mod oneshot_cli;
mod onnx_cli;
mod profile_cli;
mod rank_check;
mod report_html;
mod report_plots;
mod rough_edges;
mod search_cli;
mod sizes_cli;
mod slurm_cli;
mod slurm_cluster;
mod train_cli;
mod trainer_bounds;
mod transfer;
mod trial_seed;
mod unit;
mod user_input;

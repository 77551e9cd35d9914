//! The host's unit tests, outside the library so that `cargo test` builds it once (a
//! library's or a binary's own tests compile the whole crate a second time). They reach
//! the command modules' internals, public for them.

mod app;
mod arch_graph;
mod augment;
mod bench_strategies_cmd;
mod data_args;
mod distill;
mod elf;
mod hypernet;
mod path_cost;
mod plot;
mod rank_check_cmd;
mod report_cmd;
mod report_html;
mod schedule;
mod search_args;
mod slurm;
mod spans;
mod ssl;

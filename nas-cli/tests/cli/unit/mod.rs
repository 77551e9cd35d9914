//! The host's unit tests, outside the library so that `cargo test` builds it once (a
//! library's or a binary's own tests compile the whole crate a second time). They reach
//! the command modules' internals, public for them.

mod app;
mod arch_graph;
mod augment;
mod bench_strategies_cmd;
mod checkpoint;
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

/// A NAS-Bench-201 space of one cell a stage and `c` channels in its first stage, on
/// `channels` x `side` x `side` images of 10 classes: a supernet small enough to train
/// in a unit test.
pub fn small_nb201(c: usize, channels: usize, side: usize) -> Box<dyn nas_core::space::Space> {
    let input = nas_core::space::builtin::InputSpec {
        channels,
        height: side,
        width: side,
        classes: 10,
    };
    nas_core::space::builtin::nb201(c, 1, input)
}

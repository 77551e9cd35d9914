//! `nas`: the command-line host. Trains networks, runs searches (multi-trial and
//! one-shot), resumes, exports, retrains, reports, profiles and benchmarks.

fn main() {
    nas_cli::app::main();
}

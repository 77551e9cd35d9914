//! AFL++ harness of the `journal` fuzz target ([`nas_fuzz::journal`]).

fn main() {
    afl::fuzz!(|data: &[u8]| nas_fuzz::journal(data));
}

//! AFL++ harness of the `idx` fuzz target ([`nas_fuzz::idx`]).

fn main() {
    afl::fuzz!(|data: &[u8]| nas_fuzz::idx(data));
}

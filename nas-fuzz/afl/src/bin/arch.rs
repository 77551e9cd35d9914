//! AFL++ harness of the `arch` fuzz target ([`nas_fuzz::arch`]).

fn main() {
    afl::fuzz!(|data: &[u8]| nas_fuzz::arch(data));
}

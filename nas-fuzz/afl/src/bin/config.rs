//! AFL++ harness of the `config` fuzz target ([`nas_fuzz::config`]).

fn main() {
    afl::fuzz!(|data: &[u8]| nas_fuzz::config(data));
}

//! AFL++ harness of the `plugin` fuzz target ([`nas_fuzz::plugin`]).

fn main() {
    afl::fuzz!(|data: &[u8]| nas_fuzz::plugin(data));
}

//! AFL++ harness of the `cifar` fuzz target ([`nas_fuzz::cifar`]).

fn main() {
    afl::fuzz!(|data: &[u8]| nas_fuzz::cifar(data));
}

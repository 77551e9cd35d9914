//! AFL++ harness of the `safetensors` fuzz target ([`nas_fuzz::safetensors`]).

fn main() {
    afl::fuzz!(|data: &[u8]| nas_fuzz::safetensors(data));
}

//! AFL++ harness of the `space_file` fuzz target ([`nas_fuzz::space_file`]).

fn main() {
    afl::fuzz!(|data: &[u8]| nas_fuzz::space_file(data));
}

//! AFL++ harness of the `nb201_csv` fuzz target ([`nas_fuzz::nb201_csv`]).

fn main() {
    afl::fuzz!(|data: &[u8]| nas_fuzz::nb201_csv(data));
}

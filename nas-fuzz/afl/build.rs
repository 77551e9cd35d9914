//! As in nas-fuzz (see its build.rs): the thirteen strategy crates each define the
//! plugin entry points under the same C names, which these programs never call.

fn main() {
    println!("cargo:rustc-link-arg=-Wl,--allow-multiple-definition");
}

//! Every strategy crate exports the plugin entry points (`nas_plugin_abi_version`, its
//! table) under the same C names, as each is its own shared library. The fuzz targets
//! link all thirteen as Rust libraries into one program and never call those symbols,
//! so the linker is told to keep the first definition of each instead of failing.

fn main() {
    println!("cargo:rustc-link-arg=-Wl,--allow-multiple-definition");
}

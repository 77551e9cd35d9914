//! Writes `nas-onnx/src/onnx.rs`, the ONNX message types, from `nas-onnx/proto/onnx.proto3`
//! with prost-build; protox parses the proto, so no `protoc` is needed.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let proto = root.join("proto");
    let files = protox::compile(["onnx.proto3"], [&proto]).unwrap_or_else(|e| {
        panic!("{}: {e}", proto.join("onnx.proto3").display());
    });
    let tmp = std::env::temp_dir().join(format!("nas-onnx-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("a temporary directory");
    prost_build::Config::new()
        .out_dir(&tmp)
        .compile_fds(files)
        .expect("prost-build");
    let code = std::fs::read_to_string(tmp.join("onnx.rs")).expect("prost-build's output");
    std::fs::remove_dir_all(&tmp).ok();
    let header =
        "// The ONNX message types, generated from proto/onnx.proto3 by nas-onnx/codegen\n\
                  // (prost-build with protox). Do not edit: change the proto and rerun\n\
                  // `cargo run --manifest-path nas-onnx/codegen/Cargo.toml`.\n\n";
    let out = root.join("src").join("onnx.rs");
    std::fs::write(&out, format!("{header}{code}")).expect("writing src/onnx.rs");
    println!("wrote {}", out.display());
}

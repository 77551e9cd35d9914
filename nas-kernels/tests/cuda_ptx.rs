#![cfg(feature = "cuda")]
//! Every CUDA kernel compiles to PTX with NVRTC for compute capabilities 8.0 and 9.0 and
//! assembles with `ptxas` for sm_80 and sm_90, on a machine without a GPU. CI installs
//! NVRTC and ptxas from the `nvidia-cuda-nvrtc-cu12` / `nvidia-cuda-nvcc-cu12` wheels and
//! sets `NAS_REQUIRE_CUDA_TOOLS=1`, which turns a missing tool into a failure; elsewhere
//! the test says what it skipped.

use nas_kernels::cuda::{compile_ptx, nvrtc_available, KERNELS};
use std::path::PathBuf;
use std::process::Command;

fn required() -> bool {
    std::env::var_os("NAS_REQUIRE_CUDA_TOOLS").is_some()
}

/// `NAS_PTXAS`, or `ptxas` on PATH.
fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NAS_PTXAS") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("ptxas"))
        .find(|p| p.is_file())
}

#[test]
fn every_cuda_kernel_compiles_to_ptx_and_assembles_for_sm80_and_sm90() {
    if !nvrtc_available() {
        assert!(
            !required(),
            "NAS_REQUIRE_CUDA_TOOLS is set but libnvrtc.so.12 is not on LD_LIBRARY_PATH"
        );
        nas_kernels::report_skip("NVRTC not found (see .ci/run for how CI provides it)");
        return;
    }
    let assembler = ptxas();
    assert!(
        assembler.is_some() || !required(),
        "NAS_REQUIRE_CUDA_TOOLS is set but ptxas is neither NAS_PTXAS nor on PATH"
    );
    let dir = std::env::temp_dir().join(format!("nas-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (arch, sm) in [("compute_80", "sm_80"), ("compute_90", "sm_90")] {
        let ptx = compile_ptx(arch).unwrap_or_else(|e| panic!("{e}"));
        for k in KERNELS {
            assert!(
                ptx.contains(&format!(".entry {k}(")),
                "{arch}: kernel {k} missing from the PTX"
            );
        }
        let Some(ptxas) = &assembler else {
            nas_kernels::report_skip(&format!(
                "{arch}: PTX ok; ptxas not found, assembling skipped"
            ));
            continue;
        };
        let src = dir.join(format!("nas-{sm}.ptx"));
        let out = dir.join(format!("nas-{sm}.cubin"));
        std::fs::write(&src, &ptx).unwrap();
        let o = Command::new(ptxas)
            .arg(format!("-arch={sm}"))
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", ptxas.display()));
        assert!(
            o.status.success(),
            "ptxas -arch={sm} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let size = std::fs::metadata(&out).unwrap().len();
        assert!(size > 1000, "{sm}: cubin of {size} bytes");
        println!(
            "{sm}: {} kernels, PTX {} bytes, cubin {size} bytes",
            KERNELS.len(),
            ptx.len()
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The CUBINs the backend loads where NVRTC knows the GPU: ELF images for sm_80 and
/// sm_90 that name every kernel (the symbol names sit in the string table).
#[test]
fn every_cuda_kernel_compiles_to_a_cubin_for_sm80_and_sm90() {
    if !nvrtc_available() {
        assert!(
            !required(),
            "NAS_REQUIRE_CUDA_TOOLS is set but NVRTC is missing"
        );
        nas_kernels::report_skip("NVRTC not found");
        return;
    }
    for sm in ["sm_80", "sm_90"] {
        let bin = nas_kernels::cuda::compile_cubin(sm).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&bin[..4], b"\x7fELF", "{sm}: not an ELF image");
        for k in KERNELS {
            let found = bin
                .windows(k.len() + 2)
                .any(|w| w[0] == 0 && w[k.len() + 1] == 0 && &w[1..=k.len()] == k.as_bytes());
            assert!(found, "{sm}: kernel {k} missing from the CUBIN");
        }
    }
    assert!(nas_kernels::cuda::compile_cubin("sm_1").is_err());
}

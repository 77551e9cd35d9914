//! `--device cpu|wgpu|cuda[:N]`: which backend the kernels run on.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Selects the backend for this process. `wgpu` and `cuda[:N]` route convolutions,
/// linear layers, pooling, batch norm, log-softmax, the NLL loss and the mixed ops'
/// weighted sums (forward and backward) to the device; the elementwise ops and the
/// optimiser stay on the CPU, and tensors live in host memory (each call copies).
pub fn select(device: &str) -> Result<()> {
    const ROUTED: &str = "convolutions, linear layers, pooling, batch norm, log-softmax/NLL \
                          and mixed-op sums run there, everything else on the CPU";
    match device {
        "cpu" => {
            nas_kernels::accel::deactivate();
            Ok(())
        }
        "wgpu" => {
            let g = nas_kernels::accel::activate_wgpu()
                .map_err(|e| anyhow::anyhow!("--device wgpu: {e}"))?;
            eprintln!("device: wgpu on {}; {ROUTED}", g.adapter);
            Ok(())
        }
        d if d == "cuda" || d.starts_with("cuda:") => {
            let ordinal: usize = match d.strip_prefix("cuda:") {
                None => 0,
                Some(n) => n
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--device {d}: `{n}` is not a device number"))?,
            };
            let c = nas_kernels::accel::activate_cuda(ordinal)
                .map_err(|e| anyhow::anyhow!("--device {d}: {e}"))?;
            eprintln!(
                "device: cuda:{ordinal} on {} (sm_{}{}); {ROUTED}",
                c.name, c.compute_capability.0, c.compute_capability.1
            );
            Ok(())
        }
        d => bail!("--device {d}: expected cpu, wgpu, cuda or cuda:N"),
    }
}

#[derive(Args, Debug)]
pub struct CudaKernelsArgs {
    /// GPU architectures, comma-separated (sm_80 is A100, sm_90 is H100/H200).
    #[arg(long, value_delimiter = ',', default_value = "sm_80,sm_90")]
    pub arch: Vec<String>,
    /// Directory to write `nas-kernels-<arch>.cubin` into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// `nas cuda-kernels`: every kernel compiled with NVRTC to a CUBIN per architecture.
pub fn cuda_kernels(a: CudaKernelsArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for sm in &a.arch {
        if !sm.starts_with("sm_") || !sm[3..].chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("--arch {sm}: expected a real architecture such as sm_80 or sm_90");
        }
        let bin = nas_kernels::cuda::compile_cubin(sm)
            .map_err(|e| anyhow::anyhow!("--arch {sm}: {e}"))?;
        let path = a.out.join(nas_kernels::cuda::cubin_file_name(sm));
        std::fs::write(&path, &bin).with_context(|| format!("writing {}", path.display()))?;
        println!("{} ({} KiB)", path.display(), bin.len() / 1024);
    }
    Ok(())
}

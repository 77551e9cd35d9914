//! `--device cpu|wgpu|cuda[:N]`: which backend the kernels run on.

use anyhow::{bail, Result};

/// Selects the backend for this process. `wgpu` routes convolutions and linear layers
/// to the first Vulkan adapter (the rest of each step stays on the CPU); CUDA is checked
/// for a driver and device, and refused with the reason.
pub fn select(device: &str) -> Result<()> {
    match device {
        "cpu" => {
            nas_kernels::gpu::deactivate();
            Ok(())
        }
        "wgpu" => {
            let g =
                nas_kernels::gpu::activate().map_err(|e| anyhow::anyhow!("--device wgpu: {e}"))?;
            eprintln!(
                "device: wgpu on {}; convolutions and linear layers run there, everything \
                 else on the CPU",
                g.adapter
            );
            Ok(())
        }
        d if d == "cuda" || d.starts_with("cuda:") => {
            let ordinal: usize = match d.strip_prefix("cuda:") {
                None => 0,
                Some(n) => n
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--device {d}: `{n}` is not a device number"))?,
            };
            match nas_kernels::cuda::Cuda::new(ordinal) {
                Err(e) => bail!("--device {d}: {e}"),
                Ok(c) => bail!(
                    "--device {d}: found {}, and the CUDA kernels compile and run on it \
                     (scripts/gpu-check.sh), but tensors cannot live on a CUDA device yet, so \
                     training there is not available in this build",
                    c.name
                ),
            }
        }
        d => bail!("--device {d}: expected cpu, wgpu, cuda or cuda:N"),
    }
}

//! `--device cpu|wgpu|cuda[:N]`: which backend the kernels run on.

use anyhow::{bail, Result};

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

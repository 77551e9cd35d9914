//! `--device cpu|wgpu|cuda[:N]`: which backend the kernels run on.

use anyhow::{bail, Context, Result};
use clap::Args;
use nas_core::device::{cuda, Device};
use std::path::PathBuf;

/// The device `--device` names.
pub fn parse(device: &str) -> Result<Device> {
    device
        .parse()
        .map_err(|e| anyhow::anyhow!("--device {device}: {e}"))
}

/// Opens the device `--device` names and says what runs there (see
/// [`nas_core::device`]); the caller places its networks on it.
pub fn select(device: &str) -> Result<Device> {
    let d = parse(device)?;
    let what = d
        .select()
        .map_err(|e| anyhow::anyhow!("--device {device}: {e}"))?;
    if d != Device::Cpu {
        tracing::info!("device: {what}; {}", d.routed());
    }
    Ok(d)
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
/// Every architecture is checked and compiled before anything is written, so a
/// compiler that is missing leaves no empty directory behind.
pub fn cuda_kernels(a: CudaKernelsArgs) -> Result<()> {
    for sm in &a.arch {
        if !sm.starts_with("sm_") || !sm[3..].chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("--arch {sm}: expected a real architecture such as sm_80 or sm_90");
        }
    }
    let mut built = vec![];
    for sm in &a.arch {
        let bin =
            cuda::compile_cubin(sm).map_err(|e| anyhow::anyhow!("compiling for {sm}: {e}"))?;
        built.push((sm, bin));
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for (sm, bin) in built {
        let path = a.out.join(cuda::cubin_file_name(sm));
        std::fs::write(&path, &bin).with_context(|| format!("writing {}", path.display()))?;
        println!("{} ({} KiB)", path.display(), bin.len() / 1024);
    }
    Ok(())
}

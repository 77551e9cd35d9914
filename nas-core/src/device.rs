//! Where the kernels run: the CPU, or a device backend (wgpu, CUDA) chosen for this
//! process. The host and its commands go through this module instead of the kernel crate.
//!
//! Today a device runs the convolutions, linear layers, pooling, batch norm,
//! log-softmax/NLL and the mixed ops' weighted sums (forward and backward); everything
//! else runs on the CPU. On wgpu the forward results of convolution, pooling, batch norm
//! and log-softmax stay in device memory until the host reads them; elsewhere each
//! device call copies its operands over and its result back ([`transfers`] counts it).

pub use nas_kernels::accel::Peaks;
use nas_kernels::accel::{self, Accel};
pub use nas_kernels::transfer::{snapshot as transfers, Transfers};
use std::fmt;
use std::str::FromStr;

/// A backend a user can name with `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Wgpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
}

impl FromStr for Device {
    type Err = String;

    /// `cpu`, `wgpu`, `cuda` (device 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "wgpu" => Ok(Device::Wgpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse()
                    .map(Device::Cuda)
                    .map_err(|_| format!("`{n}` is not a device number")),
                None => Err(format!("`{s}`: expected cpu, wgpu, cuda or cuda:N")),
            },
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Wgpu => write!(f, "wgpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// What runs on a device today, for messages.
pub const ROUTED: &str = "convolutions, linear layers, pooling, batch norm, log-softmax/NLL \
                          and mixed-op sums run there, everything else on the CPU";

impl Device {
    /// Makes this the backend of the process from now on (opening the device on first
    /// use) and describes it.
    pub fn select(self) -> Result<String, String> {
        match self {
            Device::Cpu => {
                accel::deactivate();
                Ok("cpu".into())
            }
            Device::Wgpu => Ok(format!("wgpu on {}", accel::activate_wgpu()?.adapter)),
            Device::Cuda(n) => {
                let c = accel::activate_cuda(n)?;
                let (major, minor) = c.compute_capability;
                Ok(format!("cuda:{n} on {} (sm_{major}{minor})", c.name))
            }
        }
    }
}

/// The device backend in use, if any.
#[derive(Clone, Copy)]
pub struct Active(&'static dyn Accel);

/// The selected device backend, or None on the CPU.
pub fn active() -> Option<Active> {
    accel::active().map(Active)
}

impl Active {
    /// `"wgpu"` or `"cuda"`.
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }
    /// The device, for reports.
    pub fn describe(&self) -> String {
        self.0.describe()
    }
    /// Its peak f32 throughput and memory bandwidth.
    pub fn peaks(&self) -> Result<Peaks, String> {
        self.0.peaks()
    }
}

/// Checks `[m, k] x [k, n] -> [m, n]` operand lengths.
fn check_gemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &[f32]) -> Result<(), String> {
    if a.len() != m * k || b.len() != k * n || c.len() != m * n {
        return Err(format!(
            "gemm {m}x{k}x{n}: operands of {}, {} and {} values",
            a.len(),
            b.len(),
            c.len()
        ));
    }
    Ok(())
}

/// `c = a b` for `[m, k] x [k, n]` row-major matrices on the CPU, whatever device is
/// selected (benchmarks and the CPU's peak).
pub fn cpu_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) -> Result<(), String> {
    check_gemm(m, n, k, a, b, c)?;
    nas_kernels::cpu::gemm::sgemm(m, n, k, a, false, b, false, c, false, true);
    Ok(())
}

impl Active {
    /// `c = a b` on this device (operands copied over, the result back).
    pub fn gemm(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
    ) -> Result<(), String> {
        check_gemm(m, n, k, a, b, c)?;
        c.copy_from_slice(&self.0.matmul(m, n, k, a, false, b, false)?);
        Ok(())
    }
}

/// CUDA tooling that needs no GPU: availability probes and ahead-of-time kernels.
pub mod cuda {
    pub use nas_kernels::cuda::{
        compile_cubin, cubin_file_name, driver_available, nvrtc_available,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print_back() {
        for s in ["cpu", "wgpu", "cuda:0", "cuda:3"] {
            assert_eq!(s.parse::<Device>().unwrap().to_string(), s);
        }
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        for bad in ["gpu", "cuda:x", "cuda:", "CPU"] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_gemm_matches_a_naive_product_and_checks_lengths() {
        let (m, n, k) = (3, 5, 4);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 * 0.25).collect();
        let mut c = vec![0.0; m * n];
        cpu_gemm(m, n, k, &a, &b, &mut c).unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert!((c[i * n + j] - want).abs() < 1e-4);
            }
        }
        assert!(cpu_gemm(m, n, k, &a, &b, &mut c[1..]).is_err());
    }
}

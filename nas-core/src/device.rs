//! Where the kernels run: the CPU, or a device backend (wgpu, CUDA). The host and its
//! commands go through this module instead of the kernel crate.
//!
//! On wgpu and on CUDA a tensor lives in device memory: [`Device::place`] puts a
//! network's parameters and buffers there, an op runs on the device its operands are on (uploading
//! host operands, such as a batch, once), and its result, its gradients and the
//! optimiser's buffers stay there until the host reads them. Ops with no device kernel
//! (broadcasting, sums and permutes past 6 dimensions that do not merge) read their
//! operands back, run on the
//! CPU, and their results live on the device again. Nothing is routed process-wide:
//! networks on the CPU, on wgpu and on CUDA can train side by side; operands on two
//! devices are an error. [`transfers`] counts every copy.

use crate::nn::Module;
use crate::tensor::Tensor;
use nas_kernels::accel::{self, Accel};
pub use nas_kernels::accel::{Peaks, Place};
pub use nas_kernels::report_skip;
pub use nas_kernels::transfer::{snapshot as transfers, Transfers};
pub use nas_kernels::KernelError;
use std::fmt;
use std::str::FromStr;

/// The one device that tensors living on `places` (None: the host) share: None when all
/// are on the host; two different devices are an error naming both (an op runs on one
/// device, uploading host operands there).
pub fn one_place(places: impl IntoIterator<Item = Option<Place>>) -> Result<Option<Place>, String> {
    let mut on = places.into_iter().flatten();
    let Some(first) = on.next() else {
        return Ok(None);
    };
    match on.find(|&p| p != first) {
        Some(other) => Err(format!(
            "operands on two devices ({} and {})",
            first.name(),
            other.name()
        )),
        None => Ok(Some(first)),
    }
}

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

/// What runs on a device that keeps tensors in its memory (wgpu, CUDA), for messages.
pub const ON_DEVICE: &str = "activations, gradients, weights and SGD/Adam state stay in device \
                             memory; convolutions, linear layers, matrix products, pooling, \
                             batch norm, log-softmax/NLL, elementwise ops, sums over axes and \
                             permutes (up to 6 dimensions once merged), concatenation, slicing, \
                             dropout, mixed-op sums and the optimiser steps run there, shapes \
                             past that on the CPU";

impl Device {
    /// What runs on this device, for messages.
    pub fn routed(&self) -> &'static str {
        match self {
            Device::Cpu => "everything runs on the CPU",
            Device::Wgpu | Device::Cuda(_) => ON_DEVICE,
        }
    }
}

impl Device {
    /// Opens this device (on first use) and describes it. Nothing is routed to it:
    /// [`Device::place`] puts a network's parameters and buffers on it, and every op on
    /// them runs there.
    pub fn select(self) -> Result<String, KernelError> {
        match self {
            Device::Cpu => Ok("cpu".into()),
            Device::Wgpu => Ok(format!("wgpu on {}", accel::wgpu()?.adapter)),
            Device::Cuda(n) => {
                let c = accel::cuda(n)?;
                let (major, minor) = c.compute_capability;
                Ok(format!("cuda:{n} on {} (sm_{major}{minor})", c.name))
            }
        }
    }
}

impl Device {
    /// Puts the parameters and buffers (batch norm's running statistics) of `module` in
    /// this device's memory, so that its forward and backward passes, its gradients,
    /// its running statistics and its optimiser's state live and run there; on the CPU
    /// they are brought back to the host. A supernet's mixing weights, which are not
    /// tensors of its net, stay on the host.
    pub fn place(&self, module: &dyn Module) -> Result<(), String> {
        for (_, p) in crate::nn::state(module) {
            self.place_tensor(&p)?;
        }
        Ok(())
    }

    /// Puts `t`'s values in this device's memory (see [`Device::place`]).
    pub fn place_tensor(&self, t: &Tensor) -> Result<(), String> {
        match self {
            Device::Wgpu => t.upload_to(accel::wgpu_resident()?)?,
            Device::Cuda(n) => t.upload_to(accel::cuda_backend(*n)?.1)?,
            Device::Cpu => t.host_only(),
        }
        Ok(())
    }

    /// Whether `t` lives on this device (a host tensor on the CPU; on CUDA, on any GPU:
    /// a tensor does not record which).
    pub fn holds(&self, t: &Tensor) -> bool {
        matches!(
            (self, t.place()),
            (Device::Cpu, None)
                | (Device::Wgpu, Some(Place::Wgpu))
                | (Device::Cuda(_), Some(Place::Cuda))
        )
    }

    /// Waits until everything asked of this device so far has run (a benchmark's timing
    /// of work whose results stay there). Nothing to wait for on the CPU.
    pub fn finish(&self) -> Result<(), String> {
        match self {
            Device::Cpu => Ok(()),
            Device::Wgpu => Ok(accel::wgpu_resident()?.finish()?),
            Device::Cuda(n) => Ok(accel::cuda_backend(*n)?.1.finish()?),
        }
    }

    /// This device's backend (opened on first use), or None for the CPU.
    pub fn backend(&self) -> Result<Option<Active>, String> {
        Ok(match self {
            Device::Cpu => None,
            Device::Wgpu => {
                accel::wgpu()?;
                accel::Place::Wgpu.backend().map(|(a, _)| Active(a))
            }
            Device::Cuda(n) => Some(Active(accel::cuda_backend(*n)?.0)),
        })
    }
}

/// Panics with `msg`, a device call that failed mid-step (out of memory, past a limit of
/// the adapter), remembered so that [`failure`] can tell this panic from a bug (the
/// registry is `nas_kernels::failure`'s, which the CPU's buffer pool fails through when
/// host memory runs out).
pub(crate) fn fail(msg: String) -> ! {
    nas_kernels::failure::fail(msg)
}

/// Whether the devices this process opened still work after a failure: each finishes
/// what was asked of it (a wgpu stream whose submission failed reports that error from
/// then on; a device refusal made before recording, such as a binding past the adapter's
/// limit, leaves it working).
pub fn usable() -> Result<(), String> {
    for place in [Place::Wgpu, Place::Cuda] {
        if let Some((_, r)) = place.backend() {
            r.finish()?;
        }
    }
    Ok(())
}

/// Runs `f`, catching a device failure that unwinds out of it (see [`fail`]) as its
/// message; any other panic goes on unwinding.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|p| failure(&*p).unwrap_or_else(|| std::panic::resume_unwind(p)))
}

/// The message of the device failure a panic carries (`payload`, as a panic hook or
/// `catch_unwind` sees it), or None for any other panic: a host reports the first as an
/// error, and lets the second be the crash it is.
pub fn failure(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    nas_kernels::failure::failure(payload)
}

/// The device failure whose message an error's `text` carries (a plugin passes on what
/// its host call met), if any.
pub fn failure_within(text: &str) -> Option<String> {
    nas_kernels::failure::within(text)
}

impl Tensor {
    /// A copy of this tensor's values on `device` (this tensor itself where it lives
    /// there already): a batch or a constant moved in, or a result brought back with
    /// `Device::Cpu`. The copy is a new constant, not recorded for backward; a network's
    /// parameters move with [`Device::place`], which keeps them the same tensors.
    pub fn to(&self, device: &Device) -> Result<Tensor, String> {
        if device.holds(self) {
            return Ok(self.clone());
        }
        let t = self.detach();
        device.place_tensor(&t)?;
        Ok(t)
    }
}

/// A device backend, for reports and benchmarks.
#[derive(Clone, Copy)]
pub struct Active(&'static dyn Accel);

impl Active {
    /// `"cpu"`, `"wgpu"` or `"cuda"`.
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }
    /// The device, for reports.
    pub fn describe(&self) -> String {
        self.0.describe()
    }
    /// Its peak f32 throughput and memory bandwidth.
    pub fn peaks(&self) -> Result<Peaks, KernelError> {
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

/// The CPU backend, for reports: its description and its peaks (measured here).
pub fn cpu_backend() -> Active {
    Active(accel::cpu().0)
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

thread_local! {
    static TEST_DEVICE: std::cell::Cell<Device> = const { std::cell::Cell::new(Device::Cpu) };
}

/// The device the running [`test_device!`](crate::test_device) test is on (the CPU in
/// any other code): the test places its tensors there.
pub fn test_device() -> Device {
    TEST_DEVICE.with(|d| d.get())
}

/// Runs test `f` on `dev` for [`test_device!`](crate::test_device): skips it, saying
/// so, where the device is not there (a failure instead for wgpu under
/// `NAS_REQUIRE_WGPU`, and for CUDA where a driver is installed); a device that is
/// there but fails to open (its kernels do not build, a call fails) fails the test.
#[doc(hidden)]
pub fn run_test_on(dev: Device, f: fn()) {
    let required = match dev {
        Device::Cpu => true,
        Device::Wgpu => std::env::var_os("NAS_REQUIRE_WGPU").is_some(),
        Device::Cuda(_) => cuda::driver_available(),
    };
    match dev.select() {
        Err(e) if required || !skippable(&e) => panic!("{dev}: {e}"),
        Err(e) => {
            nas_kernels::report_skip(&format!("no {dev}: {e}"));
            return;
        }
        Ok(_) => {}
    }
    TEST_DEVICE.with(|d| d.set(dev));
    f();
}

/// Whether a test may skip a device that answered `e` when asked to open: only when
/// the device is not there ([`KernelError::Unavailable`]).
pub fn skippable(e: &KernelError) -> bool {
    matches!(e, KernelError::Unavailable(_))
}

/// Runs each named test function on the CPU, on wgpu and on CUDA: one `#[test]` per
/// function and device, in modules `cpu`, `wgpu` and `cuda`. A test reads its device
/// from [`test_device`] and places its tensors there.
#[macro_export]
macro_rules! test_device {
    ($($name:ident),* $(,)?) => {
        mod cpu {
            $(#[test] fn $name() {
                $crate::device::run_test_on($crate::device::Device::Cpu, super::$name)
            })*
        }
        mod wgpu {
            $(#[test] fn $name() {
                $crate::device::run_test_on($crate::device::Device::Wgpu, super::$name)
            })*
        }
        mod cuda {
            $(#[test] fn $name() {
                $crate::device::run_test_on($crate::device::Device::Cuda(0), super::$name)
            })*
        }
    };
}

/// CUDA tooling that needs no GPU: availability probes and ahead-of-time kernels.
pub mod cuda {
    pub use nas_kernels::cuda::{
        compile_cubin, cubin_file_name, driver_available, nvrtc_available,
    };
}

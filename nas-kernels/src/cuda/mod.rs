//! The CUDA backend's kernels: CUDA C sources compiled at run time with NVRTC (through
//! `cudarc`, loaded dynamically, so building needs no toolkit), cached per compute
//! capability, and launched on a device when a driver is present. A missing NVRTC or
//! driver library is an error, never a panic.
//!
//! What runs on a GPU today is the kernel set and the launch wrappers below, held
//! against the CPU backend by `cuda_equivalence` tests (which skip, saying so, where
//! there is no driver); tensors do not live on the device yet, so training does not.

use cudarc::driver::PushKernelArg;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DeviceRepr, LaunchConfig};
use cudarc::nvrtc::{CompileOptions, Ptx};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

/// Every kernel's CUDA C source.
pub const SOURCE: &str = include_str!("kernels.cu");

/// The kernels `SOURCE` defines, one per primitive of the CPU backend (plus the fused
/// mixed-op kernel and the optimiser updates).
pub const KERNELS: &[&str] = &[
    "unary_f32",
    "unary_backward_f32",
    "binary_f32",
    "reduce_to_f32",
    "weighted_sum_f32",
    "mix_kernels_f32",
    "sgemm_f32",
    "add_bias_f32",
    "channel_sum_f32",
    "im2col_f32",
    "col2im_f32",
    "depthwise_forward_f32",
    "depthwise_backward_input_f32",
    "depthwise_backward_weight_f32",
    "max_pool_forward_f32",
    "max_pool_backward_f32",
    "avg_pool_forward_f32",
    "avg_pool_backward_f32",
    "adaptive_avg_pool_forward_f32",
    "adaptive_avg_pool_backward_f32",
    "bn_stats_f32",
    "bn_apply_f32",
    "bn_backward_sums_f32",
    "bn_backward_input_f32",
    "log_softmax_f32",
    "log_softmax_backward_f32",
    "nll_f32",
    "nll_backward_f32",
    "sgd_f32",
    "adam_f32",
];

/// Runs `f`, turning a panic inside `cudarc` into an error.
fn guarded<R>(what: &str, f: impl FnOnce() -> Result<R, String>) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let m = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("{what}: {m}"))
    })
}

/// Whether the NVRTC library can be loaded.
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to open the library by its usual names.
    guarded("nvrtc", || {
        Ok(unsafe { cudarc::nvrtc::sys::is_culib_present() })
    })
    .unwrap_or(false)
}

/// Whether the CUDA driver library can be loaded (it says nothing about devices).
pub fn driver_available() -> bool {
    // SAFETY: only tries to open the library by its usual names.
    guarded("driver", || {
        Ok(unsafe { cudarc::driver::sys::is_culib_present() })
    })
    .unwrap_or(false)
}

/// Every kernel compiled to PTX for a virtual architecture (`"compute_80"`), cached.
pub fn compile_ptx(arch: &'static str) -> Result<String, String> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().unwrap().get(arch) {
        return Ok(p.clone());
    }
    if !nvrtc_available() {
        return Err(
            "NVRTC (libnvrtc.so.12) was not found: install the CUDA toolkit, or the \
                    nvidia-cuda-nvrtc-cu12 wheel and put its lib directory on LD_LIBRARY_PATH"
                .into(),
        );
    }
    let opts = CompileOptions {
        arch: Some(arch),
        name: Some("nas_kernels.cu".into()),
        ..Default::default()
    };
    let ptx = guarded("NVRTC", || {
        cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
            .map(|p| p.to_src())
            .map_err(|e| format!("compiling the nas kernels for {arch}: {e:?}"))
    })?;
    cache.lock().unwrap().insert(arch, ptx.clone());
    Ok(ptx)
}

/// Geometry of a convolution as the kernels take it (`struct ConvGeom`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvGeom {
    pub n: i32,
    pub cin: i32,
    pub h: i32,
    pub w: i32,
    pub cout: i32,
    pub kh: i32,
    pub kw: i32,
    pub sh: i32,
    pub sw: i32,
    pub ph: i32,
    pub pw: i32,
    pub dh: i32,
    pub dw: i32,
    pub groups: i32,
    pub oh: i32,
    pub ow: i32,
}

// SAFETY: plain `#[repr(C)]` integers, the layout of the CUDA struct.
unsafe impl DeviceRepr for ConvGeom {}

impl From<&crate::cpu::conv::Conv2d> for ConvGeom {
    fn from(p: &crate::cpu::conv::Conv2d) -> ConvGeom {
        let i = |v: usize| v as i32;
        ConvGeom {
            n: i(p.n),
            cin: i(p.cin),
            h: i(p.h),
            w: i(p.w),
            cout: i(p.cout),
            kh: i(p.kh),
            kw: i(p.kw),
            sh: i(p.sh),
            sw: i(p.sw),
            ph: i(p.ph),
            pw: i(p.pw),
            dh: i(p.dh),
            dw: i(p.dw),
            groups: i(p.groups),
            oh: i(p.out_h()),
            ow: i(p.out_w()),
        }
    }
}

/// Geometry of a pooling (`struct PoolGeom`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolGeom {
    pub planes: i32,
    pub h: i32,
    pub w: i32,
    pub kh: i32,
    pub kw: i32,
    pub sh: i32,
    pub sw: i32,
    pub ph: i32,
    pub pw: i32,
    pub oh: i32,
    pub ow: i32,
}

// SAFETY: plain `#[repr(C)]` integers, the layout of the CUDA struct.
unsafe impl DeviceRepr for PoolGeom {}

impl From<&crate::cpu::pool::Pool2d> for PoolGeom {
    fn from(p: &crate::cpu::pool::Pool2d) -> PoolGeom {
        let i = |v: usize| v as i32;
        PoolGeom {
            planes: i(p.n * p.c),
            h: i(p.h),
            w: i(p.w),
            kh: i(p.kh),
            kw: i(p.kw),
            sh: i(p.sh),
            sw: i(p.sw),
            ph: i(p.ph),
            pw: i(p.pw),
            oh: i(p.out_h()),
            ow: i(p.out_w()),
        }
    }
}

/// A CUDA device with the kernels loaded: host slices in, host vectors out (each call
/// copies; the device-resident tensor path is not built yet).
pub struct Cuda {
    pub ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    pub name: String,
    pub compute_capability: (i32, i32),
}

fn err<E: std::fmt::Debug>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e:?}")
}

/// Blocks of 256 threads covering `n` elements (grid-stride kernels), capped.
fn cfg1d(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).clamp(1, 65_535) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Cuda {
    /// Opens device `ordinal`, compiles the kernels for its compute capability (cached)
    /// and loads them. No driver, no device or no NVRTC is an error.
    pub fn new(ordinal: usize) -> Result<Cuda, String> {
        if !driver_available() {
            return Err(
                "the CUDA driver (libcuda.so) was not found: no NVIDIA driver on this machine"
                    .into(),
            );
        }
        guarded("CUDA", || {
            let ctx = CudaContext::new(ordinal).map_err(err("opening CUDA device"))?;
            let cc = ctx
                .compute_capability()
                .map_err(err("compute capability"))?;
            let arch: &'static str = match cc {
                (9, _) => "compute_90",
                (8, 9) => "compute_89",
                (8, 6) => "compute_86",
                (8, _) => "compute_80",
                (7, 5) => "compute_75",
                _ => "compute_70",
            };
            let ptx = compile_ptx(arch)?;
            let module = ctx
                .load_module(Ptx::from_src(ptx))
                .map_err(err("loading the kernels"))?;
            let name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
            Ok(Cuda {
                stream: ctx.default_stream(),
                ctx,
                module,
                name,
                compute_capability: cc,
            })
        })
    }

    fn func(&self, name: &str) -> Result<CudaFunction, String> {
        self.module.load_function(name).map_err(err(name))
    }

    /// `C = A x B` (`[m, k] x [k, n]`), optionally with A or B transposed.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        ta: bool,
        b: &[f32],
        tb: bool,
    ) -> Result<Vec<f32>, String> {
        let s = &self.stream;
        let da = s.clone_htod(a).map_err(err("upload"))?;
        let db = s.clone_htod(b).map_err(err("upload"))?;
        let mut dc = s.alloc_zeros::<f32>(m * n).map_err(err("alloc"))?;
        let f = self.func("sgemm_f32")?;
        let (mi, ni, ki) = (m as i32, n as i32, k as i32);
        let (tai, tbi, acc, zero) = (ta as i32, tb as i32, 0i32, 0i64);
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(16) as u32, m.div_ceil(16) as u32, 1),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        let mut l = s.launch_builder(&f);
        l.arg(&mi).arg(&ni).arg(&ki);
        l.arg(&da).arg(&tai).arg(&zero);
        l.arg(&db).arg(&tbi).arg(&zero);
        l.arg(&mut dc).arg(&zero).arg(&acc);
        // SAFETY: the arguments match `sgemm_f32`'s signature and the buffers' sizes.
        unsafe { l.launch(cfg) }.map_err(err("sgemm_f32"))?;
        s.clone_dtoh(&dc).map_err(err("download"))
    }

    /// A unary op of `unary_f32` (`op` codes as in the source).
    pub fn unary(&self, x: &[f32], op: i32, a: f32, b: f32) -> Result<Vec<f32>, String> {
        let s = &self.stream;
        let dx = s.clone_htod(x).map_err(err("upload"))?;
        let mut dy = s.alloc_zeros::<f32>(x.len()).map_err(err("alloc"))?;
        let f = self.func("unary_f32")?;
        let n = x.len() as i64;
        let mut l = s.launch_builder(&f);
        l.arg(&dx).arg(&mut dy).arg(&n).arg(&op).arg(&a).arg(&b);
        // SAFETY: arguments match `unary_f32`.
        unsafe { l.launch(cfg1d(x.len())) }.map_err(err("unary_f32"))?;
        s.clone_dtoh(&dy).map_err(err("download"))
    }

    /// Depthwise convolution forward of a whole batch.
    pub fn depthwise_forward(
        &self,
        p: &crate::cpu::conv::Conv2d,
        x: &[f32],
        w: &[f32],
    ) -> Result<Vec<f32>, String> {
        let s = &self.stream;
        let g = ConvGeom::from(p);
        let dx = s.clone_htod(x).map_err(err("upload"))?;
        let dw = s.clone_htod(w).map_err(err("upload"))?;
        let mut dy = s.alloc_zeros::<f32>(p.out_len()).map_err(err("alloc"))?;
        let f = self.func("depthwise_forward_f32")?;
        let mut l = s.launch_builder(&f);
        l.arg(&g).arg(&dx).arg(&dw).arg(&mut dy);
        // SAFETY: arguments match `depthwise_forward_f32`.
        unsafe { l.launch(cfg1d(p.out_len())) }.map_err(err("depthwise_forward_f32"))?;
        s.clone_dtoh(&dy).map_err(err("download"))
    }

    /// Max pooling forward: values and argmax.
    pub fn max_pool_forward(
        &self,
        p: &crate::cpu::pool::Pool2d,
        x: &[f32],
    ) -> Result<(Vec<f32>, Vec<u32>), String> {
        let s = &self.stream;
        let g = PoolGeom::from(p);
        let len = p.n * p.c * p.out_h() * p.out_w();
        let dx = s.clone_htod(x).map_err(err("upload"))?;
        let mut dy = s.alloc_zeros::<f32>(len).map_err(err("alloc"))?;
        let mut da = s.alloc_zeros::<u32>(len).map_err(err("alloc"))?;
        let f = self.func("max_pool_forward_f32")?;
        let mut l = s.launch_builder(&f);
        l.arg(&g).arg(&dx).arg(&mut dy).arg(&mut da);
        // SAFETY: arguments match `max_pool_forward_f32`.
        unsafe { l.launch(cfg1d(len)) }.map_err(err("max_pool_forward_f32"))?;
        Ok((
            s.clone_dtoh(&dy).map_err(err("download"))?,
            s.clone_dtoh(&da).map_err(err("download"))?,
        ))
    }

    /// Row-wise log-softmax of `[rows, cols]`.
    pub fn log_softmax(&self, x: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>, String> {
        let s = &self.stream;
        let dx = s.clone_htod(x).map_err(err("upload"))?;
        let mut dy = s.alloc_zeros::<f32>(x.len()).map_err(err("alloc"))?;
        let f = self.func("log_softmax_f32")?;
        let (r, c) = (rows as i32, cols as i32);
        let mut l = s.launch_builder(&f);
        l.arg(&dx).arg(&mut dy).arg(&r).arg(&c);
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: arguments match `log_softmax_f32`.
        unsafe { l.launch(cfg) }.map_err(err("log_softmax_f32"))?;
        s.clone_dtoh(&dy).map_err(err("download"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_is_listed_once_and_defined_in_the_source() {
        let mut seen = std::collections::HashSet::new();
        for k in KERNELS {
            assert!(seen.insert(k), "{k} listed twice");
            assert!(
                SOURCE.contains(&format!("__global__ void {k}(")),
                "{k} is not defined in kernels.cu"
            );
        }
        let defined = SOURCE.matches("__global__ void ").count();
        assert_eq!(
            defined,
            KERNELS.len(),
            "kernels.cu defines kernels KERNELS does not list"
        );
    }

    #[test]
    fn a_missing_driver_is_an_error_not_a_panic() {
        if driver_available() {
            println!("a CUDA driver is present; nothing to check here");
            return;
        }
        let e = Cuda::new(0).err().expect("no driver, no device");
        assert!(e.contains("driver"), "{e}");
    }
}

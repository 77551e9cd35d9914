//! The CUDA backend's kernels: CUDA C sources compiled at run time with NVRTC (through
//! `cudarc`, loaded dynamically, so building needs no toolkit), cached per compute
//! capability, and launched on a device when a driver is present. A missing NVRTC or
//! driver library is an error, never a panic.
//!
//! What runs on a GPU today is the kernel set and the launch wrappers below, held
//! against the CPU backend by `cuda_equivalence` tests (which skip, saying so, where
//! there is no driver); tensors do not live on the device yet, so training does not.

use crate::accel::{Accel, Peaks, Res, Resident, Unary};
use crate::cpu::{conv::Conv2d, pool::Pool2d};
use crate::error::KernelError;
use cudarc::driver::PushKernelArg;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr,
    DeviceRepr, LaunchConfig,
};
use cudarc::nvrtc::{CompileOptions, Ptx};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

/// Every kernel's CUDA C source.
pub const SOURCE: &str = include_str!("kernels.cu");

/// The kernels `SOURCE` defines, one per primitive of the CPU backend (the mixed op's
/// weighted sum and its gradients included) plus the optimiser updates.
pub const KERNELS: &[&str] = &[
    "unary_f32",
    "unary_backward_f32",
    "dropout_mask_f32",
    "binary_f32",
    "reduce_to_f32",
    "reduce_to_lanes_f32",
    "copy_axis_f32",
    "permute_f32",
    "embed_kernel_f32",
    "embed_kernel_backward_f32",
    "weighted_sum_f32",
    "weighted_sum_backward_weight_f32",
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
    "bn_running_f32",
    "bn_backward_sums_f32",
    "bn_backward_input_f32",
    "log_softmax_f32",
    "log_softmax_backward_f32",
    "nll_f32",
    "nll_backward_f32",
    "sgd_f32",
    "adam_f32",
];

/// `len` floats in a CUDA device's memory (at least one allocated: CUDA refuses empty
/// allocations); cloning shares the allocation, freed when the last clone goes. It keeps
/// its stream, so it can be read back wherever it ends up.
#[derive(Clone)]
pub struct Buf {
    s: Arc<CudaSlice<f32>>,
    len: usize,
}

impl Buf {
    /// How many floats it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its contents copied back to the host (waits for the kernels that write it).
    pub fn to_vec(&self) -> Res<Vec<f32>> {
        guarded("CUDA download", || {
            download(self.s.stream(), &*self.s, self.len)
        })
    }

    /// Its contents as `u32`s (an index buffer such as max pooling's argmax).
    pub fn to_u32_vec(&self) -> Res<Vec<u32>> {
        guarded("CUDA download", || {
            // SAFETY: u32 and f32 have the same size and every bit pattern is a u32.
            let view = unsafe { self.s.transmute::<u32>(self.len.max(1)) }
                .ok_or_else(|| KernelError::Invalid("argmax buffer too short".into()))?;
            download(self.s.stream(), &view, self.len)
        })
    }
}

/// The first `n` values of device memory `src`, copied back on `stream` (and counted).
fn download<T: DeviceRepr + Default + Clone, S: DevicePtr<T>>(
    stream: &Arc<CudaStream>,
    src: &S,
    n: usize,
) -> Res<Vec<T>> {
    let mut v = stream.clone_dtoh(src).map_err(err("download"))?;
    v.truncate(n);
    crate::transfer::down(std::mem::size_of_val(&v[..]));
    Ok(v)
}

/// Runs `f`, turning a panic inside `cudarc` into an error.
fn guarded<R>(what: &str, f: impl FnOnce() -> Res<R>) -> Res<R> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let m = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(KernelError::device(what, m))
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

const NO_NVRTC: &str = "NVRTC (libnvrtc.so.12) was not found: install the CUDA toolkit, or \
     the nvidia-cuda-nvrtc-cu12 wheel and put its lib directory on LD_LIBRARY_PATH";

/// Every kernel compiled to PTX for a virtual architecture (`"compute_80"`), cached.
pub fn compile_ptx(arch: &'static str) -> Res<String> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().unwrap().get(arch) {
        return Ok(p.clone());
    }
    if !nvrtc_available() {
        return Err(KernelError::Unavailable(NO_NVRTC.into()));
    }
    let opts = CompileOptions {
        arch: Some(arch),
        name: Some("nas_kernels.cu".into()),
        ..Default::default()
    };
    let ptx = guarded("NVRTC", || {
        cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
            .map(|p| p.to_src())
            .map_err(|e| {
                KernelError::Compile(format!("compiling the nas kernels for {arch}: {e:?}"))
            })
    })?;
    cache.lock().unwrap().insert(arch, ptx.clone());
    Ok(ptx)
}

/// Every kernel compiled to a CUBIN for a real architecture (`"sm_90"`), cached. The
/// driver loads it without JIT-compiling PTX, so it runs on any driver of the same CUDA
/// major version, older than this NVRTC included (PTX from a newer NVRTC would not).
pub fn compile_cubin(arch: &str) -> Res<Vec<u8>> {
    use cudarc::nvrtc::{result as nr, sys as ns};
    use std::ffi::CString;
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap().get(arch) {
        return Ok(c.clone());
    }
    if !nvrtc_available() {
        return Err(KernelError::Unavailable(NO_NVRTC.into()));
    }
    let cubin = guarded("NVRTC", || {
        let src = CString::new(SOURCE)
            .map_err(|e| KernelError::Compile(format!("kernel source: {e}")))?;
        let name = CString::new("nas_kernels.cu").unwrap();
        let prog = nr::create_program(&src, Some(&name)).map_err(err("nvrtcCreateProgram"))?;
        let opts = [format!("--gpu-architecture={arch}")];
        // SAFETY: `prog` was just created and is destroyed once, below; the buffers handed
        // to NVRTC are as long as the sizes it reports.
        let out = unsafe {
            let built = nr::compile_program(prog, &opts).map_err(|e| {
                let log = nr::get_program_log(prog)
                    .map(|l| {
                        let bytes: Vec<u8> = l
                            .iter()
                            .take_while(|&&c| c != 0)
                            .map(|&c| c as u8)
                            .collect();
                        String::from_utf8_lossy(&bytes).into_owned()
                    })
                    .unwrap_or_default();
                KernelError::Compile(format!(
                    "compiling the nas kernels for {arch}: {e:?}\n{log}"
                ))
            });
            let cubin = built.and_then(|()| {
                let mut size = 0usize;
                ns::nvrtcGetCUBINSize(prog, &mut size)
                    .result()
                    .map_err(err("nvrtcGetCUBINSize"))?;
                let mut buf = vec![0u8; size];
                ns::nvrtcGetCUBIN(prog, buf.as_mut_ptr().cast())
                    .result()
                    .map_err(err("nvrtcGetCUBIN"))?;
                Ok(buf)
            });
            let _ = nr::destroy_program(prog);
            cubin
        };
        out
    })?;
    cache
        .lock()
        .unwrap()
        .insert(arch.to_string(), cubin.clone());
    Ok(cubin)
}

/// The file name of the prebuilt CUBIN for `sm` (`"sm_90"`), as `nas cuda-kernels`
/// writes it.
pub fn cubin_file_name(sm: &str) -> String {
    format!("nas-kernels-{sm}.cubin")
}

/// A prebuilt CUBIN for `sm`, for machines without NVRTC: from `NAS_CUDA_KERNELS` (a
/// directory), else from `cuda/` beside the executable.
fn prebuilt_cubin(sm: &str) -> Option<Vec<u8>> {
    let dirs = std::env::var_os("NAS_CUDA_KERNELS")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(
            std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(|d| d.join("cuda"))),
        );
    dirs.map(|d| d.join(cubin_file_name(sm)))
        .find_map(|f| std::fs::read(f).ok())
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

/// A permute's geometry as `permute_f32` takes it (`struct Perm6`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Perm6 {
    pub n: i64,
    pub dims: [i64; 6],
    pub strides: [i64; 6],
}

// SAFETY: plain `#[repr(C)]` integers, the layout of the CUDA struct.
unsafe impl DeviceRepr for Perm6 {}

/// A shape of up to six dims (right-aligned, padded with 1), as `binary_f32` and
/// `reduce_to_f32` take it (`Shape` in the CUDA source).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape6 {
    pub d: [i32; crate::accel::BROADCAST_DIMS],
}

// SAFETY: plain `#[repr(C)]` integers, the layout of the CUDA struct.
unsafe impl DeviceRepr for Shape6 {}

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
/// copies; the device-resident tensor path is not built yet). Its [`Accel`]
/// implementation is what training uses (`crate::accel::activate_cuda`).
pub struct Cuda {
    pub ctx: Arc<CudaContext>,
    /// The device's ordinal.
    pub ordinal: usize,
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    pub name: String,
    pub compute_capability: (i32, i32),
    /// The last few target vectors uploaded, and their device copies (see
    /// [`Cuda::up_targets`]).
    targets: std::sync::Mutex<std::collections::VecDeque<(Vec<u32>, Arc<CudaSlice<u32>>)>>,
    /// The kernels looked up so far, by name: a launch looks its kernel up once, not
    /// through the driver (`cuModuleGetFunction`) each time.
    functions: std::sync::Mutex<HashMap<&'static str, CudaFunction>>,
}

/// Target vectors [`Cuda::up_targets`] remembers.
const KNOWN_TARGETS: usize = 8;

fn err<E: std::fmt::Debug>(what: &str) -> impl Fn(E) -> KernelError + '_ {
    move |e| KernelError::device(what, format!("{e:?}"))
}

/// f32 lanes per streaming multiprocessor of a compute capability (64 on sm_60/70/75/80,
/// 128 on sm_61, sm_86/87/89, Hopper and later).
fn fp32_lanes(cc: (i32, i32)) -> f64 {
    match cc {
        (6, 1) | (8, 6..) => 128.0,
        (major, _) if major >= 9 => 128.0,
        _ => 64.0,
    }
}

/// Peak f32 GFLOP/s and memory GB/s from a device's attributes: SMs, core clock and
/// memory clock (kHz, as CUDA reports them) and memory bus width (bits).
fn spec_peaks(cc: (i32, i32), sms: f64, clock_khz: f64, mem_khz: f64, bus_bits: f64) -> (f64, f64) {
    let gflops = sms * fp32_lanes(cc) * 2.0 * clock_khz / 1e6;
    let gbs = 2.0 * mem_khz * bus_bits / 8.0 / 1e6;
    (gflops, gbs)
}

/// Blocks of 256 threads covering `n` elements (grid-stride kernels), capped.
/// The device's buffer pool kept warm. `cudarc` allocates with `cuMemAllocAsync` where
/// the device has stream-ordered memory pools (every GPU of the last years), so a freed
/// activation returns to the device's default pool and the next step's allocation of
/// the same size is served from it; but with the pool's default release threshold (0)
/// the driver hands the memory back to the system at each synchronisation (every loss
/// read), and each step maps its activations afresh. Keeping it (threshold: no limit)
/// makes the pool a caching allocator, as PyTorch's is. Best effort: a driver that
/// refuses leaves the default.
fn keep_freed_memory(ctx: &CudaContext) {
    use cudarc::driver::sys;
    if !ctx.has_async_alloc() {
        return;
    }
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut keep = u64::MAX;
    // SAFETY: the device is the context's own; the pool is the device's default (never
    // freed by us); the release threshold attribute takes a pointer to a u64.
    unsafe {
        if sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) == sys::CUresult::CUDA_SUCCESS
        {
            let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;
            let _ = sys::cuMemPoolSetAttribute(pool, attr, (&mut keep as *mut u64).cast());
        }
    }
}

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
    pub fn new(ordinal: usize) -> Res<Cuda> {
        if !driver_available() {
            return Err(KernelError::Unavailable(
                "the CUDA driver (libcuda.so) was not found: no NVIDIA driver on this machine"
                    .into(),
            ));
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
                (7, _) => "compute_70",
                _ => "compute_60",
            };
            // A CUBIN for this very GPU: compiled by NVRTC (no driver JIT, so the driver
            // need not be as new as NVRTC), else prebuilt by `nas cuda-kernels`; failing
            // both, PTX for the nearest virtual architecture, which the driver compiles.
            let sm = format!("sm_{}{}", cc.0, cc.1);
            let module = match compile_cubin(&sm).ok().or_else(|| prebuilt_cubin(&sm)) {
                Some(bin) => ctx.load_module(Ptx::from_binary(bin)),
                None => ctx.load_module(Ptx::from_src(compile_ptx(arch).map_err(|e| {
                    let hint = format!(
                        "{e}; or point NAS_CUDA_KERNELS at a directory of kernels prebuilt \
                         with `nas cuda-kernels --arch {sm}`"
                    );
                    match e {
                        KernelError::Unavailable(_) => KernelError::Unavailable(hint),
                        _ => KernelError::Compile(hint),
                    }
                })?)),
            }
            .map_err(err("loading the kernels"))?;
            // Every kernel, now: prebuilt kernels older than this build lack new ones,
            // and that should fail here, naming the kernel, not at the first use.
            for k in KERNELS {
                module.load_function(k).map_err(|e| {
                    KernelError::Compile(format!(
                        "the CUDA kernels loaded lack `{k}` ({e:?}); rebuild prebuilt ones \
                         with `nas cuda-kernels`"
                    ))
                })?;
            }
            keep_freed_memory(&ctx);
            let name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
            Ok(Cuda {
                ordinal,
                stream: ctx.default_stream(),
                ctx,
                module,
                name,
                compute_capability: cc,
                targets: Default::default(),
                functions: Default::default(),
            })
        })
    }

    fn func(&self, name: &'static str) -> Res<CudaFunction> {
        let mut known = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = known.get(name) {
            return Ok(f.clone());
        }
        let f = self.module.load_function(name).map_err(err(name))?;
        known.insert(name, f.clone());
        Ok(f)
    }

    /// `x` on the device; an empty `x` gets a one-element zeroed buffer (CUDA refuses
    /// zero-byte allocations), which no kernel reads.
    fn up<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(&self, x: &[T]) -> Res<CudaSlice<T>> {
        if x.is_empty() {
            return self.zeros(1);
        }
        crate::transfer::up(std::mem::size_of_val(x));
        self.stream.clone_htod(x).map_err(err("upload"))
    }

    /// Class targets on the device: the copy made for the same values a moment ago if it
    /// is still remembered (the loss and its gradient read the same labels), else a new
    /// upload, remembered. Only ever read by kernels.
    fn up_targets(&self, t: &[u32]) -> Res<Arc<CudaSlice<u32>>> {
        let mut known = self.targets.lock().unwrap();
        if let Some((_, d)) = known.iter().find(|(v, _)| v.as_slice() == t) {
            return Ok(d.clone());
        }
        let d = Arc::new(self.up(t)?);
        if known.len() == KNOWN_TARGETS {
            known.pop_front();
        }
        known.push_back((t.to_vec(), d.clone()));
        Ok(d)
    }

    fn zeros<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        n: usize,
    ) -> Res<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(n.max(1)).map_err(err("alloc"))
    }

    fn down<T: DeviceRepr + Default + Clone>(&self, d: &CudaSlice<T>, n: usize) -> Res<Vec<T>> {
        download(&self.stream, d, n)
    }

    /// A unary op of `unary_f32` (`op` codes as in the source).
    pub fn unary(&self, x: &[f32], op: i32, a: f32, b: f32) -> Res<Vec<f32>> {
        let dx = self.up(x)?;
        let mut dy = self.zeros::<f32>(x.len())?;
        let f = self.func("unary_f32")?;
        let n = x.len() as i64;
        let mut l = self.stream.launch_builder(&f);
        l.arg(&dx).arg(&mut dy).arg(&n).arg(&op).arg(&a).arg(&b);
        // SAFETY: arguments match `unary_f32`.
        unsafe { l.launch(cfg1d(x.len())) }.map_err(err("unary_f32"))?;
        self.down(&dy, x.len())
    }

    /// `batch` products `C_i (+)= A_i x B_i` of consecutive matrices on device buffers
    /// (`sgemm_f32`, one grid layer each, a launch per 65,535; a batch of 1 is one
    /// product).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gemm_strided(
        &self,
        batch: usize,
        (m, n, k): (usize, usize, usize),
        a: &CudaView<f32>,
        ta: bool,
        b: &CudaView<f32>,
        tb: bool,
        c: &mut CudaViewMut<f32>,
        acc: bool,
    ) -> Res<()> {
        if batch == 0 || m == 0 || n == 0 {
            // An empty product: nothing to write (CUDA refuses an empty grid).
            return Ok(());
        }
        let tiles = m.div_ceil(16) * n.div_ceil(16);
        // The kernel rounds m and n up to whole tiles in `int`.
        let most = i32::MAX as usize - 15;
        if tiles > i32::MAX as usize || [m, n, k].iter().any(|&v| v > most) {
            return Err(KernelError::Invalid(format!(
                "sgemm_f32: {batch} products of {m}x{n}x{k} are past this kernel's grid"
            )));
        }
        let f = self.func("sgemm_f32")?;
        let (mi, ni, ki) = (m as i32, n as i32, k as i32);
        let (tai, tbi, acci) = (ta as i32, tb as i32, acc as i32);
        let (sa, sb, sc) = (m * k, k * n, m * n);
        // The grid's z holds 65,535 products: a batch past it takes a launch per run,
        // each on its run's matrices.
        const RUN: usize = 65_535;
        for z0 in (0..batch).step_by(RUN) {
            let run = (batch - z0).min(RUN);
            let (ar, br) = (a.slice(z0 * sa..), b.slice(z0 * sb..));
            let mut cr = c.slice_mut(z0 * sc..);
            let cfg = LaunchConfig {
                grid_dim: (tiles as u32, 1, run as u32),
                block_dim: (16, 16, 1),
                shared_mem_bytes: 0,
            };
            let (sa, sb, sc) = (sa as i64, sb as i64, sc as i64);
            let mut l = self.stream.launch_builder(&f);
            l.arg(&mi).arg(&ni).arg(&ki);
            l.arg(&ar).arg(&tai).arg(&sa);
            l.arg(&br).arg(&tbi).arg(&sb);
            l.arg(&mut cr).arg(&sc).arg(&acci);
            // SAFETY: the arguments match `sgemm_f32`'s signature; the callers' buffers
            // hold `batch` matrices of each operand (one where `batch` is 1, whose
            // strides the kernel never applies), so each run's views hold its `run`.
            unsafe { l.launch(cfg) }.map_err(err("sgemm_f32"))?;
        }
        Ok(())
    }

    /// The geometry of one image and one group of `p`, as `im2col_f32`/`col2im_f32`
    /// take it.
    fn group_geom(p: &Conv2d) -> ConvGeom {
        let mut g = ConvGeom::from(p);
        g.n = 1;
        g.cin = (p.cin / p.groups) as i32;
        g.cout = (p.cout / p.groups) as i32;
        g.groups = 1;
        g
    }

    fn depthwise(p: &Conv2d) -> bool {
        p.groups > 1 && p.groups == p.cin && p.cout == p.cin
    }

    /// `im2col_f32` of one image and group `x` into `col`.
    fn im2col(&self, g: &ConvGeom, x: &CudaView<f32>, col: &mut CudaSlice<f32>) -> Res<()> {
        let f = self.func("im2col_f32")?;
        let mut l = self.stream.launch_builder(&f);
        l.arg(g).arg(x).arg(&mut *col);
        let len: usize = [g.cin, g.kh, g.kw, g.oh, g.ow]
            .iter()
            .map(|&v| v as usize)
            .product();
        // SAFETY: arguments match `im2col_f32`; `col` holds the cin*kh*kw x oh*ow matrix.
        unsafe { l.launch(cfg1d(len)) }.map_err(err("im2col_f32"))?;
        Ok(())
    }

    /// Launches a per-channel reduction kernel: one block of `threads` per channel.
    fn per_channel(c: usize, threads: u32) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (c as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

impl Accel for Cuda {
    fn kind(&self) -> &'static str {
        "cuda"
    }

    fn describe(&self) -> String {
        format!(
            "cuda:{} {} (sm_{}{})",
            self.ordinal, self.name, self.compute_capability.0, self.compute_capability.1
        )
    }

    fn matmul(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        ta: bool,
        b: &[f32],
        tb: bool,
    ) -> Res<Vec<f32>> {
        let (a, b) = (self.upload(a)?, self.upload(b)?);
        Resident::matmul(self, m, n, k, &a, ta, &b, tb)?.to_vec()
    }

    fn conv2d(&self, p: &Conv2d, x: &[f32], w: &[f32]) -> Res<Vec<f32>> {
        crate::accel::check_conv(p, Some(x), Some(w), None)?;
        let (x, w) = (self.upload(x)?, self.upload(w)?);
        Resident::conv2d(self, p, &x, &w, None)?.to_vec()
    }

    fn conv2d_backward_input(&self, p: &Conv2d, gy: &[f32], w: &[f32]) -> Res<Vec<f32>> {
        crate::accel::check_conv(p, None, Some(w), Some(gy))?;
        let (gy, w) = (self.upload(gy)?, self.upload(w)?);
        Resident::conv2d_backward_input(self, p, &gy, &w)?.to_vec()
    }

    fn conv2d_backward_weight(&self, p: &Conv2d, x: &[f32], gy: &[f32]) -> Res<Vec<f32>> {
        crate::accel::check_conv(p, Some(x), None, Some(gy))?;
        let (x, gy) = (self.upload(x)?, self.upload(gy)?);
        Resident::conv2d_backward_weight(self, p, &x, &gy)?.to_vec()
    }

    fn max_pool(&self, p: &Pool2d, x: &[f32]) -> Res<(Vec<f32>, Vec<u32>)> {
        let (y, arg) = Resident::max_pool(self, p, &self.upload(x)?)?;
        Ok((y.to_vec()?, arg.to_u32_vec()?))
    }

    fn max_pool_backward(&self, p: &Pool2d, gy: &[f32], arg: &[u32]) -> Res<Vec<f32>> {
        p.validate()?;
        if let Some(i) = arg.iter().find(|&&i| i as usize >= p.h * p.w) {
            return Err(KernelError::Invalid(format!(
                "max_pool backward: argmax {i} outside a {}x{} plane",
                p.h, p.w
            )));
        }
        // The argmax travels as its bits in a float buffer, as the forward leaves it.
        let bits: Vec<f32> = arg.iter().map(|&i| f32::from_bits(i)).collect();
        let (gy, arg) = (self.upload(gy)?, self.upload(&bits)?);
        Resident::max_pool_backward(self, p, &gy, &arg)?.to_vec()
    }

    fn avg_pool(&self, p: &Pool2d, cip: bool, x: &[f32]) -> Res<Vec<f32>> {
        Resident::avg_pool(self, p, cip, &self.upload(x)?)?.to_vec()
    }

    fn avg_pool_backward(&self, p: &Pool2d, cip: bool, gy: &[f32]) -> Res<Vec<f32>> {
        Resident::avg_pool_backward(self, p, cip, &self.upload(gy)?)?.to_vec()
    }

    fn adaptive_avg_pool(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        x: &[f32],
    ) -> Res<Vec<f32>> {
        let x = self.upload(x)?;
        Resident::adaptive_avg_pool(self, planes, h, w, oh, ow, &x)?.to_vec()
    }

    fn adaptive_avg_pool_backward(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        gy: &[f32],
    ) -> Res<Vec<f32>> {
        let gy = self.upload(gy)?;
        Resident::adaptive_avg_pool_backward(self, planes, h, w, oh, ow, &gy)?.to_vec()
    }

    fn batch_norm_train(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) -> Res<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (x, g, b) = (self.upload(x)?, self.upload(gamma)?, self.upload(beta)?);
        let (y, mean, invstd) = Resident::batch_norm_train(self, n, c, hw, &x, &g, &b, eps)?;
        Ok((y.to_vec()?, mean.to_vec()?, invstd.to_vec()?))
    }

    fn batch_norm_backward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &[f32],
        gy: &[f32],
        gamma: &[f32],
        mean: &[f32],
        invstd: &[f32],
    ) -> Res<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (x, gy) = (self.upload(x)?, self.upload(gy)?);
        let (g, m, i) = (
            self.upload(gamma)?,
            self.upload(mean)?,
            self.upload(invstd)?,
        );
        let (gx, ggamma, gbeta) =
            Resident::batch_norm_backward(self, n, c, hw, &x, &gy, &g, &m, &i)?;
        Ok((gx.to_vec()?, ggamma.to_vec()?, gbeta.to_vec()?))
    }

    fn log_softmax(&self, rows: usize, cols: usize, x: &[f32]) -> Res<Vec<f32>> {
        Resident::log_softmax(self, rows, cols, &self.upload(x)?)?.to_vec()
    }

    fn log_softmax_backward(
        &self,
        rows: usize,
        cols: usize,
        y: &[f32],
        gy: &[f32],
    ) -> Res<Vec<f32>> {
        let (y, gy) = (self.upload(y)?, self.upload(gy)?);
        Resident::log_softmax_backward(self, rows, cols, &y, &gy)?.to_vec()
    }

    fn weighted_sum(&self, k: usize, xs: &[f32], w: &[f32]) -> Res<Vec<f32>> {
        let n = crate::accel::candidate_len(k, xs, w, None)?;
        let xs = (0..k)
            .map(|j| self.upload(&xs[j * n..(j + 1) * n]))
            .collect::<Res<Vec<_>>>()?;
        Resident::weighted_sum(self, &xs, w)?.to_vec()
    }

    fn weighted_sum_backward(
        &self,
        k: usize,
        xs: &[f32],
        w: &[f32],
        gy: &[f32],
    ) -> Res<(Vec<f32>, Vec<f32>)> {
        let n = crate::accel::candidate_len(k, xs, w, Some(gy))?;
        let bufs = (0..k)
            .map(|j| self.upload(&xs[j * n..(j + 1) * n]))
            .collect::<Res<Vec<_>>>()?;
        let g = self.upload(gy)?;
        let gw = Resident::weighted_sum_backward_weight(self, &bufs, &g)?;
        // The candidates' gradients are `w[j] * gy`, formed on the device as the engine
        // forms them.
        let mut gx = Vec::with_capacity(k * n);
        for &wj in w {
            gx.extend(Resident::unary(self, Unary::Affine(wj, 0.0), &g)?.to_vec()?);
        }
        Ok((gx, gw))
    }

    fn peaks(&self) -> Res<Peaks> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        let get = |a: A| self.ctx.attribute(a).map_err(err("device attribute"));
        let sms = get(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as f64;
        let clock_khz = get(A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)? as f64;
        let mem_khz = get(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)? as f64;
        let bus_bits = get(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)? as f64;
        let (gflops, gbs) = spec_peaks(self.compute_capability, sms, clock_khz, mem_khz, bus_bits);
        Ok(Peaks {
            gflops,
            gbs,
            how: "from the device's specification: SMs x f32 lanes x 2 x boost clock, and \
                  2 x memory clock x bus width",
        })
    }

    fn nll(&self, rows: usize, cols: usize, logp: &[f32], targets: &[u32]) -> Res<f32> {
        Resident::nll(self, rows, cols, &self.upload(logp)?, targets)
    }

    fn nll_backward(&self, rows: usize, cols: usize, targets: &[u32], g: f32) -> Res<Vec<f32>> {
        Resident::nll_backward(self, rows, cols, targets, g)?.to_vec()
    }
}

mod resident;

#[cfg(test)]
mod tests {
    use super::*;

    /// The published f32 and bandwidth figures of two data-centre GPUs from the attributes
    /// their drivers report.
    #[test]
    fn spec_peaks_give_the_published_figures() {
        // A100 SXM 40 GB: 108 SMs at 1410 MHz, HBM2 at 1215 MHz on 5120 bits.
        let (f, b) = spec_peaks((8, 0), 108.0, 1_410_000.0, 1_215_000.0, 5120.0);
        assert!(
            (f - 19_492.0).abs() < 1.0 && (b - 1555.2).abs() < 0.1,
            "{f} {b}"
        );
        // H100 SXM: 132 SMs at 1980 MHz, HBM3 at 2619 MHz on 5120 bits.
        let (f, b) = spec_peaks((9, 0), 132.0, 1_980_000.0, 2_619_000.0, 5120.0);
        assert!(
            (f - 66_908.0).abs() < 1.0 && (b - 3352.3).abs() < 0.1,
            "{f} {b}"
        );
        // An sm_86 card doubles the lanes per SM.
        assert_eq!(fp32_lanes((8, 6)), 2.0 * fp32_lanes((8, 0)));
    }

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
        assert!(
            matches!(&e, KernelError::Unavailable(m) if m.contains("driver")),
            "{e}"
        );
    }
}

//! The accelerator boundary: the primitives a training step hands to a device backend
//! (wgpu or CUDA), with host slices in and host vectors out: what the equivalence tests
//! hold to the CPU and the benchmarks time (each backend implements it over its
//! [`Resident`] kernels: upload, run, download).
//!
//! [`Resident`] is the same boundary on device buffers ([`DevBuf`]), the one the engine
//! trains through: wgpu and CUDA both keep tensors and their gradients in their memory.
//! A buffer knows its device ([`DevBuf::place`], whose backend is [`Place::backend`]), so
//! an op runs on the device that holds its operands; there is no process-wide switch.
//!
//! Every method computes exactly what the CPU kernel of the same name computes (the
//! equivalence tests hold each backend to that on random inputs); the result is a fresh
//! vector the caller adds or copies where it belongs.

use crate::cpu::{conv::Conv2d, pool::Pool2d};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

pub use crate::error::{KernelError, Res};

/// Values in a backend's memory: the CPU's (host memory), wgpu's or CUDA's. Cloning
/// shares the buffer. It knows its device, so it can be read back, and ops on it run
/// there, wherever it ends up.
#[derive(Clone)]
pub enum DevBuf {
    Host(crate::cpu::backend::HostBuf),
    Wgpu(crate::gpu::Buf),
    Cuda(crate::cuda::Buf),
}

impl DevBuf {
    /// How many floats it holds.
    pub fn len(&self) -> usize {
        match self {
            DevBuf::Host(b) => b.len(),
            DevBuf::Wgpu(b) => b.len(),
            DevBuf::Cuda(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its contents copied back to the host (waits for the kernels that write it).
    pub fn to_vec(&self) -> Res<Vec<f32>> {
        match self {
            DevBuf::Host(b) => Ok(b.as_slice().to_vec()),
            DevBuf::Wgpu(b) => b.to_vec(),
            DevBuf::Cuda(b) => b.to_vec(),
        }
    }

    /// Its contents as `u32`s (an index buffer such as max pooling's argmax).
    pub fn to_u32_vec(&self) -> Res<Vec<u32>> {
        match self {
            DevBuf::Host(b) => Ok(b.to_u32_vec()),
            DevBuf::Wgpu(b) => b.to_u32_vec(),
            DevBuf::Cuda(b) => b.to_u32_vec(),
        }
    }

    /// The device whose memory holds it.
    pub fn place(&self) -> Place {
        match self {
            DevBuf::Host(_) => Place::Cpu,
            DevBuf::Wgpu(_) => Place::Wgpu,
            DevBuf::Cuda(_) => Place::Cuda,
        }
    }

    /// `"cpu"`, `"wgpu"` or `"cuda"`.
    pub fn device(&self) -> &'static str {
        self.place().name()
    }
}

/// A backend's memory: the host's (the CPU backend), or a device's, where a tensor lives
/// when not on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Cpu,
    Wgpu,
    Cuda,
}

impl Place {
    /// `"cpu"`, `"wgpu"` or `"cuda"`.
    pub fn name(self) -> &'static str {
        match self {
            Place::Cpu => "cpu",
            Place::Wgpu => "wgpu",
            Place::Cuda => "cuda",
        }
    }

    /// Its backend, as both boundaries, once the device is open (a tensor can only be
    /// in its memory after that; the process's one device of each kind stays open). The
    /// CPU's is always open.
    pub fn backend(self) -> Option<Backend> {
        match self {
            Place::Cpu => Some(cpu()),
            Place::Wgpu => wgpu_opened().map(backend_of_gpu),
            Place::Cuda => cuda_opened().map(backend_of_cuda),
        }
    }
}

/// The CPU backend, as both boundaries.
pub fn cpu() -> Backend {
    let c = &crate::cpu::backend::CPU;
    (c as &dyn Accel, c as &dyn Resident)
}

/// A device's backend, as both boundaries.
pub type Backend = (&'static dyn Accel, &'static dyn Resident);

/// The error of a kernel handed a buffer of another device.
pub fn foreign(kernel: &str, want: &str, got: &DevBuf) -> KernelError {
    KernelError::Invalid(format!(
        "{kernel}: a {} buffer given to the {want} backend (operands on two devices)",
        got.device()
    ))
}

/// A device backend's training primitives.
pub trait Accel: Send + Sync {
    /// `"cpu"`, `"wgpu"` or `"cuda"`: the prefix of its kernels in profiles.
    fn kind(&self) -> &'static str;
    /// The device, for reports.
    fn describe(&self) -> String;

    /// `[m, k] x [k, n]`, either operand read transposed.
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        ta: bool,
        b: &[f32],
        tb: bool,
    ) -> Res<Vec<f32>>;
    /// Convolution forward without bias.
    fn conv2d(&self, p: &Conv2d, x: &[f32], w: &[f32]) -> Res<Vec<f32>>;
    /// Convolution input gradient.
    fn conv2d_backward_input(&self, p: &Conv2d, gy: &[f32], w: &[f32]) -> Res<Vec<f32>>;
    /// Convolution weight gradient.
    fn conv2d_backward_weight(&self, p: &Conv2d, x: &[f32], gy: &[f32]) -> Res<Vec<f32>>;
    /// Max pooling: values and argmax (flat index within the input plane).
    fn max_pool(&self, p: &Pool2d, x: &[f32]) -> Res<(Vec<f32>, Vec<u32>)>;
    /// Max pooling input gradient from the forward's argmax.
    fn max_pool_backward(&self, p: &Pool2d, gy: &[f32], arg: &[u32]) -> Res<Vec<f32>>;
    /// Average pooling (`cip`: padding counts in the divisor).
    fn avg_pool(&self, p: &Pool2d, cip: bool, x: &[f32]) -> Res<Vec<f32>>;
    /// Average pooling input gradient.
    fn avg_pool_backward(&self, p: &Pool2d, cip: bool, gy: &[f32]) -> Res<Vec<f32>>;
    /// Adaptive average pooling of `planes` planes `h x w` to `oh x ow` (PyTorch bins).
    #[allow(clippy::too_many_arguments)]
    fn adaptive_avg_pool(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        x: &[f32],
    ) -> Res<Vec<f32>>;
    /// Adaptive average pooling input gradient.
    #[allow(clippy::too_many_arguments)]
    fn adaptive_avg_pool_backward(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        gy: &[f32],
    ) -> Res<Vec<f32>>;
    /// Training-mode batch norm of `[n, c, hw]`: output, batch mean, 1/std (biased).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) -> Res<(Vec<f32>, Vec<f32>, Vec<f32>)>;
    /// Batch-norm backward: input, gamma and beta gradients.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Res<(Vec<f32>, Vec<f32>, Vec<f32>)>;
    /// Row-wise log-softmax of `[rows, cols]`.
    fn log_softmax(&self, rows: usize, cols: usize, x: &[f32]) -> Res<Vec<f32>>;
    /// Log-softmax input gradient from the output `y` and its gradient.
    fn log_softmax_backward(
        &self,
        rows: usize,
        cols: usize,
        y: &[f32],
        gy: &[f32],
    ) -> Res<Vec<f32>>;
    /// A mixed op's output `y = sum_j w[j] * x_j` of `k` same-length candidate outputs
    /// given back to back in `xs`.
    fn weighted_sum(&self, k: usize, xs: &[f32], w: &[f32]) -> Res<Vec<f32>>;
    /// Its gradients from the output gradient `gy`: the candidates' (`w[j] * gy`, back to
    /// back) and the mixing weights' (`dot(gy, x_j)`).
    fn weighted_sum_backward(
        &self,
        k: usize,
        xs: &[f32],
        w: &[f32],
        gy: &[f32],
    ) -> Res<(Vec<f32>, Vec<f32>)>;
    /// The device's peak f32 throughput and memory bandwidth, for profiles.
    fn peaks(&self) -> Res<Peaks>;

    /// Mean negative log-likelihood of `targets` under the log-probabilities `logp`
    /// (`[rows, cols]`).
    fn nll(&self, rows: usize, cols: usize, logp: &[f32], targets: &[u32]) -> Res<f32>;
    /// Its gradient times the upstream gradient `g`.
    fn nll_backward(&self, rows: usize, cols: usize, targets: &[u32], g: f32) -> Res<Vec<f32>>;
}

/// An elementwise map a [`Resident`] backend runs on device buffers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Relu,
    Exp,
    Log,
    Sigmoid,
    Tanh,
    /// `x * a + b`.
    Affine(f32, f32),
}

impl Unary {
    /// The kernels' code for this map (both backends' `unary` kernels: 1 ReLU, 2 exp, 3
    /// log, 4 sigmoid, 5 tanh, 6 `x * a + b`) and its two parameters.
    pub fn code(self) -> (u32, f32, f32) {
        match self {
            Unary::Relu => (1, 0.0, 0.0),
            Unary::Exp => (2, 0.0, 0.0),
            Unary::Log => (3, 0.0, 0.0),
            Unary::Sigmoid => (4, 0.0, 0.0),
            Unary::Tanh => (5, 0.0, 0.0),
            Unary::Affine(a, b) => (6, a, b),
        }
    }
}

/// A same-shape elementwise operation of two device buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    /// The ReLU's input gradient: the output gradient (first operand) where the ReLU's
    /// output (second operand) is positive, else 0.
    ReluGrad,
    /// The sigmoid's input gradient from the output gradient `g` (first operand) and the
    /// sigmoid's output `y` (second): `g * y * (1 - y)`.
    SigmoidGrad,
    /// The tanh's input gradient from `g` and the tanh's output `y`: `g * (1 - y * y)`.
    TanhGrad,
}

impl Binary {
    /// The kernels' code for this operation (0 add, 1 sub, 2 mul, 3 div, as both backends'
    /// `binary` kernels take them; 4, 5 and 6 the ReLU, sigmoid and tanh gradients, which
    /// the WGSL kernel also takes, and CUDA's `unary_backward_f32` under its own codes).
    pub fn code(self) -> u32 {
        match self {
            Binary::Add => 0,
            Binary::Sub => 1,
            Binary::Mul => 2,
            Binary::Div => 3,
            Binary::ReluGrad => 4,
            Binary::SigmoidGrad => 5,
            Binary::TanhGrad => 6,
        }
    }

    /// Whether this is an activation's gradient (no broadcasting form).
    pub fn is_gradient(self) -> bool {
        matches!(
            self,
            Binary::ReluGrad | Binary::SigmoidGrad | Binary::TanhGrad
        )
    }
}

/// Primitives whose operands and results stay in device memory ([`DevBuf`]s), gradients
/// and batch norm's statistics included: only what the caller keeps on the host (a
/// supernet's mixing weights and their gradients, a loss, a clipping norm) crosses. Each
/// computes what the CPU kernel of the same name computes.
pub trait Resident {
    /// The device whose memory it computes in (that of the buffers it makes).
    fn place(&self) -> Place;
    /// Waits until every kernel and copy asked of the device so far has run (a profile
    /// times each call this way; a step needs no wait: reading a result back waits for
    /// the kernels that make it).
    fn finish(&self) -> Res<()>;
    /// `x` copied to the device.
    fn upload(&self, x: &[f32]) -> Res<DevBuf>;
    /// `len` zeros made in device memory (nothing crosses).
    fn zeros(&self, len: usize) -> Res<DevBuf>;
    /// `len` values of dropout draw `d` made in device memory: entry `i` is 0 where its
    /// random bits ([`crate::cpu::random::bits`], the same on every backend) fall below
    /// `d.below`, `d.keep` elsewhere. Past 2^32 values is an error.
    fn dropout_mask(&self, len: usize, d: &crate::cpu::random::Dropout) -> Res<DevBuf>;
    /// Each `k`x`k` plane of `x` written into a zero `size`x`size` plane at the taps `e`
    /// gives (a kernel at a larger size, as a fused mixed op mixes its candidates).
    fn embed_kernel(&self, e: &Embed, x: &DevBuf) -> Res<DevBuf>;
    /// The gradient of [`Resident::embed_kernel`]: the taps of each large plane of `g`.
    fn embed_kernel_backward(&self, e: &Embed, g: &DevBuf) -> Res<DevBuf>;
    /// An elementwise map.
    fn unary(&self, op: Unary, x: &DevBuf) -> Res<DevBuf>;
    /// A same-length elementwise operation.
    fn binary(&self, op: Binary, a: &DevBuf, b: &DevBuf) -> Res<DevBuf>;
    /// `a op b` (add, sub, mul or div) with NumPy broadcasting, `a` of shape `sa` and `b`
    /// of shape `sb`, of any rank whose dimensions merge into [`BROADCAST_DIMS`] (see
    /// [`broadcast_fits`]): the result has the broadcast shape.
    fn binary_broadcast(
        &self,
        op: Binary,
        a: &DevBuf,
        sa: &[usize],
        b: &DevBuf,
        sb: &[usize],
    ) -> Res<DevBuf>;
    /// `g` (shape `sy`) summed over the dimensions where shape `sx` (broadcasting to `sy`;
    /// the two merging into [`BROADCAST_DIMS`] dimensions, see [`sum_fits`]) has 1s: a
    /// broadcast operand's gradient, and a sum over axes. The result has `sx`'s length.
    fn reduce_to(&self, g: &DevBuf, sy: &[usize], sx: &[usize]) -> Res<DevBuf>;
    /// `x` (of shape `shape`: any rank whose axes merge into [`PERMUTE_DIMS`], see
    /// [`permute_fits`]) with its axes reordered: output axis `d` is input axis
    /// `perm[d]`. Its gradient is the inverse permutation.
    fn permute(&self, shape: &[usize], perm: &[usize], x: &DevBuf) -> Res<DevBuf>;
    /// `[m, k] x [k, n]`, either operand read transposed.
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &DevBuf,
        ta: bool,
        b: &DevBuf,
        tb: bool,
    ) -> Res<DevBuf> {
        self.matmul_batched(1, m, n, k, a, ta, b, tb)
    }
    /// `batch` products `[m, k] x [k, n]`, each of the next matrix of `a` and of `b`
    /// (either read transposed), into consecutive `[m, n]` matrices.
    #[allow(clippy::too_many_arguments)]
    fn matmul_batched(
        &self,
        batch: usize,
        m: usize,
        n: usize,
        k: usize,
        a: &DevBuf,
        ta: bool,
        b: &DevBuf,
        tb: bool,
    ) -> Res<DevBuf>;
    /// `parts` (each `[outer, len, inner]`, with its `len`) concatenated along the middle
    /// axis.
    fn concat_axis(&self, outer: usize, inner: usize, parts: &[(DevBuf, usize)]) -> Res<DevBuf>;
    /// `len` entries from `start` along the middle axis of `[outer, total, inner]` `x`.
    #[allow(clippy::too_many_arguments)]
    fn slice_axis(
        &self,
        outer: usize,
        total: usize,
        inner: usize,
        start: usize,
        len: usize,
        x: &DevBuf,
    ) -> Res<DevBuf>;
    /// A slice's input gradient: `[outer, len, inner]` `g` at `start` in a zero
    /// `[outer, total, inner]`.
    #[allow(clippy::too_many_arguments)]
    fn unslice_axis(
        &self,
        outer: usize,
        total: usize,
        inner: usize,
        start: usize,
        len: usize,
        g: &DevBuf,
    ) -> Res<DevBuf>;
    /// `x[i] + bias[(i / plane) % c]`: a bias per channel of NCHW (`plane` = h * w) or per
    /// column of rows (`plane` = 1).
    fn add_channel(&self, c: usize, plane: usize, x: &DevBuf, bias: &DevBuf) -> Res<DevBuf>;
    /// Per-channel sums of `[n, c, plane]` values: a bias's gradient.
    fn channel_sum(&self, n: usize, c: usize, plane: usize, g: &DevBuf) -> Res<DevBuf>;
    /// Convolution forward (the bias, where given, added per channel).
    fn conv2d(&self, p: &Conv2d, x: &DevBuf, w: &DevBuf, bias: Option<&DevBuf>) -> Res<DevBuf>;
    /// Convolution input gradient from the output gradient `gy`.
    fn conv2d_backward_input(&self, p: &Conv2d, gy: &DevBuf, w: &DevBuf) -> Res<DevBuf>;
    /// Convolution weight gradient.
    fn conv2d_backward_weight(&self, p: &Conv2d, x: &DevBuf, gy: &DevBuf) -> Res<DevBuf>;
    /// Max pooling: values and argmax (flat index within the input plane, as `u32`
    /// bits), both left on the device.
    fn max_pool(&self, p: &Pool2d, x: &DevBuf) -> Res<(DevBuf, DevBuf)>;
    /// Max pooling input gradient from the forward's argmax.
    fn max_pool_backward(&self, p: &Pool2d, gy: &DevBuf, arg: &DevBuf) -> Res<DevBuf>;
    /// Average pooling.
    fn avg_pool(&self, p: &Pool2d, cip: bool, x: &DevBuf) -> Res<DevBuf>;
    /// Average pooling input gradient.
    fn avg_pool_backward(&self, p: &Pool2d, cip: bool, gy: &DevBuf) -> Res<DevBuf>;
    /// Adaptive average pooling (PyTorch bins).
    #[allow(clippy::too_many_arguments)]
    fn adaptive_avg_pool(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        x: &DevBuf,
    ) -> Res<DevBuf>;
    /// Adaptive average pooling input gradient.
    #[allow(clippy::too_many_arguments)]
    fn adaptive_avg_pool_backward(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        gy: &DevBuf,
    ) -> Res<DevBuf>;
    /// Training-mode batch norm with scales `gamma` and shifts `beta`: output, batch mean
    /// and 1/std (biased), all left on the device.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &DevBuf,
        gamma: &DevBuf,
        beta: &DevBuf,
        eps: f32,
    ) -> Res<(DevBuf, DevBuf, DevBuf)>;
    /// Batch-norm backward from the forward's statistics: the input, gamma and beta
    /// gradients, on the device.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &DevBuf,
        gy: &DevBuf,
        gamma: &DevBuf,
        mean: &DevBuf,
        invstd: &DevBuf,
    ) -> Res<(DevBuf, DevBuf, DevBuf)>;
    /// The running mean and variance after a batch of `count` values per channel with
    /// statistics `mean` and `invstd` (`eps` as in the forward): PyTorch's update with
    /// `momentum`, the batch variance unbiased; the CPU's `batch_norm_update_running`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_running(
        &self,
        count: usize,
        momentum: f32,
        eps: f32,
        mean: &DevBuf,
        invstd: &DevBuf,
        running_mean: &DevBuf,
        running_var: &DevBuf,
    ) -> Res<(DevBuf, DevBuf)>;
    /// Row-wise log-softmax.
    fn log_softmax(&self, rows: usize, cols: usize, x: &DevBuf) -> Res<DevBuf>;
    /// Log-softmax input gradient from its output `y`.
    fn log_softmax_backward(
        &self,
        rows: usize,
        cols: usize,
        y: &DevBuf,
        gy: &DevBuf,
    ) -> Res<DevBuf>;
    /// Mean negative log-likelihood.
    fn nll(&self, rows: usize, cols: usize, logp: &DevBuf, targets: &[u32]) -> Res<f32>;
    /// Its gradient times the upstream gradient `g`.
    fn nll_backward(&self, rows: usize, cols: usize, targets: &[u32], g: f32) -> Res<DevBuf>;
    /// A mixed op's output `sum_j w[j] * xs[j]` of same-length candidate outputs.
    fn weighted_sum(&self, xs: &[DevBuf], w: &[f32]) -> Res<DevBuf>;
    /// Its mixing weights' gradients `dot(gy, xs[j])` (the candidates' are `w[j] * gy`).
    fn weighted_sum_backward_weight(&self, xs: &[DevBuf], gy: &DevBuf) -> Res<Vec<f32>>;
    /// One SGD step (PyTorch's, dampening 0) of weights `w` with gradient `g` and
    /// momentum buffer `v` (None before the first step): the new weights and buffer.
    #[allow(clippy::too_many_arguments)]
    fn sgd(
        &self,
        w: &DevBuf,
        g: &DevBuf,
        v: Option<&DevBuf>,
        lr: f32,
        mu: f32,
        wd: f32,
        nesterov: bool,
    ) -> Res<(DevBuf, DevBuf)>;
    /// One Adam step `t` (1-based; AdamW when `decoupled`) of weights `w` with gradient
    /// `g` and moments `m`, `v`: the new weights and moments.
    #[allow(clippy::too_many_arguments)]
    fn adam(
        &self,
        w: &DevBuf,
        g: &DevBuf,
        m: &DevBuf,
        v: &DevBuf,
        lr: f32,
        betas_eps: (f32, f32, f32),
        wd: f32,
        decoupled: bool,
        t: i32,
    ) -> Res<(DevBuf, DevBuf, DevBuf)>;
}

/// A device's peaks, and how they were found (measured, or from its specification).
#[derive(Clone, Copy, Debug)]
pub struct Peaks {
    pub gflops: f64,
    pub gbs: f64,
    pub how: &'static str,
}

/// Checks a convolution's geometry and the lengths of the operands given (input `x`,
/// weight `w`, output gradient `gy`) before a device indexes with them.
pub fn check_conv(p: &Conv2d, x: Option<&[f32]>, w: Option<&[f32]>, gy: Option<&[f32]>) -> Res<()> {
    let len = |v: Option<&[f32]>| v.map(<[f32]>::len);
    conv_lens(p, len(x), len(w), len(gy), None)
}

/// Whether every one of `values` is within what the device kernels index and count in:
/// 32-bit signed integers (their geometry, a plane's offsets, the planes).
pub(crate) fn indexable(values: &[usize]) -> bool {
    values.iter().all(|&v| v <= i32::MAX as usize)
}

/// [`check_conv`] on lengths, with the bias's.
pub(crate) fn conv_lens(
    p: &Conv2d,
    x: Option<usize>,
    w: Option<usize>,
    gy: Option<usize>,
    bias: Option<usize>,
) -> Res<()> {
    p.validate()?;
    let dims = [
        p.n, p.cin, p.h, p.w, p.cout, p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw,
    ];
    if !indexable(&dims) || !indexable(&[p.h * p.w, p.out_h() * p.out_w()]) {
        return Err(KernelError::Invalid(format!(
            "conv2d: a {}x{}x{}x{} input (kernel {}x{}): past the 2^31 a device kernel indexes",
            p.n, p.cin, p.h, p.w, p.kh, p.kw
        )));
    }
    let want = [
        ("input", x, p.n * p.cin * p.h * p.w),
        ("weight", w, p.weight_len()),
        ("output gradient", gy, p.out_len()),
        ("bias", bias, p.cout),
    ];
    lens("conv2d", &want)
}

/// Checks each operand given (`Some` length) against the length the shape needs,
/// naming `op` and the operand.
fn lens(op: &str, want: &[(&str, Option<usize>, usize)]) -> Res<()> {
    for &(what, got, len) in want {
        if let Some(got) = got {
            operand_len(op, what, got, len)?;
        }
    }
    Ok(())
}

/// [`check_len`] for operand `what` of `op` (the message made only on a mismatch).
fn operand_len(op: &str, what: &str, got: usize, want: usize) -> Res<()> {
    if got != want {
        return check_len(&format!("{op} {what}"), got, want);
    }
    Ok(())
}

/// Checks a pooling's geometry and the lengths of its input `x`, output gradient `gy`
/// and argmax given.
pub(crate) fn pool_lens(
    p: &Pool2d,
    op: &str,
    x: Option<usize>,
    gy: Option<usize>,
    arg: Option<usize>,
) -> Res<()> {
    p.validate()?;
    let out = p.n * p.c * p.out_h() * p.out_w();
    let want = [
        ("input", x, p.n * p.c * p.h * p.w),
        ("output gradient", gy, out),
        ("argmax", arg, out),
    ];
    lens(op, &want)
}

/// Checks an adaptive average pooling's input `x` or output gradient `gy` (`planes`
/// planes of `h x w` pooled to `oh x ow`).
pub(crate) fn adaptive_lens(
    [planes, h, w, oh, ow]: [usize; 5],
    x: Option<usize>,
    gy: Option<usize>,
) -> Res<()> {
    if planes * oh * ow > 0 && (h == 0 || w == 0) {
        return Err(KernelError::Invalid(format!(
            "adaptive_avg_pool: empty input plane {h}x{w} pooled to {oh}x{ow}"
        )));
    }
    // (The kernels compute a bin's edges as `(o + 1) * len`.)
    if !indexable(&[planes, (oh + 1) * h, (ow + 1) * w]) {
        return Err(KernelError::Invalid(format!(
            "adaptive_avg_pool: {planes} planes of {h}x{w} pooled to {oh}x{ow}: past the 2^31 a device kernel indexes"
        )));
    }
    let want = [
        ("input", x, planes * h * w),
        ("output gradient", gy, planes * oh * ow),
    ];
    lens("adaptive_avg_pool", &want)
}

/// Checks a batch norm's `[n, c, hw]` input `x`, its output gradient `gy` when given,
/// and its per-channel vectors (named).
pub(crate) fn batch_norm_lens(
    [n, c, hw]: [usize; 3],
    x: usize,
    gy: Option<usize>,
    channels: &[(&str, usize)],
) -> Res<()> {
    lens(
        "batch_norm",
        &[
            ("input", Some(x), n * c * hw),
            ("output gradient", gy, n * c * hw),
        ],
    )?;
    for &(what, len) in channels {
        operand_len("batch_norm", what, len, c)?;
    }
    Ok(())
}

/// Checks the operands of `batch` `[m, k] x [k, n]` products.
pub(crate) fn matmul_lens(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    a: usize,
    b: usize,
) -> Res<()> {
    lens(
        "matmul",
        &[
            ("left operand", Some(a), batch * m * k),
            ("right operand", Some(b), batch * k * n),
        ],
    )
}

/// Checks a row-wise log-softmax's input or output `x` and its gradient `gy` when given.
pub(crate) fn log_softmax_lens(rows: usize, cols: usize, x: usize, gy: Option<usize>) -> Res<()> {
    let what = if gy.is_some() { "output" } else { "input" };
    lens(
        "log_softmax",
        &[(what, Some(x), rows * cols), ("gradient", gy, rows * cols)],
    )
}

/// Checks an optimiser step's operands against its weights' `n`: the gradient and the
/// buffers (named) given.
pub(crate) fn step_lens(op: &str, n: usize, g: usize, buffers: &[(&str, usize)]) -> Res<()> {
    operand_len(op, "gradient", g, n)?;
    for &(what, len) in buffers {
        operand_len(op, what, len, n)?;
    }
    Ok(())
}

/// Checks an NLL's arguments before a device indexes with them: one target per row, each
/// a class below `cols`, and `rows * cols` log-probabilities.
pub fn check_targets(rows: usize, cols: usize, len: usize, targets: &[u32]) -> Res<()> {
    if targets.len() != rows || len != rows * cols || rows == 0 {
        return Err(KernelError::Invalid(format!(
            "nll: {} targets and {len} log-probabilities for {rows} rows of {cols}",
            targets.len()
        )));
    }
    match targets.iter().find(|&&t| t as usize >= cols) {
        Some(t) => Err(KernelError::Invalid(format!(
            "nll: target {t} out of range for {cols} classes"
        ))),
        None => Ok(()),
    }
}

/// The length of each of the `k` candidates in a weighted sum's `xs` (and of its output
/// gradient `gy`, when given), or why the arguments disagree.
pub fn candidate_len(k: usize, xs: &[f32], w: &[f32], gy: Option<&[f32]>) -> Res<usize> {
    let n = xs.len() / k.max(1);
    if k == 0 || w.len() != k || xs.len() != k * n || gy.is_some_and(|g| g.len() != n) {
        return Err(KernelError::Invalid(format!(
            "weighted sum: {} values for {k} candidates with {} weights and {} output \
             gradients",
            xs.len(),
            w.len(),
            gy.map_or(0, |g| g.len())
        )));
    }
    Ok(n)
}

/// `what` holds `got` values where `want` are needed.
pub(crate) fn check_len(what: &str, got: usize, want: usize) -> Res<()> {
    if got != want {
        return Err(KernelError::Invalid(format!(
            "{what}: {got} values where the shape needs {want}"
        )));
    }
    Ok(())
}

/// Most dimensions of the shapes the broadcasting and summing kernels take.
pub const BROADCAST_DIMS: usize = 6;

/// A shape as the broadcasting kernels take it.
pub(crate) type Shape = [usize; BROADCAST_DIMS];

/// `shapes` right-aligned at the longest rank (1s in front).
fn aligned(shapes: &[&[usize]]) -> Vec<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    shapes
        .iter()
        .map(|s| {
            let mut v = vec![1; rank - s.len()];
            v.extend_from_slice(s);
            v
        })
        .collect()
}

/// Aligned `shapes` (the first the full one, which every other broadcasts to) with the
/// dimensions that are 1 in all dropped and adjacent ones merged where every shape is,
/// in both, either full or 1: the same walk over the elements, in fewer dimensions.
fn coalesced(shapes: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![vec![]; shapes.len()];
    let mut last: Option<Vec<bool>> = None;
    for k in 0..shapes[0].len() {
        if shapes[0][k] == 1 {
            continue;
        }
        let broadcast: Vec<bool> = shapes.iter().map(|s| s[k] == 1).collect();
        let merge = last.as_ref() == Some(&broadcast);
        for (o, s) in out.iter_mut().zip(shapes) {
            match merge {
                true => *o.last_mut().unwrap() *= s[k],
                false => o.push(s[k]),
            }
        }
        last = Some(broadcast);
    }
    out
}

/// Coalesced `shapes` as the broadcasting kernels take them (right-aligned in
/// [`BROADCAST_DIMS`] dimensions, padded with 1s); more dimensions are an error naming
/// the shapes given (`given`).
fn merged_padded(what: &str, shapes: &[Vec<usize>], given: &[&[usize]]) -> Res<Vec<Shape>> {
    coalesced(shapes)
        .into_iter()
        .map(|s| {
            if s.len() > BROADCAST_DIMS {
                return Err(KernelError::Invalid(format!(
                    "{what}: shapes {given:?} keep more than the {BROADCAST_DIMS} dimensions \
                     the device kernels take, merged where they broadcast alike"
                )));
            }
            let mut d = [1; BROADCAST_DIMS];
            d[BROADCAST_DIMS - s.len()..].copy_from_slice(&s);
            Ok(d)
        })
        .collect()
}

/// The shapes of a broadcast `a op b` as the kernels take them (the result's, `a`'s,
/// `b`'s: dimensions merged where both operands broadcast alike, then padded), checked
/// against the operands' lengths `la` and `lb`. Any rank that merges to at most
/// [`BROADCAST_DIMS`] dimensions.
pub(crate) fn broadcast_shapes(
    sa: &[usize],
    la: usize,
    sb: &[usize],
    lb: usize,
) -> Res<[Shape; 3]> {
    check_len("broadcast operand a", la, sa.iter().product())?;
    check_len("broadcast operand b", lb, sb.iter().product())?;
    let [a, b]: [Vec<usize>; 2] = aligned(&[sa, sb]).try_into().expect("two shapes");
    let mut y = vec![];
    for (&u, &v) in a.iter().zip(&b) {
        y.push(match (u, v) {
            (u, v) if u == v || v == 1 => u,
            (1, v) => v,
            _ => {
                return Err(KernelError::Invalid(format!(
                    "shapes {sa:?} and {sb:?} do not broadcast"
                )))
            }
        });
    }
    let [y, a, b] = merged_padded("broadcast", &[y, a, b], &[sa, sb])?[..] else {
        unreachable!("three shapes in, three out")
    };
    Ok([y, a, b])
}

/// Whether the device kernels take `a op b` for operands of shapes `sa` and `sb` that
/// broadcast (at most [`BROADCAST_DIMS`] dimensions once merged).
pub fn broadcast_fits(sa: &[usize], sb: &[usize]) -> bool {
    broadcast_shapes(sa, sa.iter().product(), sb, sb.iter().product()).is_ok()
}

/// The kernel code of a broadcasting binary op (add, sub, mul, div).
pub(crate) fn broadcast_code(op: Binary) -> Res<u32> {
    match op {
        op if op.is_gradient() => Err(KernelError::Invalid(format!(
            "the activation gradient {op:?} does not broadcast"
        ))),
        op => Ok(op.code()),
    }
}

/// Values per output from which a device's `reduce_to` sums on a workgroup's (a block's)
/// lanes instead of one invocation (thread) per output.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) const LONG_SUM: usize = 256;

/// The shapes of a sum of `g` (shape `sy`, length `lg`) down to shape `sx`, which must
/// broadcast to `sy`, as the kernels take them: (`sy`, `sx`), merged and padded as in
/// [`broadcast_shapes`].
pub(crate) fn sum_shapes(sy: &[usize], lg: usize, sx: &[usize]) -> Res<[Shape; 2]> {
    check_len("reduce_to operand", lg, sy.iter().product())?;
    let yx = aligned(&[sy, sx]);
    if yx[0].iter().zip(&yx[1]).any(|(y, x)| x != y && *x != 1) {
        return Err(KernelError::Invalid(format!(
            "reduce_to: shape {sx:?} does not broadcast to {sy:?}"
        )));
    }
    let [y, x] = merged_padded("reduce_to", &yx, &[sy, sx])?[..] else {
        unreachable!("two shapes in, two out")
    };
    Ok([y, x])
}

/// Whether the device kernels sum values of shape `sy` down to shape `sx`, which
/// broadcasts to it (at most [`BROADCAST_DIMS`] dimensions once merged).
pub fn sum_fits(sy: &[usize], sx: &[usize]) -> bool {
    sum_shapes(sy, sy.iter().product(), sx).is_ok()
}

/// Where a `k`x`k` kernel plane goes in a `size`x`size` one: tap `(a, b)` at
/// `(off + a*dil, off + b*dil)`, for each of `planes` planes.
#[derive(Clone, Copy, Debug)]
pub struct Embed {
    pub planes: usize,
    pub k: usize,
    pub size: usize,
    pub dil: usize,
    pub off: usize,
}

impl Embed {
    /// Index in the large plane of tap `(a, b)` of the small one.
    pub fn at(&self, a: usize, b: usize) -> usize {
        (self.off + a * self.dil) * self.size + self.off + b * self.dil
    }

    /// Checks that the taps fall inside the large plane and that `small` and `large`
    /// values are the planes' sizes, before a device indexes with them.
    pub fn validate(&self, small: usize, large: usize) -> Res<()> {
        let Embed {
            planes,
            k,
            size,
            dil,
            off,
        } = *self;
        let last = (k.checked_sub(1))
            .and_then(|k1| k1.checked_mul(dil))
            .and_then(|s| s.checked_add(off));
        let area = |side: usize| side.checked_mul(side).and_then(|a| a.checked_mul(planes));
        let lens = area(k).zip(area(size));
        let (Some(last), Some((want_small, want_large))) = (last, lens) else {
            return Err(KernelError::Invalid(format!(
                "embed_kernel: sizes past range: {self:?}"
            )));
        };
        if k == 0 || dil == 0 || last >= size {
            return Err(KernelError::Invalid(format!(
                "embed_kernel: a {k}x{k} kernel at dilation {dil} and offset {off} does not \
                 fit a {size}x{size} one"
            )));
        }
        check_len("embed_kernel's small planes", small, want_small)?;
        check_len("embed_kernel's large planes", large, want_large)
    }
}

/// Most axes a device permute takes.
pub const PERMUTE_DIMS: usize = 6;

/// `shape` and `perm` with the axes of size 1 dropped and runs of axes that stay
/// adjacent, in order, merged into one: the same reordering of the values over fewer
/// axes. `perm` must be an order of the axes.
fn coalesced_permute(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    // Output axes in order, as runs of input axes `first..=last`.
    let mut runs: Vec<(usize, usize)> = vec![];
    for &p in perm.iter().filter(|&&p| shape[p] != 1) {
        match runs.last_mut() {
            // The next input axis, skipping those of size 1 between.
            Some((_, last)) if p > *last && (*last + 1..p).all(|q| shape[q] == 1) => *last = p,
            _ => runs.push((p, p)),
        }
    }
    let mut by_input: Vec<usize> = (0..runs.len()).collect();
    by_input.sort_by_key(|&r| runs[r].0);
    let sizes = by_input
        .iter()
        .map(|&r| shape[runs[r].0..=runs[r].1].iter().product())
        .collect();
    let mut new_perm = vec![0; runs.len()];
    for (at, &r) in by_input.iter().enumerate() {
        new_perm[r] = at;
    }
    (sizes, new_perm)
}

/// The output shape of `x` (`len` values of shape `shape`) permuted by `perm`, and for
/// each output axis the input stride it walks, with axes merged where they stay adjacent
/// (any rank that merges to at most [`PERMUTE_DIMS`] axes), padded at the front to
/// [`PERMUTE_DIMS`] axes (size 1, stride 0). Errors: a `perm` that is not an order of
/// the axes, more than [`PERMUTE_DIMS`] axes once merged, a length that is not the
/// shape's, or a size past `u32`.
pub(crate) fn permute6(
    shape: &[usize],
    perm: &[usize],
    len: usize,
) -> Res<([usize; PERMUTE_DIMS], [usize; PERMUTE_DIMS])> {
    let rank = shape.len();
    if perm.len() != rank {
        return Err(KernelError::Invalid(format!(
            "permute {perm:?} of shape {shape:?}: one entry per axis"
        )));
    }
    let mut seen = vec![false; rank];
    for &p in perm {
        if p >= rank || std::mem::replace(&mut seen[p], true) {
            return Err(KernelError::Invalid(format!(
                "permute {perm:?} of shape {shape:?}: not an order of the axes"
            )));
        }
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= u32::MAX as usize);
    check_len("permute input", len, numel.unwrap_or(usize::MAX))?;
    let (shape, perm) = coalesced_permute(shape, perm);
    let rank = shape.len();
    if rank > PERMUTE_DIMS {
        return Err(KernelError::Invalid(format!(
            "permute: {rank} axes stay apart, more than the {PERMUTE_DIMS} the device \
             kernels take"
        )));
    }
    let mut stride = [0usize; PERMUTE_DIMS];
    let mut s = 1;
    for d in (0..rank).rev() {
        stride[d] = s;
        s *= shape[d];
    }
    let (mut dims, mut strides) = ([1usize; PERMUTE_DIMS], [0usize; PERMUTE_DIMS]);
    let pad = PERMUTE_DIMS - rank;
    for (d, &p) in perm.iter().enumerate() {
        dims[pad + d] = shape[p];
        strides[pad + d] = stride[p];
    }
    Ok((dims, strides))
}

/// Whether the device kernels permute values of shape `shape` by `perm` (an order of its
/// axes; at most [`PERMUTE_DIMS`] axes once merged).
pub fn permute_fits(shape: &[usize], perm: &[usize]) -> bool {
    permute6(shape, perm, shape.iter().product()).is_ok()
}

/// A running-statistics update's vectors (the batch's 1/std, the running mean and
/// variance) each hold one value per channel of the batch mean's `c`.
pub(crate) fn check_running_lens(c: usize, invstd: usize, mean: usize, var: usize) -> Res<()> {
    for (what, len) in [
        ("1/std", invstd),
        ("running mean", mean),
        ("running var", var),
    ] {
        check_len(&format!("batch_norm {what}"), len, c)?;
    }
    Ok(())
}

/// `start..start + len` within an axis of `total`.
pub(crate) fn check_range(start: usize, len: usize, total: usize) -> Res<()> {
    if start + len > total {
        return Err(KernelError::Invalid(format!(
            "slice {start}..{} of an axis of {total}",
            start + len
        )));
    }
    Ok(())
}

/// The common length of buffers of lengths `lens`, which must be `k` (at least one) of
/// one length.
pub(crate) fn same_lengths(what: &str, lens: impl Iterator<Item = usize>, k: usize) -> Res<usize> {
    let lens: Vec<usize> = lens.collect();
    let n = lens.first().copied().unwrap_or(0);
    if lens.is_empty() || lens.len() != k || lens.iter().any(|&l| l != n) {
        return Err(KernelError::Invalid(format!(
            "{what}: {} candidates of lengths {lens:?} for {k} weights",
            lens.len()
        )));
    }
    Ok(n)
}

/// Checks that `len` values are whole rows of `c` channels of `plane` (a per-channel
/// bias's operand).
pub(crate) fn check_channels(len: usize, c: usize, plane: usize) -> Res<()> {
    if c == 0 || plane == 0 || len % (c * plane) != 0 {
        return Err(KernelError::Invalid(format!(
            "add_channel: {len} values are not whole rows of {c} channels of {plane}"
        )));
    }
    Ok(())
}

static WGPU_DEVICE: OnceLock<Res<crate::gpu::Gpu>> = OnceLock::new();
static CUDA_DEVICE: OnceLock<Res<crate::cuda::Cuda>> = OnceLock::new();

/// The wgpu device, opened on first use. Nothing is routed to it: ops run there when
/// their tensors are in its memory (see [`Resident`]).
pub fn wgpu() -> Res<&'static crate::gpu::Gpu> {
    WGPU_DEVICE
        .get_or_init(crate::gpu::Gpu::new)
        .as_ref()
        .map_err(|e| e.clone())
}

/// The wgpu device if it has been opened.
pub fn wgpu_opened() -> Option<&'static crate::gpu::Gpu> {
    WGPU_DEVICE.get().and_then(|r| r.as_ref().ok())
}

fn backend_of_gpu(g: &'static crate::gpu::Gpu) -> Backend {
    #[cfg(feature = "wgpu")]
    return (g as &dyn Accel, g as &dyn Resident);
    #[cfg(not(feature = "wgpu"))]
    return g.backend();
}

fn backend_of_cuda(c: &'static crate::cuda::Cuda) -> Backend {
    #[cfg(feature = "cuda")]
    return (c as &dyn Accel, c as &dyn Resident);
    #[cfg(not(feature = "cuda"))]
    return c.backend();
}

/// The wgpu device's resident kernels, opened on first use.
pub fn wgpu_resident() -> Res<&'static dyn Resident> {
    Ok(backend_of_gpu(wgpu()?).1)
}

/// CUDA device `ordinal`, opened (and its kernels compiled) on first use. One CUDA device
/// per process: a later call with another ordinal is an error.
pub fn cuda(ordinal: usize) -> Res<&'static crate::cuda::Cuda> {
    let c = CUDA_DEVICE
        .get_or_init(|| crate::cuda::Cuda::new(ordinal))
        .as_ref()
        .map_err(|e| e.clone())?;
    if c.ordinal != ordinal {
        return Err(KernelError::Invalid(format!(
            "CUDA device {} is already open in this process; cannot open {ordinal} too",
            c.ordinal
        )));
    }
    Ok(c)
}

/// The CUDA device if it has been opened.
pub fn cuda_opened() -> Option<&'static crate::cuda::Cuda> {
    CUDA_DEVICE.get().and_then(|r| r.as_ref().ok())
}

/// CUDA device `ordinal`'s primitives, as both boundaries, opened on first use.
pub fn cuda_backend(ordinal: usize) -> Res<Backend> {
    Ok(backend_of_cuda(cuda(ordinal)?))
}

/// `"{kind}:{op}"` as a `&'static str` for the profiler (interned; the set of names is
/// small and fixed).
pub fn label(kind: &'static str, op: &'static str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<(&'static str, &'static str), &'static str>>> =
        OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    names
        .entry((kind, op))
        .or_insert_with(|| Box::leak(format!("{kind}:{op}").into_boxed_str()))
}

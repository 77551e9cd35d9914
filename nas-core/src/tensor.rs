//! Tensors: an n-d array of `f32` with an optional record of the op that made it, which is
//! all reverse-mode autodiff needs (see `autodiff.rs` for the gradient rules).

use crate::autodiff::Op;
use crate::buffer;
use crate::rng::Rng;
use nas_kernels::accel::{DevBuf, KernelError, Place, Res, Resident};
use nas_kernels::cpu::backend::HostBuf;
use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Node::placed`] of a host tensor, and of the two devices.
const HOST: u8 = 0;
const WGPU: u8 = 1;
const CUDA: u8 = 2;

/// The device that `tensors` (an op's operands; `op` gives its name) live on: None when all
/// are on the host. Operands on two devices are a panic naming the op and both devices
/// (an op runs on one device; move an operand with `Device::place_tensor` first).
pub(crate) fn common_place<'a>(tensors: &[&Tensor], op: impl FnOnce() -> &'a str) -> Option<Place> {
    crate::device::one_place(tensors.iter().map(|t| t.place()))
        .unwrap_or_else(|e| panic!("{}: {e}; put them on one first", op()))
}

/// A device as [`Node::placed`] holds it.
fn place_code(p: Option<Place>) -> u8 {
    match p {
        // Host tensors keep their values in `Node::data` (the CPU backend's buffer).
        None | Some(Place::Cpu) => HOST,
        Some(Place::Wgpu) => WGPU,
        Some(Place::Cuda) => CUDA,
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread record a graph for backward.
pub fn grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` recording the graph, even inside [`no_grad`] (a trace of the pass).
pub fn with_grad<R>(f: impl FnOnce() -> R) -> R {
    grad_mode(true, f)
}

/// Runs `f` without recording a graph (evaluation, optimiser updates).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    grad_mode(false, f)
}

fn grad_mode<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let prev = GRAD_ENABLED.with(|g| g.replace(on));
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _r = Restore(prev);
    f()
}

pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) shape: Vec<usize>,
    /// The values on the host: the CPU backend's buffer, which its kernels read without
    /// a copy and an op's result is made in.
    pub(crate) data: RwLock<HostBuf>,
    /// False while the values live only in `dev` (a device op's result nobody has read on
    /// the host yet); the first host read copies them back.
    host_ok: AtomicBool,
    /// The values in device memory, where a device op made them or read them.
    dev: Mutex<Option<DevBuf>>,
    /// The device the tensor lives on ([`HOST`], or a [`Place`] as [`place_code`] codes
    /// it): a device op's result, placed there, or given device values (`set_device`: an
    /// optimiser's or a running-statistics update made there); ops that read it run
    /// there. A host tensor a device op only read keeps its device copy as a cache but
    /// stays a host tensor.
    placed: AtomicU8,
    pub(crate) grad: Mutex<Option<Values>>,
    pub(crate) requires_grad: bool,
    pub(crate) op: Option<Op>,
    /// Floats this node adds to [`PARAMETER_FLOATS`] (a host parameter's; 0 otherwise).
    counted: usize,
}

/// Floats held by the parameters (trainable leaves) on the host, process-wide.
static PARAMETER_FLOATS: AtomicUsize = AtomicUsize::new(0);

/// Bytes the host's parameters may take: the memory available when the first one was
/// made ([`crate::data::source::memory_bound`], `NAS_MAX_MEMORY` included).
static PARAMETER_CAP: OnceLock<Option<u64>> = OnceLock::new();

/// Counts `n` more parameter floats, or fails ([`nas_kernels::failure::fail`]: an
/// error for the user) when the parameters would take more than the memory available.
/// A network far too large for the machine (`--channels 1024 --cells 100` on `darts`)
/// then stops at its first parameters past the bound, with a message, instead of
/// growing until the kernel kills the process.
fn count_parameter(n: usize) {
    let cap = *PARAMETER_CAP.get_or_init(crate::data::source::memory_bound);
    let fits = |live: usize| match cap {
        Some(cap) => (live as u64).saturating_add(n as u64).saturating_mul(4) <= cap,
        None => true,
    };
    // Added only where it fits, so a refused network never counts against another
    // thread's (trials side by side).
    let added = PARAMETER_FLOATS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| {
        fits(live).then(|| live + n)
    });
    if let (Err(_), Some(cap)) = (added, cap) {
        nas_kernels::failure::fail(format!(
            "out of host memory: the network's parameters take more than the {:.2} GiB \
             available (a smaller network fits: fewer --channels or --cells, a smaller \
             space file)",
            cap as f64 / (1u64 << 30) as f64
        ));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.counted > 0 {
            PARAMETER_FLOATS.fetch_sub(self.counted, Ordering::Relaxed);
        }
        // The values go back to the pool with the last holder of their buffer.
        if let Some(Values::Host(g)) = self.grad.get_mut().unwrap().take() {
            buffer::give(g);
        }
    }
}

/// Values on the host or on the device: a gradient (a device's gradients stay there
/// through backward and the optimiser step) or an optimiser's buffer for one parameter
/// (SGD's momentum, empty on the host before the first step; Adam's moments).
pub(crate) enum Values {
    Host(Vec<f32>),
    Dev(DevBuf),
}

impl Values {
    /// A host copy of the values (read back if they are on the device).
    pub(crate) fn to_host(&self) -> Vec<f32> {
        match self {
            Values::Host(v) => v.clone(),
            Values::Dev(b) => b
                .to_vec()
                .unwrap_or_else(|e| crate::device::fail(format!("reading values back: {e}"))),
        }
    }

    /// The values on the host (read back if they are on the device).
    pub(crate) fn into_host(self) -> Vec<f32> {
        match self {
            Values::Host(v) => v,
            dev => dev.to_host(),
        }
    }

    /// The values in `r`'s memory (uploaded if they are on the host).
    pub(crate) fn dev(&self, r: &dyn Resident) -> Res<DevBuf> {
        match self {
            Values::Host(v) => r.upload(v),
            Values::Dev(b) => Ok(b.clone()),
        }
    }

    /// The host values, read back in place first if they are on the device.
    pub(crate) fn host_mut(&mut self) -> &mut Vec<f32> {
        if let Values::Dev(_) = self {
            *self = Values::Host(self.to_host());
        }
        match self {
            Values::Host(v) => v,
            Values::Dev(_) => unreachable!(),
        }
    }
}

/// A tensor's values as [`Tensor::save`] kept them, to put back with
/// [`Tensor::restore`].
pub struct Saved(Values);

/// A shared handle to an n-d `f32` array on the CPU. Cloning shares the data.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Node>);

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.data();
        let head: Vec<f32> = d.iter().take(8).copied().collect();
        write!(
            f,
            "Tensor{:?}{:?}{}",
            self.shape(),
            head,
            if d.len() > 8 { "…" } else { "" }
        )
    }
}

impl Tensor {
    fn make(shape: Vec<usize>, data: Vec<f32>, requires_grad: bool, op: Option<Op>) -> Tensor {
        Tensor::make_host(shape, HostBuf::new(data), requires_grad, op)
    }

    fn make_host(shape: Vec<usize>, data: HostBuf, requires_grad: bool, op: Option<Op>) -> Tensor {
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "tensor data length does not match shape {shape:?}"
        );
        let counted = if requires_grad && op.is_none() {
            count_parameter(data.len());
            data.len()
        } else {
            0
        };
        Tensor(Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            data: RwLock::new(data),
            host_ok: AtomicBool::new(true),
            dev: Mutex::new(None),
            placed: AtomicU8::new(HOST),
            grad: Mutex::new(None),
            requires_grad,
            op,
            counted,
        }))
    }

    /// A constant (no gradient) tensor from data.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Tensor {
        Tensor::make(shape.to_vec(), data, false, None)
    }

    /// A trainable leaf: gradients accumulate into it on backward.
    pub fn parameter(data: Vec<f32>, shape: &[usize]) -> Tensor {
        Tensor::make(shape.to_vec(), data, true, None)
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::from_vec(buffer::take_zeroed(shape.iter().product()), shape)
    }

    /// Zeros of `shape` where `like` lives: made in device memory when `like` is a
    /// device tensor (nothing is uploaded), on the host otherwise.
    pub fn zeros_beside(shape: &[usize], like: &Tensor) -> Tensor {
        let Some(place) = like.place() else {
            return Tensor::zeros(shape);
        };
        let (a, r) = crate::autodiff::backend(place);
        let buf = crate::autodiff::on_device(a, "zeros", r.zeros(shape.iter().product()));
        Tensor::device_constant(shape.to_vec(), buf)
    }

    pub fn full(shape: &[usize], v: f32) -> Tensor {
        let mut d = buffer::take(shape.iter().product());
        d.fill(v);
        Tensor::from_vec(d, shape)
    }

    pub fn scalar(v: f32) -> Tensor {
        Tensor::from_vec(vec![v], &[1])
    }

    /// Standard normal entries times `std`.
    pub fn randn(shape: &[usize], std: f32, rng: &mut Rng) -> Tensor {
        let mut d = buffer::take(shape.iter().product());
        d.iter_mut().for_each(|v| *v = rng.normal() * std);
        Tensor::from_vec(d, shape)
    }

    /// Uniform entries in `[lo, hi)`.
    pub fn uniform(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Tensor {
        let mut d = buffer::take(shape.iter().product());
        d.iter_mut().for_each(|v| *v = rng.uniform_range(lo, hi));
        Tensor::from_vec(d, shape)
    }

    /// The result of an op computed on the host: records `op` for backward when any
    /// input needs a gradient. It lives where its inputs live: an op with no device
    /// kernel on device tensors gives a device tensor (uploaded when a device op reads
    /// it), so what follows stays on the device.
    pub(crate) fn from_op(shape: Vec<usize>, data: Vec<f32>, op: Op) -> Tensor {
        let rg = grad_enabled() && op.inputs().iter().any(|t| t.requires_grad());
        let placed = common_place(&op.inputs(), || op.name());
        let t = Tensor::make(shape, data, rg, if rg { Some(op) } else { None });
        t.0.placed.store(place_code(placed), Ordering::Release);
        t
    }

    /// The result of a device op, left in device memory.
    pub(crate) fn from_device(shape: Vec<usize>, buf: DevBuf, op: Op) -> Tensor {
        let rg = grad_enabled() && op.inputs().iter().any(|t| t.requires_grad());
        Tensor::device_node(shape, buf, rg, if rg { Some(op) } else { None })
    }

    /// A constant (no gradient) tensor whose values a device op left in device memory
    /// (batch norm's statistics).
    pub(crate) fn device_constant(shape: Vec<usize>, buf: DevBuf) -> Tensor {
        Tensor::device_node(shape, buf, false, None)
    }

    /// A tensor whose values are `buf`'s only, on its device (a host tensor holding
    /// them, for the CPU's).
    fn device_node(shape: Vec<usize>, buf: DevBuf, requires_grad: bool, op: Option<Op>) -> Tensor {
        if let DevBuf::Host(h) = buf {
            return Tensor::make_host(shape, h, requires_grad, op);
        }
        assert_eq!(
            buf.len(),
            shape.iter().product::<usize>(),
            "device buffer length does not match shape {shape:?}"
        );
        Tensor(Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            data: RwLock::new(HostBuf::new(vec![])),
            host_ok: AtomicBool::new(false),
            placed: AtomicU8::new(place_code(Some(buf.place()))),
            dev: Mutex::new(Some(buf)),
            grad: Mutex::new(None),
            requires_grad,
            op,
            counted: 0,
        }))
    }

    /// These values in `r`'s memory: the copy already there, or one made now and kept
    /// until the host changes the values (for the CPU, the host values themselves,
    /// shared). A tensor that lives on another device is an error naming both (the
    /// caller says which op); a host tensor's copy on another device is replaced.
    pub(crate) fn dev_buf(&self, r: &dyn Resident) -> Res<DevBuf> {
        if let Some(p) = self.place().filter(|&p| p != r.place()) {
            return Err(KernelError::Invalid(format!(
                "a tensor on {} read by an op on {} (tensors on two devices)",
                p.name(),
                r.place().name()
            )));
        }
        if r.place() == Place::Cpu {
            return Ok(DevBuf::Host(self.data().0.clone()));
        }
        // Lock order: data, then dev, as everywhere else (`fetch`, `data_mut`).
        let data = self.0.data.read().unwrap();
        let mut dev = self.0.dev.lock().unwrap();
        if let Some(b) = dev.as_ref().filter(|b| b.place() == r.place()) {
            return Ok(b.clone());
        }
        let b = r.upload(data.as_slice())?;
        *dev = Some(b.clone());
        Ok(b)
    }

    /// Whether the tensor lives on a device: ops run where their operands live.
    pub(crate) fn on_device(&self) -> bool {
        self.place().is_some()
    }

    /// The device the tensor lives on; None on the host.
    pub fn place(&self) -> Option<Place> {
        match self.0.placed.load(Ordering::Acquire) {
            WGPU => Some(Place::Wgpu),
            CUDA => Some(Place::Cuda),
            _ => None,
        }
    }

    /// Puts a copy of the values in `r`'s memory (if none is there yet): from now on
    /// the ops that read this tensor run on that device.
    pub(crate) fn upload_to(&self, r: &dyn Resident) -> Res<()> {
        if self.place().is_some_and(|p| p != r.place()) {
            // Moving between devices goes through the host.
            self.host_only();
        }
        self.dev_buf(r)?;
        self.0
            .placed
            .store(place_code(Some(r.place())), Ordering::Release);
        Ok(())
    }

    /// Drops any device copy (reading the values back first where only the device had
    /// them): from now on the ops that read this tensor run on the CPU.
    pub(crate) fn host_only(&self) {
        drop(self.data_mut());
        self.0.placed.store(HOST, Ordering::Release);
    }

    /// The values are now `buf`'s, in device memory (an optimiser's update on the
    /// device); the host copy is stale until the next host read. Never change a tensor a
    /// graph still uses.
    pub(crate) fn set_device(&self, buf: DevBuf) {
        assert_eq!(
            buf.len(),
            self.numel(),
            "device values for {:?}",
            self.shape()
        );
        let mut guard = self.0.data.write().unwrap();
        if let DevBuf::Host(h) = buf {
            // The CPU's values: the tensor's host values from now on.
            *guard = h;
            *self.0.dev.lock().unwrap() = None;
            self.0.host_ok.store(true, Ordering::Release);
            self.0.placed.store(HOST, Ordering::Release);
            return;
        }
        let code = place_code(Some(buf.place()));
        *self.0.dev.lock().unwrap() = Some(buf);
        self.0.host_ok.store(false, Ordering::Release);
        self.0.placed.store(code, Ordering::Release);
    }

    /// The values as they are now, to put back with [`Tensor::restore`] (batch norm's
    /// running statistics around an evaluation). A device tensor's buffer is kept as it
    /// is, not read back: device ops never write into a buffer they did not make, so it
    /// keeps these values while the tensor moves on to new ones.
    pub fn save(&self) -> Saved {
        if self.place().is_some() {
            if let Some(b) = self.0.dev.lock().unwrap().clone() {
                return Saved(Values::Dev(b));
            }
        }
        Saved(Values::Host(self.to_vec()))
    }

    /// Puts back the values [`Tensor::save`] kept (on the device they were on), as often
    /// as wanted. Never change a tensor a graph still uses.
    pub fn restore(&self, saved: &Saved) {
        match &saved.0 {
            Values::Dev(b) => self.set_device(b.clone()),
            Values::Host(v) => self.data_mut().copy_from_slice(v),
        }
    }

    /// Copies device-only values back to the host (once).
    fn fetch(&self) {
        if self.0.host_ok.load(Ordering::Acquire) {
            return;
        }
        let mut d = self.0.data.write().unwrap();
        if self.0.host_ok.load(Ordering::Acquire) {
            return;
        }
        let buf = self.0.dev.lock().unwrap().clone();
        let buf = buf.expect("a tensor without host values has a device buffer");
        *d = HostBuf::new(
            buf.to_vec()
                .unwrap_or_else(|e| crate::device::fail(format!("reading a tensor back: {e}"))),
        );
        self.0.host_ok.store(true, Ordering::Release);
    }

    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    pub fn dim(&self, i: usize) -> usize {
        self.0.shape[i]
    }
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }
    pub fn numel(&self) -> usize {
        self.0.shape.iter().product()
    }
    pub fn id(&self) -> u64 {
        self.0.id
    }
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }
    pub fn is_leaf(&self) -> bool {
        self.0.op.is_none()
    }
    /// The values on the host (copied back first if a device op left them there).
    pub fn data(&self) -> HostRead<'_> {
        self.fetch();
        HostRead(self.0.data.read().unwrap())
    }
    /// Mutable data, for optimisers and loaders; never change a tensor a graph still uses.
    /// Any device copy is dropped (the next device op uploads the new values).
    /// Values another tensor shares (a reshape's) are copied first, so it keeps them.
    pub fn data_mut(&self) -> HostWrite<'_> {
        self.fetch();
        // Clear the device copy under the write lock, so no upload of the old values
        // can slip in between (lock order: data, then dev, as in `fetch`).
        let guard = self.0.data.write().unwrap();
        *self.0.dev.lock().unwrap() = None;
        HostWrite(guard)
    }
    pub fn to_vec(&self) -> Vec<f32> {
        self.data().to_vec()
    }
    /// The single value of a one-element tensor.
    pub fn item(&self) -> f32 {
        assert_eq!(
            self.numel(),
            1,
            "item() on a tensor of shape {:?}",
            self.shape()
        );
        self.data()[0]
    }
    /// The accumulated gradient, if backward reached this tensor.
    /// (Read back from the device where it is there.)
    pub fn grad(&self) -> Option<Vec<f32>> {
        self.0
            .grad
            .lock()
            .unwrap()
            .as_mut()
            .map(|g| g.host_mut().clone())
    }
    pub(crate) fn grad_lock(&self) -> MutexGuard<'_, Option<Values>> {
        self.0.grad.lock().unwrap()
    }
    pub fn zero_grad(&self) {
        if let Some(Values::Host(g)) = self.grad_lock().take() {
            buffer::give(g);
        }
    }
    /// A copy that shares nothing and records no graph.
    pub fn detach(&self) -> Tensor {
        let mut d = buffer::take(self.numel());
        d.copy_from_slice(&self.data());
        Tensor::from_vec(d, self.shape())
    }
    pub(crate) fn op(&self) -> Option<&Op> {
        self.0.op.as_ref()
    }
    pub fn same(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A tensor's host values, read ([`Tensor::data`]).
pub struct HostRead<'a>(RwLockReadGuard<'a, HostBuf>);

impl Deref for HostRead<'_> {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        self.0.as_vec()
    }
}

/// A tensor's host values, to change ([`Tensor::data_mut`]).
pub struct HostWrite<'a>(RwLockWriteGuard<'a, HostBuf>);

impl Deref for HostWrite<'_> {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        self.0.as_vec()
    }
}

impl DerefMut for HostWrite<'_> {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        self.0.make_mut()
    }
}

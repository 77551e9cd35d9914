//! The wgpu backend: WGSL compute kernels on any Vulkan adapter, including Mesa's CPU
//! driver (lavapipe), so CI runs them for real; no adapter is an error naming what to
//! install.
//!
//! Kernels: unary and binary elementwise ops, matmul (tiled, either operand transposed),
//! direct conv2d and both gradients (stride, padding, dilation, groups), max pooling with
//! argmax and its gradient, average and adaptive average pooling and their gradients,
//! batch-norm statistics/apply/backward (one workgroup per channel), log-softmax and its
//! gradient, permutes, and the SGD and Adam updates. Kernels are recorded into one
//! command encoder and submitted in batches ([`Stream`]); freed output buffers are reused
//! ([`Pool`]). Training uses the [`crate::accel::Resident`]
//! implementation below: tensors, gradients and optimiser state live in device memory
//! ([`Buf`]) and ops run here when their operands are here. The
//! [`crate::accel::Accel`] implementation (host slices in, host vectors out) is the same
//! kernels with a copy each way, for the equivalence tests and the benchmarks.

use crate::accel::{broadcast_code, broadcast_shapes, check_len, check_range};
use crate::accel::{check_running_lens, permute6, same_lengths, sum_shapes, LONG_SUM};
use crate::accel::{Accel, Binary, DevBuf, Embed, Peaks, Res, Resident, Unary};
use crate::cpu::{conv::Conv2d, pool::Pool2d};
use crate::error::KernelError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// The kernels' WGSL source.
pub const SOURCE: &str = include_str!("kernels.wgsl");

/// Entry points of `SOURCE`.
pub const ENTRIES: &[&str] = &[
    "unary",
    "dropout_mask",
    "binary",
    "binary_bcast",
    "reduce_to",
    "reduce_to_lanes",
    "embed_kernel",
    "embed_kernel_backward",
    "matmul",
    "sum_parts",
    "im2col",
    "col2im",
    "conv2d",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "max_pool",
    "max_pool_backward",
    "avg_pool",
    "avg_pool_backward",
    "adaptive_avg_pool",
    "adaptive_avg_pool_backward",
    "bn_stats",
    "bn_stats_merge",
    "bn_apply",
    "bn_running",
    "bn_backward_sums",
    "bn_backward_input",
    "log_softmax",
    "log_softmax_lanes",
    "log_softmax_backward",
    "log_softmax_backward_lanes",
    "weighted_sum",
    "add_channel",
    "channel_sum",
    "axis_block",
    "permute",
    "weighted_sum_backward_input",
    "weighted_sum_backward_weight",
    "nll",
    "nll_backward",
    "peak_fma",
    "peak_read",
    "sgd",
    "adam",
];

/// An adapter with the kernels' pipelines built.
pub struct Gpu {
    stream: Arc<Stream>,
    /// Bound as B where a kernel reads no second input, and as I where it writes no
    /// indices (two buffers: one binding is read-only, the other read-write).
    no_b: wgpu::Buffer,
    no_i: wgpu::Buffer,
    layout: wgpu::BindGroupLayout,
    pipelines: HashMap<&'static str, wgpu::ComputePipeline>,
    /// Small host values already on the device (see [`Gpu::upload_small`]).
    known: std::sync::Mutex<Known>,
    /// The adapter's name and backend, for reports.
    pub adapter: String,
    /// Whether the adapter is a CPU driver (llvmpipe): its shaders stop after 65,535
    /// loop iterations in all, and each workgroup and dispatch costs; a GPU wants many
    /// short workgroups instead.
    cpu_driver: bool,
    /// The adapter's limit on a storage buffer's binding, in bytes.
    binding_limit: u64,
}

/// A bounded memory of small host vectors and device buffers holding exactly those
/// values, so values that go back down a step later (the labels from the loss to its
/// gradient) need no second upload. Only ever read by kernels, never written.
#[derive(Default)]
struct Known {
    entries: std::collections::VecDeque<(u64, Vec<f32>, Buf)>,
}

impl Known {
    const CAPACITY: usize = 512;
    /// Largest vector remembered, in floats.
    const MAX_LEN: usize = 1 << 14;

    fn key(x: &[f32]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        x.len().hash(&mut h);
        for v in x {
            v.to_bits().hash(&mut h);
        }
        h.finish()
    }

    fn find(&self, x: &[f32]) -> Option<Buf> {
        let key = Self::key(x);
        self.entries
            .iter()
            .find(|(k, v, _)| *k == key && v.len() == x.len() && bits_eq(v, x))
            .map(|(_, _, b)| b.clone())
    }

    fn remember(&mut self, x: &[f32], b: &Buf) {
        if x.len() > Self::MAX_LEN || self.find(x).is_some() {
            return;
        }
        if self.entries.len() == Self::CAPACITY {
            self.entries.pop_front();
        }
        self.entries
            .push_back((Self::key(x), x.to_vec(), b.clone()));
    }
}

/// Whether two float slices hold the same bits.
fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Kernels recorded since the last submission, at most this many: one submission per
/// kernel cost about 100 microseconds on Mesa's CPU driver (its queue thread woken for
/// each), and real GPUs also prefer few large submissions; a bound keeps the device busy
/// while the host records more, and keeps the resources a batch holds small.
const BATCH: usize = 64;

/// The device, its queue and the commands recorded for it but not yet submitted. Kernels
/// and device-side copies are recorded in order into one command encoder, which is
/// submitted when it holds [`BATCH`] of them, before a read-back, and before anything
/// else is submitted; a buffer dropped meanwhile stays alive until its commands ran.
pub(crate) struct Stream {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pending: Mutex<Pending>,
    pool: Mutex<Pool>,
}

/// Most bytes of freed buffers the pool keeps; a buffer freed past it is destroyed.
const POOL_BYTES: u64 = 2 << 30;

/// Whether buffers given back to the pool are filled with NaN (a test's check that no
/// kernel reads an output it did not write; see [`poison_freed_buffers`]).
static POISON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Fills every buffer given back to the pool with NaN from now on, so a kernel that
/// relied on a new buffer's zeros fails its test rather than reading a reused buffer's
/// old values. For tests; it costs a submission per freed buffer.
#[doc(hidden)]
pub fn poison_freed_buffers() {
    POISON.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Freed device buffers by size, for new outputs to reuse: a training step frees and
/// makes the same sizes again every step, and a new buffer costs an allocation and a
/// zero fill. A buffer is given back when the last [`Buf`] holding it is dropped; the
/// commands already recorded that read it still run before any later one writes it (one
/// queue, in order, with barriers between passes).
#[derive(Default)]
struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    bytes: u64,
    /// Sizes no longer taken are dropped (see [`crate::idle`]).
    recency: crate::idle::Recency<u64>,
}

impl Pool {
    fn take(&mut self, size: u64) -> Option<wgpu::Buffer> {
        for idle in self.recency.take(size) {
            if let Some(bufs) = self.free.remove(&idle) {
                self.bytes -= idle * bufs.len() as u64;
            }
        }
        let b = self.free.get_mut(&size)?.pop()?;
        self.bytes -= size;
        Some(b)
    }

    fn give(&mut self, b: wgpu::Buffer) {
        let size = b.size();
        self.recency.seen(size);
        if self.bytes + size <= POOL_BYTES {
            self.bytes += size;
            self.free.entry(size).or_default().push(b);
        }
    }
}

/// Gives its buffer back to the pool when the last [`Buf`] sharing it is dropped.
struct Lease {
    stream: Arc<Stream>,
    buf: wgpu::Buffer,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let s = &self.stream;
        if POISON.load(std::sync::atomic::Ordering::Relaxed) {
            // Submit the commands that read it first: a queue write runs before the
            // commands of the next submission.
            if s.flush().is_err() {
                return;
            }
            let nan = f32::NAN.to_le_bytes();
            let bytes: Vec<u8> = (0..self.buf.size() / 4).flat_map(|_| nan).collect();
            s.queue.write_buffer(&self.buf, 0, &bytes);
        }
        s.pool.lock().unwrap().give(self.buf.clone());
    }
}

#[derive(Default)]
struct Pending {
    enc: Option<wgpu::CommandEncoder>,
    /// What the recorded commands are, for the error a failed submission reports.
    what: Vec<&'static str>,
    /// The error of a submission that failed: its commands did not run, so buffers
    /// handed out as their results hold nothing meaningful, and every later use of the
    /// device reports this error instead.
    failed: Option<KernelError>,
}

impl Stream {
    /// Records commands (`encode` writes them into the pending encoder), then submits if
    /// the batch is full.
    fn record(
        &self,
        what: &'static str,
        encode: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> Res<()> {
        let mut p = self.pending.lock().unwrap();
        if let Some(e) = &p.failed {
            return Err(e.clone());
        }
        let enc = p.enc.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("nas") })
        });
        encode(enc);
        p.what.push(what);
        if p.what.len() >= BATCH {
            self.submit(&mut p)?;
        }
        Ok(())
    }

    /// Submits everything recorded so far.
    fn flush(&self) -> Res<()> {
        self.submit(&mut self.pending.lock().unwrap())
    }

    fn submit(&self, p: &mut Pending) -> Res<()> {
        if let Some(e) = &p.failed {
            return Err(e.clone());
        }
        let Some(enc) = p.enc.take() else {
            return Ok(());
        };
        let what = std::mem::take(&mut p.what);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        self.queue.submit([enc.finish()]);
        match pollster::block_on(scope.pop()) {
            Some(err) => {
                let mut names = what;
                names.dedup();
                let e = KernelError::device(format!("wgpu commands ({})", names.join(", ")), err);
                p.failed = Some(e.clone());
                Err(e)
            }
            None => Ok(()),
        }
    }
}

/// `len` floats in the wgpu device's memory; cloning shares the buffer. It carries its
/// device, so it can be read back wherever it ends up.
#[derive(Clone)]
pub struct Buf {
    stream: Arc<Stream>,
    buf: wgpu::Buffer,
    len: usize,
    /// Where the buffer goes when the last `Buf` holding it is dropped: the pool (an
    /// output), or nowhere (an upload).
    _lease: Option<Arc<Lease>>,
}

impl Buf {
    const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
        .union(wgpu::BufferUsages::COPY_SRC)
        .union(wgpu::BufferUsages::COPY_DST);

    /// How many floats it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its contents copied back to the host (waits for the kernels that write it).
    pub fn to_vec(&self) -> Res<Vec<f32>> {
        Ok(self
            .read_bytes()?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// Its contents as `u32`s (an index buffer such as max pooling's argmax).
    pub fn to_u32_vec(&self) -> Res<Vec<u32>> {
        Ok(self
            .read_bytes()?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// Its first `4 * len` bytes, through a staging buffer.
    fn read_bytes(&self) -> Res<Vec<u8>> {
        let size = (4 * self.len.max(1)) as u64;
        let s = &self.stream;
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let staging = allocate(&s.device, "read back", size, usage, false)?;
        s.record("read back", |enc| {
            enc.copy_buffer_to_buffer(&self.buf, 0, &staging, 0, size)
        })?;
        s.flush()?;
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        s.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| KernelError::device("wgpu poll", e))?;
        rx.recv()
            .map_err(|e| KernelError::device("wgpu map", e))?
            .map_err(|e| KernelError::device("wgpu map", e))?;
        let mut v = slice
            .get_mapped_range()
            .map_err(|e| KernelError::device("wgpu map range", format!("{e:?}")))?
            .to_vec();
        staging.unmap();
        v.truncate(4 * self.len);
        crate::transfer::down(v.len());
        Ok(v)
    }
}

fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Most workgroups a dispatch takes along each dimension of its grid (wgpu's default).
const MAX_GROUPS: usize = 65_535;

/// Workgroups for a kernel that takes one workgroup per item, `n` items (2-D past 65535;
/// `group_index` in the WGSL source).
fn groups_each(n: usize) -> (u32, u32) {
    let x = n.clamp(1, MAX_GROUPS);
    (x as u32, n.div_ceil(x) as u32)
}

/// Workgroups for `n` invocations of a 64-wide 1-D kernel (2-D past 65535 groups).
fn groups_1d(n: usize) -> (u32, u32) {
    let g = n.div_ceil(64).max(1);
    if g <= MAX_GROUPS {
        (g as u32, 1)
    } else {
        (MAX_GROUPS as u32, g.div_ceil(MAX_GROUPS) as u32)
    }
}

impl Gpu {
    /// The first Vulkan adapter (a GPU, or Mesa's CPU driver), with every pipeline built.
    pub fn new() -> Res<Gpu> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::VULKAN;
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| {
            KernelError::Unavailable(format!(
                "no wgpu (Vulkan) adapter: {e}; on a machine without a GPU install Mesa's CPU \
                 Vulkan driver (Debian/Ubuntu: mesa-vulkan-drivers)"
            ))
        })?;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("nas"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| {
            // The adapter is there: failing to open it is a failure, not an absence.
            KernelError::device(
                format!("wgpu adapter {}", info.name),
                format!("cannot open a device: {e}"),
            )
        })?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("nas kernels"),
            source: wgpu::ShaderSource::Wgsl(SOURCE.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("nas kernels"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, true),
                storage(3, false),
                storage(4, false),
            ],
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("nas kernels"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipelines = ENTRIES
            .iter()
            .map(|&e| {
                let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(e),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(e),
                    compilation_options: Default::default(),
                    cache: None,
                });
                (e, p)
            })
            .collect();
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(KernelError::Compile(format!(
                "building the WGSL kernels: {err}"
            )));
        }
        let no_buffer = |label| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 4,
                usage: Buf::USAGE,
                mapped_at_creation: false,
            })
        };
        let (no_b, no_i) = (no_buffer("no b"), no_buffer("no i"));
        let binding_limit = device.limits().max_storage_buffer_binding_size as u64;
        Ok(Gpu {
            stream: Arc::new(Stream {
                device,
                queue,
                pending: Default::default(),
                pool: Default::default(),
            }),
            no_b,
            no_i,
            layout,
            pipelines,
            known: Default::default(),
            adapter: format!("{} ({:?})", info.name, info.backend),
            cpu_driver: info.device_type == wgpu::DeviceType::Cpu,
            binding_limit,
        })
    }

    /// The adapter's largest buffer, in bytes.
    pub fn buffer_limit(&self) -> u64 {
        self.device().limits().max_buffer_size
    }

    /// The device.
    fn device(&self) -> &wgpu::Device {
        &self.stream.device
    }

    /// A bind group and pipeline for one compute pass of `entry` with parameters `params`
    /// (u32s; floats as bits) and `bufs` bound as A, B, Y and I; `encode` then records
    /// the pass (`reps` dispatches over `groups` workgroups) into an encoder.
    fn encode(
        &self,
        entry: &str,
        params: &[u32],
        bufs: [&wgpu::Buffer; 4],
        groups: (u32, u32, u32),
        reps: u32,
    ) -> Res<(&'static str, impl FnOnce(&mut wgpu::CommandEncoder) + '_)> {
        assert!(params.len() <= 16, "at most 16 kernel parameters");
        let (&name, pipeline) = self
            .pipelines
            .get_key_value(entry)
            .ok_or_else(|| KernelError::Invalid(format!("no wgpu kernel `{entry}`")))?;
        let d = self.device();
        // A buffer past the adapter's binding limit is refused here, by size, where wgpu
        // would give a validation error naming only the binding.
        let limit = self.binding_limit;
        if let Some(big) = bufs.iter().map(|b| b.size()).find(|&s| s > limit) {
            return Err(KernelError::Invalid(format!(
                "wgpu kernel `{entry}`: a buffer of {:.1} MiB is past this adapter's limit of \
                 {:.1} MiB per storage binding (a smaller batch, image or layer fits)",
                mib(big),
                mib(limit)
            )));
        }
        let mut p = [0u32; 16];
        p[..params.len()].copy_from_slice(params);
        let pb: Vec<u8> = p.iter().flat_map(|x| x.to_le_bytes()).collect();
        let params_buf = d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: &pb,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let entries: Vec<wgpu::BindGroupEntry> = std::iter::once(&params_buf)
            .chain(bufs)
            .enumerate()
            .map(|(k, buf)| wgpu::BindGroupEntry {
                binding: k as u32,
                resource: buf.as_entire_binding(),
            })
            .collect();
        let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &self.layout,
            entries: &entries,
        });
        Ok((name, move |enc: &mut wgpu::CommandEncoder| {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(name),
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind, &[]);
            for _ in 0..reps {
                pass.dispatch_workgroups(groups.0, groups.1, groups.2);
            }
        }))
    }

    /// Runs entry point `entry` on inputs `a`, `b` with parameters `params` (u32s; floats
    /// as bits) over `groups` workgroups; returns `out_len` floats.
    fn run(
        &self,
        entry: &str,
        params: &[u32],
        a: &[f32],
        b: &[f32],
        out_len: usize,
        groups: (u32, u32),
    ) -> Res<Vec<f32>> {
        let (a, b) = (self.upload(a)?, self.upload(b)?);
        self.run_dev(entry, params, &a, Some(&b), out_len, groups)?
            .to_vec()
    }

    /// Runs `entry` on buffers already on the device (`b` absent for one-input kernels)
    /// and leaves its `out_len` floats there.
    pub(crate) fn run_dev(
        &self,
        entry: &str,
        params: &[u32],
        a: &Buf,
        b: Option<&Buf>,
        out_len: usize,
        groups: (u32, u32),
    ) -> Res<Buf> {
        let y = self.output("y", out_len)?;
        let b = b.map_or(&self.no_b, |b| &b.buf);
        self.dispatch(entry, params, [&a.buf, b, &y.buf, &self.no_i], groups)?;
        Ok(y)
    }

    /// Records one dispatch of `entry` (submitted with the batch it joins); a validation
    /// error in its bindings is the error.
    fn dispatch(
        &self,
        entry: &str,
        params: &[u32],
        bufs: [&wgpu::Buffer; 4],
        groups: (u32, u32),
    ) -> Res<()> {
        self.dispatch3(entry, params, bufs, (groups.0, groups.1, 1))
    }

    /// [`Gpu::dispatch`] over a 3-D grid of workgroups.
    fn dispatch3(
        &self,
        entry: &str,
        params: &[u32],
        bufs: [&wgpu::Buffer; 4],
        groups: (u32, u32, u32),
    ) -> Res<()> {
        let scope = self
            .device()
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let (name, pass) = self.encode(entry, params, bufs, groups, 1)?;
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(KernelError::device(format!("wgpu kernel `{entry}`"), err));
        }
        self.stream.record(name, pass)
    }

    /// `x` copied into a new device buffer (one float for an empty `x`, which no kernel
    /// reads).
    pub fn upload(&self, x: &[f32]) -> Res<Buf> {
        let len = x.len();
        let x = if x.is_empty() { &[0.0f32][..] } else { x };
        let buf = allocate(
            self.device(),
            "upload",
            4 * x.len() as u64,
            Buf::USAGE,
            true,
        )?;
        {
            let mut view = buf
                .get_mapped_range_mut(..)
                .map_err(|e| KernelError::device("wgpu upload", format!("{e:?}")))?;
            let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
            view.slice(..).copy_from_slice(&bytes);
        }
        buf.unmap();
        if len > 0 {
            crate::transfer::up(4 * len);
        }
        // Not given back to the pool: outputs never take an upload's place, and a batch
        // a step uploads would otherwise add a buffer to the pool every step.
        Ok(Buf {
            stream: self.stream.clone(),
            buf,
            len,
            _lease: None,
        })
    }

    /// `x` on the device for kernels to read: a buffer already holding exactly these
    /// values if one is remembered, else a new upload, remembered.
    fn upload_small(&self, x: &[f32]) -> Res<Buf> {
        let mut known = self.known.lock().unwrap();
        if let Some(b) = known.find(x) {
            return Ok(b);
        }
        let b = self.upload(x)?;
        known.remember(x, &b);
        Ok(b)
    }

    /// `x` copied into a new device buffer, as the engine holds it.
    fn dup(&self, x: &[f32]) -> Res<DevBuf> {
        Ok(DevBuf::Wgpu(self.upload(x)?))
    }

    /// A device buffer for a kernel's `len` outputs: a freed one of that size from the
    /// pool (holding old values), else a new one (zeros).
    fn output(&self, label: &str, len: usize) -> Res<Buf> {
        Ok(self.pooled(label, len)?.0)
    }

    /// [`Gpu::output`], and whether the buffer came from the pool.
    fn pooled(&self, label: &str, len: usize) -> Res<(Buf, bool)> {
        let size = (4 * len.max(1)) as u64;
        if let Some(buf) = self.stream.pool.lock().unwrap().take(size) {
            return Ok((self.wrap(buf, len), true));
        }
        let buf = allocate(self.device(), label, size, Buf::USAGE, false)?;
        Ok((self.wrap(buf, len), false))
    }

    /// A device buffer of `len` zeros (a reused one cleared on the device).
    fn output_zeroed(&self, label: &str, len: usize) -> Res<Buf> {
        let (y, reused) = self.pooled(label, len)?;
        if reused {
            self.stream
                .record("clear", |enc| enc.clear_buffer(&y.buf, 0, None))?;
        }
        Ok(y)
    }

    fn wrap(&self, buf: wgpu::Buffer, len: usize) -> Buf {
        Buf {
            stream: self.stream.clone(),
            buf: buf.clone(),
            len,
            _lease: Some(Arc::new(Lease {
                stream: self.stream.clone(),
                buf,
            })),
        }
    }

    /// A zeroed storage buffer of `size` bytes that lives only on the device.
    fn scratch(&self, label: &str, size: u64) -> wgpu::Buffer {
        self.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    }

    /// Seconds for `reps` back-to-back dispatches of `entry` over `groups` workgroups,
    /// reading `a` (already on the device), with nothing read back.
    fn time_dispatches(
        &self,
        entry: &str,
        params: &[u32],
        a: &wgpu::Buffer,
        groups: u32,
        reps: u32,
    ) -> Res<f64> {
        let d = self.device();
        let small = |label| self.scratch(label, 256);
        let (b, y, i) = (small("b"), small("y"), small("i"));
        self.stream.flush()?;
        let scope = d.push_error_scope(wgpu::ErrorFilter::Validation);
        let (_, pass) = self.encode(entry, params, [a, &b, &y, &i], (groups, 1, 1), reps)?;
        let mut enc =
            d.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(entry) });
        pass(&mut enc);
        let cmd = enc.finish();
        let t = std::time::Instant::now();
        self.stream.queue.submit([cmd]);
        d.poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| KernelError::device("wgpu poll", e))?;
        let secs = t.elapsed().as_secs_f64();
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(KernelError::device(format!("wgpu kernel `{entry}`"), err));
        }
        Ok(secs)
    }

    /// Times `entry` with one dispatch, then with enough back-to-back dispatches for about
    /// a tenth of a second, and returns the work per second (`work` per dispatch).
    fn rate(
        &self,
        entry: &str,
        params: &[u32],
        a: &wgpu::Buffer,
        groups: u32,
        work: f64,
    ) -> Res<f64> {
        let once = self.time_dispatches(entry, params, a, groups, 1)?;
        let reps = (0.1 / once.max(1e-6)).ceil().clamp(1.0, 1000.0) as u32;
        let secs = self.time_dispatches(entry, params, a, groups, reps)?;
        Ok(work * reps as f64 / secs)
    }

    /// Measured peaks of this adapter: f32 multiply-add throughput (GFLOP/s) and read
    /// bandwidth from device memory (GB/s), with no host transfers in the timing.
    pub fn measure_peaks(&self) -> Res<(f64, f64)> {
        let groups = 4096u32;
        let threads = groups as usize * 64;
        let dummy = self.scratch("peak dummy", 256);
        let steps = 1024u32;
        let flops = (threads * steps as usize * 16) as f64;
        let params = [steps, 0.999f32.to_bits()];
        let gflops = self.rate("peak_fma", &params, &dummy, groups, flops)? / 1e9;
        // Larger than the last-level caches of current GPUs, within the binding limit.
        let limit = self.device().limits().max_storage_buffer_binding_size;
        let bytes = (256u64 << 20).min(limit) & !255;
        let big = self.scratch("peak read", bytes);
        let n = (bytes / 4) as u32;
        let params = [n, n.div_ceil(groups)];
        let gbs = self.rate("peak_read", &params, &big, groups, bytes as f64)? / 1e9;
        Ok((gflops, gbs))
    }

    /// A unary op (`op` codes as in the WGSL source; `a`, `b` for `x*a+b`).
    pub fn unary(&self, x: &[f32], op: u32, a: f32, b: f32) -> Res<Vec<f32>> {
        let params = [x.len() as u32, op, a.to_bits(), b.to_bits()];
        self.run("unary", &params, x, &[], x.len(), groups_1d(x.len()))
    }

    /// A same-shape binary op: 0 add, 1 sub, 2 mul, 3 div.
    pub fn binary(&self, x: &[f32], y: &[f32], op: u32) -> Res<Vec<f32>> {
        assert_eq!(x.len(), y.len(), "binary: lengths differ");
        let params = [x.len() as u32, op];
        self.run("binary", &params, x, y, x.len(), groups_1d(x.len()))
    }

    fn pool_params(p: &Pool2d, cip: bool) -> [u32; 12] {
        [
            p.n * p.c,
            p.h,
            p.w,
            p.kh,
            p.kw,
            p.sh,
            p.sw,
            p.ph,
            p.pw,
            p.out_h(),
            p.out_w(),
            cip as usize,
        ]
        .map(|v| v as u32)
    }

    fn conv_params(p: &Conv2d) -> [u32; 16] {
        [
            p.n,
            p.cin,
            p.h,
            p.w,
            p.cout,
            p.kh,
            p.kw,
            p.sh,
            p.sw,
            p.ph,
            p.pw,
            p.dh,
            p.dw,
            p.groups,
            p.out_h(),
            p.out_w(),
        ]
        .map(|v| v as u32)
    }
}

impl Accel for Gpu {
    fn kind(&self) -> &'static str {
        "wgpu"
    }

    fn describe(&self) -> String {
        format!("wgpu: {}", self.adapter)
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
        let (a, b) = (self.dup(a)?, self.dup(b)?);
        Resident::matmul(self, m, n, k, &a, ta, &b, tb)?.to_vec()
    }

    fn conv2d(&self, p: &Conv2d, x: &[f32], w: &[f32]) -> Res<Vec<f32>> {
        crate::accel::check_conv(p, Some(x), Some(w), None)?;
        let (x, w) = (self.dup(x)?, self.dup(w)?);
        Resident::conv2d(self, p, &x, &w, None)?.to_vec()
    }

    fn conv2d_backward_input(&self, p: &Conv2d, gy: &[f32], w: &[f32]) -> Res<Vec<f32>> {
        crate::accel::check_conv(p, None, Some(w), Some(gy))?;
        let (gy, w) = (self.dup(gy)?, self.dup(w)?);
        Resident::conv2d_backward_input(self, p, &gy, &w)?.to_vec()
    }

    fn conv2d_backward_weight(&self, p: &Conv2d, x: &[f32], gy: &[f32]) -> Res<Vec<f32>> {
        crate::accel::check_conv(p, Some(x), None, Some(gy))?;
        let (x, gy) = (self.dup(x)?, self.dup(gy)?);
        Resident::conv2d_backward_weight(self, p, &x, &gy)?.to_vec()
    }

    fn max_pool(&self, p: &Pool2d, x: &[f32]) -> Res<(Vec<f32>, Vec<u32>)> {
        let (y, arg) = Resident::max_pool(self, p, &self.dup(x)?)?;
        Ok((y.to_vec()?, arg.to_u32_vec()?))
    }

    fn max_pool_backward(&self, p: &Pool2d, gy: &[f32], arg: &[u32]) -> Res<Vec<f32>> {
        // The indices go up as they are (their bits), as the forward leaves them.
        let arg: Vec<f32> = arg.iter().map(|&a| f32::from_bits(a)).collect();
        let (gy, arg) = (self.dup(gy)?, self.dup(&arg)?);
        Resident::max_pool_backward(self, p, &gy, &arg)?.to_vec()
    }

    fn avg_pool(&self, p: &Pool2d, cip: bool, x: &[f32]) -> Res<Vec<f32>> {
        Resident::avg_pool(self, p, cip, &self.dup(x)?)?.to_vec()
    }

    fn avg_pool_backward(&self, p: &Pool2d, cip: bool, gy: &[f32]) -> Res<Vec<f32>> {
        Resident::avg_pool_backward(self, p, cip, &self.dup(gy)?)?.to_vec()
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
        Resident::adaptive_avg_pool(self, planes, h, w, oh, ow, &self.dup(x)?)?.to_vec()
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
        Resident::adaptive_avg_pool_backward(self, planes, h, w, oh, ow, &self.dup(gy)?)?.to_vec()
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
        let (x, gamma, beta) = (self.dup(x)?, self.dup(gamma)?, self.dup(beta)?);
        let (y, mean, invstd) = Resident::batch_norm_train(self, n, c, hw, &x, &gamma, &beta, eps)?;
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
        let [x, gy, gamma, mean, invstd] = [x, gy, gamma, mean, invstd].map(|v| self.dup(v));
        let [x, gy, gamma, mean, invstd] = [x?, gy?, gamma?, mean?, invstd?];
        let (gx, ggamma, gbeta) =
            Resident::batch_norm_backward(self, n, c, hw, &x, &gy, &gamma, &mean, &invstd)?;
        Ok((gx.to_vec()?, ggamma.to_vec()?, gbeta.to_vec()?))
    }

    fn log_softmax(&self, rows: usize, cols: usize, x: &[f32]) -> Res<Vec<f32>> {
        Resident::log_softmax(self, rows, cols, &self.dup(x)?)?.to_vec()
    }

    fn log_softmax_backward(
        &self,
        rows: usize,
        cols: usize,
        y: &[f32],
        gy: &[f32],
    ) -> Res<Vec<f32>> {
        Resident::log_softmax_backward(self, rows, cols, &self.dup(y)?, &self.dup(gy)?)?.to_vec()
    }

    fn weighted_sum(&self, k: usize, xs: &[f32], w: &[f32]) -> Res<Vec<f32>> {
        let n = crate::accel::candidate_len(k, xs, w, None)?;
        let params = [n as u32, k as u32];
        self.run("weighted_sum", &params, xs, w, n, groups_1d(n))
    }

    fn weighted_sum_backward(
        &self,
        k: usize,
        xs: &[f32],
        w: &[f32],
        gy: &[f32],
    ) -> Res<(Vec<f32>, Vec<f32>)> {
        let n = crate::accel::candidate_len(k, xs, w, Some(gy))?;
        let params = [n as u32, k as u32];
        let gx = self.run(
            "weighted_sum_backward_input",
            &params,
            gy,
            w,
            k * n,
            groups_1d(k * n),
        )?;
        let gw = self.mixing_grads(&self.upload(xs)?, &self.upload(gy)?, n, k)?;
        Ok((gx, gw))
    }

    fn peaks(&self) -> Res<Peaks> {
        let (gflops, gbs) = self.measure_peaks()?;
        Ok(Peaks {
            gflops,
            gbs,
            how: "measured on the adapter: multiply-add chains, and reads of a buffer larger \
                  than its caches",
        })
    }

    fn nll(&self, rows: usize, cols: usize, logp: &[f32], targets: &[u32]) -> Res<f32> {
        Resident::nll(self, rows, cols, &self.dup(logp)?, targets)
    }

    fn nll_backward(&self, rows: usize, cols: usize, targets: &[u32], g: f32) -> Res<Vec<f32>> {
        Resident::nll_backward(self, rows, cols, targets, g)?.to_vec()
    }
}

impl Gpu {
    /// The buffers' contents back to back in a new buffer (device-side copies; nothing
    /// crosses to the host).
    fn concat(&self, parts: &[&Buf]) -> Res<Buf> {
        let len = parts.iter().map(|b| b.len).sum();
        let y = self.output("concat", len)?;
        self.stream.record("concat", |enc| {
            let mut at = 0u64;
            for b in parts {
                let size = 4 * b.len as u64;
                if size > 0 {
                    enc.copy_buffer_to_buffer(&b.buf, 0, &y.buf, at, size);
                }
                at += size;
            }
        })?;
        Ok(y)
    }

    /// `len` floats of `b` from `offset`, in a new buffer (a device-side copy).
    fn part(&self, b: &Buf, offset: usize, len: usize) -> Res<Buf> {
        let y = self.output("part", len)?;
        if len > 0 {
            self.stream.record("part", |enc| {
                enc.copy_buffer_to_buffer(&b.buf, 4 * offset as u64, &y.buf, 0, 4 * len as u64)
            })?;
        }
        Ok(y)
    }
}

/// Most values one workgroup of `reduce_to_lanes` sums: 1,024 per lane, far inside the
/// 65,535 loop iterations llvmpipe allows a shader (all its loops together).
const SUM_PART: usize = 64 * 1024;

/// Most values one workgroup of a per-channel (lane) kernel sums: 16,384 per lane, well
/// inside the 65,535 loop iterations llvmpipe allows a shader (all its loops together).
/// CPU drivers take parts this long.
const LANE_PART: usize = 64 * 16_384;

/// The parts GPUs take: 64 values per lane, so that a batch's channel (64 x 32 x 32
/// values, say) spreads over 16 workgroups rather than one.
const GPU_LANE_PART: usize = 64 * 64;

/// A test's part length for the lane kernels in place of the adapter's (0: none).
static LANE_PART_FOR_TESTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Makes the per-channel (lane) kernels split their sums into parts of `values` values
/// (0: the adapter's own choice again), so that tests on a CPU driver run the GPU's
/// many-part paths. Any part length gives the same sums, up to rounding.
#[doc(hidden)]
pub fn set_lane_part(values: usize) {
    LANE_PART_FOR_TESTS.store(values, std::sync::atomic::Ordering::Relaxed);
}

/// Columns from which log-softmax and its gradient run a workgroup per row: one
/// invocation loops three times over its row, which llvmpipe stops past 21,845 columns.
const WIDE_ROW: usize = 1024;

/// Which of a per-row op's two kernels (`[narrow, wide]`) runs over `rows` rows of `cols`,
/// and its workgroups: an invocation per row for narrow rows (a classifier's classes), a
/// workgroup per row, its lanes striding over the columns, from [`WIDE_ROW`] columns on.
fn per_row(kernels: [&'static str; 2], rows: usize, cols: usize) -> (&'static str, (u32, u32)) {
    if cols < WIDE_ROW {
        (kernels[0], groups_1d(rows))
    } else {
        (kernels[1], groups_each(rows))
    }
}

/// Most of k one invocation of `matmul` sums over; a longer k is split into parts.
const MM_K_PART: usize = 16_384;

/// Most loop iterations a kernel's invocation may take on a CPU driver (about half of
/// llvmpipe's 65,535 in all, for the loops that do not grow with the data).
const LOOPS_PER_INVOCATION: usize = 32_768;

/// A new buffer of `size` bytes on `device`: one past the adapter's limit per buffer, or
/// one the device has no memory for, is an error naming `label` and the size (wgpu would
/// report either to its handler for errors nobody waits for, which panics). Error scopes
/// are the calling thread's, so trials side by side do not see each other's.
fn allocate(
    device: &wgpu::Device,
    label: &str,
    size: u64,
    usage: wgpu::BufferUsages,
    mapped: bool,
) -> Res<wgpu::Buffer> {
    let limit = device.limits().max_buffer_size;
    if size > limit {
        return Err(KernelError::Invalid(format!(
            "wgpu `{label}`: a buffer of {:.1} MiB is past this adapter's limit of {:.1} MiB \
             per buffer (a smaller batch, image or layer fits)",
            mib(size),
            mib(limit)
        )));
    }
    let memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let valid = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage,
        mapped_at_creation: mapped,
    });
    let invalid = pollster::block_on(valid.pop());
    let out_of_memory = pollster::block_on(memory.pop());
    match invalid.or(out_of_memory) {
        Some(e) => Err(KernelError::device(
            format!("wgpu `{label}`: allocating {:.1} MiB", mib(size)),
            e,
        )),
        None => Ok(buf),
    }
}

/// `bytes` in MiB, for messages.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// Upper bounds on the loop iterations of one invocation of the pooling kernels,
/// counting a loop's entry and exit tests as iterations too: the forward's (over a
/// window) and the backward's (over the outputs whose windows hold an input).
fn pool_loops(p: &Pool2d) -> (usize, usize) {
    let fwd = p.kh * (p.kw + 2) + 1;
    let rows = p.out_h().min(p.kh.div_ceil(p.sh) + 1);
    let cols = p.out_w().min(p.kw.div_ceil(p.sw) + 1);
    (fwd, rows * (cols + 2) + 1)
}

/// Most floats the per-image parts of a direct convolution's weight gradient take.
const PARTS_FLOATS: usize = 1 << 22;

/// Workgroups of the tiled convolution kernels for `planes` planes of `h`x`w` (see
/// `tile` in the WGSL source): x over a plane's 8x8 blocks, continued on `yb` rows of y
/// where a plane has more than 65,535 blocks; the rest of y and z over the planes.
fn tiles(h: usize, w: usize, planes: usize) -> Res<(u32, u32, u32)> {
    const LIM: usize = MAX_GROUPS;
    let blocks = (h.div_ceil(8) * w.div_ceil(8)).max(1);
    let x = blocks.min(LIM);
    let yb = blocks.div_ceil(x);
    // Planes per grid row of z, and the rows of z they take.
    let per = planes.clamp(1, (LIM / yb).max(1));
    let z = planes.div_ceil(per).max(1);
    if yb > LIM || z > LIM {
        return Err(KernelError::Invalid(format!(
            "a {planes}x{h}x{w} convolution is past the wgpu grid limits ({blocks} blocks of \
             8x8 per plane)"
        )));
    }
    Ok((x as u32, (yb * per) as u32, z as u32))
}

/// `b` as this backend's buffer, or the error of a buffer of another device.
fn wb(b: &DevBuf) -> Res<&Buf> {
    match b {
        DevBuf::Wgpu(b) => Ok(b),
        other => Err(crate::accel::foreign("wgpu kernel", "wgpu", other)),
    }
}

/// [`wb`] of each buffer.
fn wbs(bs: &[DevBuf]) -> Res<Vec<&Buf>> {
    bs.iter().map(wb).collect()
}

impl Resident for Gpu {
    fn place(&self) -> crate::accel::Place {
        crate::accel::Place::Wgpu
    }

    fn finish(&self) -> Res<()> {
        self.stream.flush()?;
        self.device()
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| KernelError::device("wgpu poll", e))?;
        Ok(())
    }

    fn upload(&self, x: &[f32]) -> Res<DevBuf> {
        Ok(DevBuf::Wgpu(Gpu::upload(self, x)?))
    }

    fn zeros(&self, len: usize) -> Res<DevBuf> {
        Ok(DevBuf::Wgpu(self.output_zeroed("zeros", len)?))
    }

    fn dropout_mask(&self, len: usize, d: &crate::cpu::random::Dropout) -> Res<DevBuf> {
        crate::cpu::random::Dropout::check_len(len)?;
        let y = self.output("mask", len)?;
        if len > 0 {
            let params = [len as u32, d.s0, d.s1, d.below, d.keep.to_bits()];
            let bufs = [&self.no_b, &self.no_b, &y.buf, &self.no_i];
            self.dispatch("dropout_mask", &params, bufs, groups_1d(len))?;
        }
        Ok(DevBuf::Wgpu(y))
    }

    fn permute(&self, shape: &[usize], perm: &[usize], x: &DevBuf) -> Res<DevBuf> {
        let x = wb(x)?;
        let (dims, strides) = permute6(shape, perm, x.len)?;
        let n = x.len;
        let mut params = vec![n as u32];
        params.extend(dims.iter().chain(&strides).map(|&v| v as u32));
        self.run_dev("permute", &params, x, None, n, groups_1d(n))
            .map(DevBuf::Wgpu)
    }

    fn unary(&self, op: Unary, x: &DevBuf) -> Res<DevBuf> {
        let x = wb(x)?;
        let (code, a, b) = op.code();
        let n = x.len;
        let params = [n as u32, code, a.to_bits(), b.to_bits()];
        self.run_dev("unary", &params, x, None, n, groups_1d(n))
            .map(DevBuf::Wgpu)
    }

    fn binary(&self, op: Binary, a: &DevBuf, b: &DevBuf) -> Res<DevBuf> {
        let a = wb(a)?;
        let b = wb(b)?;
        check_len("binary operand", b.len, a.len)?;
        let code = op.code();
        let n = a.len;
        self.run_dev("binary", &[n as u32, code], a, Some(b), n, groups_1d(n))
            .map(DevBuf::Wgpu)
    }

    fn binary_broadcast(
        &self,
        op: Binary,
        a: &DevBuf,
        sa: &[usize],
        b: &DevBuf,
        sb: &[usize],
    ) -> Res<DevBuf> {
        let (a, b) = (wb(a)?, wb(b)?);
        let [y, da, db] = broadcast_shapes(sa, a.len, sb, b.len)?;
        let code = broadcast_code(op)?;
        let n: usize = y.iter().product();
        let mut params = vec![n as u32, code];
        params.extend(da.iter().chain(&db).map(|&d| d as u32));
        self.run_dev("binary_bcast", &params, a, Some(b), n, groups_1d(n))
            .map(DevBuf::Wgpu)
    }

    fn embed_kernel(&self, e: &Embed, x: &DevBuf) -> Res<DevBuf> {
        let x = wb(x)?;
        let n = e.planes * e.size * e.size;
        e.validate(x.len, n)?;
        let params = [n, e.k, e.size, e.dil, e.off].map(|v| v as u32);
        self.run_dev("embed_kernel", &params, x, None, n, groups_1d(n))
            .map(DevBuf::Wgpu)
    }

    fn embed_kernel_backward(&self, e: &Embed, g: &DevBuf) -> Res<DevBuf> {
        let g = wb(g)?;
        let n = e.planes * e.k * e.k;
        e.validate(n, g.len)?;
        let params = [n, e.k, e.size, e.dil, e.off].map(|v| v as u32);
        self.run_dev("embed_kernel_backward", &params, g, None, n, groups_1d(n))
            .map(DevBuf::Wgpu)
    }

    fn reduce_to(&self, g: &DevBuf, sy: &[usize], sx: &[usize]) -> Res<DevBuf> {
        let g = wb(g)?;
        let [y, x] = sum_shapes(sy, g.len, sx)?;
        let n: usize = x.iter().product();
        let total = g.len / n.max(1);
        let mut params = vec![n as u32];
        params.extend(y.iter().chain(&x).map(|&d| d as u32));
        if total < LONG_SUM {
            return self
                .run_dev("reduce_to", &params, g, None, n, groups_1d(n))
                .map(DevBuf::Wgpu);
        }
        // Long sums: a workgroup per output and part of at most SUM_PART values.
        let parts = total.div_ceil(SUM_PART);
        params.push(SUM_PART as u32);
        let (gx, gy) = groups_each(n);
        let out = self.output("y", parts * n)?;
        let bufs = [&g.buf, &self.no_b, &out.buf, &self.no_i];
        let grid = (gx, gy, parts as u32);
        self.dispatch3("reduce_to_lanes", &params, bufs, grid)?;
        self.sum_parts(out, n, parts).map(DevBuf::Wgpu)
    }

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
    ) -> Res<DevBuf> {
        let a = wb(a)?;
        let b = wb(b)?;
        crate::accel::matmul_lens(batch, m, n, k, a.len, b.len)?;
        let y = self.output("y", batch * m * n)?;
        let each = Mm {
            m,
            n,
            k,
            ta,
            tb,
            nb: batch,
            sa: m * k,
            sb: k * n,
            sc: m * n,
            acc: false,
        };
        self.mm(&each, a, b, &y)?;
        Ok(DevBuf::Wgpu(y))
    }

    fn concat_axis(&self, outer: usize, inner: usize, parts: &[(DevBuf, usize)]) -> Res<DevBuf> {
        let parts = &parts
            .iter()
            .map(|(b, n)| Ok((wb(b)?, *n)))
            .collect::<Res<Vec<_>>>()?;
        let total: usize = parts.iter().map(|(_, len)| len).sum();
        let y = self.output("concat", outer * total * inner)?;
        let mut at = 0;
        for (x, len) in parts {
            check_len("concat part", x.len, outer * len * inner)?;
            self.axis_block(outer, *len, inner, total, at, 0, x, &y)?;
            at += len;
        }
        Ok(DevBuf::Wgpu(y))
    }

    #[allow(clippy::too_many_arguments)]
    fn slice_axis(
        &self,
        outer: usize,
        total: usize,
        inner: usize,
        start: usize,
        len: usize,
        x: &DevBuf,
    ) -> Res<DevBuf> {
        let x = wb(x)?;
        check_len("slice input", x.len, outer * total * inner)?;
        check_range(start, len, total)?;
        let y = self.output("slice", outer * len * inner)?;
        self.axis_block(outer, len, inner, total, start, 1, x, &y)?;
        Ok(DevBuf::Wgpu(y))
    }

    #[allow(clippy::too_many_arguments)]
    fn unslice_axis(
        &self,
        outer: usize,
        total: usize,
        inner: usize,
        start: usize,
        len: usize,
        g: &DevBuf,
    ) -> Res<DevBuf> {
        let g = wb(g)?;
        check_len("slice gradient", g.len, outer * len * inner)?;
        check_range(start, len, total)?;
        let y = self.output_zeroed("unslice", outer * total * inner)?;
        self.axis_block(outer, len, inner, total, start, 0, g, &y)?;
        Ok(DevBuf::Wgpu(y))
    }

    fn add_channel(&self, c: usize, plane: usize, x: &DevBuf, bias: &DevBuf) -> Res<DevBuf> {
        let x = wb(x)?;
        let bias = wb(bias)?;
        check_len("bias", bias.len, c)?;
        crate::accel::check_channels(x.len, c, plane)?;
        let n = x.len;
        let params = [n as u32, c as u32, plane as u32];
        self.run_dev("add_channel", &params, x, Some(bias), n, groups_1d(n))
            .map(DevBuf::Wgpu)
    }

    fn channel_sum(&self, n: usize, c: usize, plane: usize, g: &DevBuf) -> Res<DevBuf> {
        let g = wb(g)?;
        check_len("channel_sum input", g.len, n * c * plane)?;
        let (parts, len) = self.lane_parts(n * plane);
        let params = [n, c, plane, len].map(|v| v as u32);
        let groups = (c.max(1) as u32, parts as u32);
        let out = self.run_dev("channel_sum", &params, g, None, parts * c, groups)?;
        self.sum_parts(out, c, parts).map(DevBuf::Wgpu)
    }

    fn conv2d(&self, p: &Conv2d, x: &DevBuf, w: &DevBuf, bias: Option<&DevBuf>) -> Res<DevBuf> {
        let x = wb(x)?;
        let w = wb(w)?;
        crate::accel::conv_lens(p, Some(x.len), Some(w.len), None, bias.map(DevBuf::len))?;
        let len = p.out_len();
        let y = if self.by_gemm(p) {
            self.conv_gemm(p, x, w)?
        } else if self.too_long_here(Self::direct_loops(p).0) {
            self.on_cpu(&[x, w], len, |v, y| {
                crate::cpu::conv::conv2d_forward(p, &v[0], &v[1], None, y)
            })?
        } else {
            let y = self.output("y", len)?;
            let bufs = [&x.buf, &w.buf, &y.buf, &self.no_i];
            let grid = tiles(p.out_h(), p.out_w(), p.n * p.cout)?;
            self.dispatch3("conv2d", &Self::conv_params(p), bufs, grid)?;
            y
        };
        let y = DevBuf::Wgpu(y);
        match bias {
            Some(b) => self.add_channel(p.cout, p.out_h() * p.out_w(), &y, b),
            None => Ok(y),
        }
    }

    fn conv2d_backward_input(&self, p: &Conv2d, gy: &DevBuf, w: &DevBuf) -> Res<DevBuf> {
        let gy = wb(gy)?;
        let w = wb(w)?;
        crate::accel::conv_lens(p, None, Some(w.len), Some(gy.len), None)?;
        if self.by_gemm(p) {
            return self.conv_gemm_backward_input(p, gy, w).map(DevBuf::Wgpu);
        }
        let len = p.n * p.cin * p.h * p.w;
        if self.too_long_here(Self::direct_loops(p).1) {
            return self
                .on_cpu(&[gy, w], len, |v, gx| {
                    crate::cpu::conv::conv2d_backward_input(p, &v[0], &v[1], gx)
                })
                .map(DevBuf::Wgpu);
        }
        let y = self.output("y", len)?;
        let bufs = [&gy.buf, &w.buf, &y.buf, &self.no_i];
        let grid = tiles(p.h, p.w, p.n * p.cin)?;
        self.dispatch3("conv2d_backward_input", &Self::conv_params(p), bufs, grid)?;
        Ok(DevBuf::Wgpu(y))
    }

    fn conv2d_backward_weight(&self, p: &Conv2d, x: &DevBuf, gy: &DevBuf) -> Res<DevBuf> {
        let x = wb(x)?;
        let gy = wb(gy)?;
        crate::accel::conv_lens(p, Some(x.len), None, Some(gy.len), None)?;
        if self.by_gemm(p) {
            return self.conv_gemm_backward_weight(p, x, gy).map(DevBuf::Wgpu);
        }
        // Parts over the batch's output rows: as many as keep them within 16 MiB and at
        // most 32,768 (sum_parts loops over them); on a CPU driver at least enough that
        // no invocation loops more than about 32,768 times over its rows and their
        // positions (llvmpipe stops a shader after 65,535 loop iterations in all).
        let len = p.weight_len();
        let all_rows = p.n * p.out_h();
        let rows = all_rows.clamp(1, LOOPS_PER_INVOCATION);
        let fewest = if self.cpu_driver {
            (all_rows * (p.out_w() + 1))
                .div_ceil(LOOPS_PER_INVOCATION)
                .clamp(1, rows)
        } else {
            1
        };
        let parts = (PARTS_FLOATS / len.max(1)).clamp(fewest, rows);
        let out = self.output("parts", parts * len)?;
        let (gx, gy_) = groups_1d(len);
        let bufs = [&x.buf, &gy.buf, &out.buf, &self.no_i];
        let params = Self::conv_params(p);
        self.dispatch3(
            "conv2d_backward_weight",
            &params,
            bufs,
            (gx, gy_, parts as u32),
        )?;
        self.sum_parts(out, len, parts).map(DevBuf::Wgpu)
    }

    fn max_pool(&self, p: &Pool2d, x: &DevBuf) -> Res<(DevBuf, DevBuf)> {
        let x = wb(x)?;
        crate::accel::pool_lens(p, "max_pool", Some(x.len), None, None)?;
        let len = p.n * p.c * p.out_h() * p.out_w();
        if self.too_long_here(pool_loops(p).0) {
            let mut arg = vec![0u32; len];
            let y = self.on_cpu(&[x], len, |v, y| {
                crate::cpu::pool::max_pool2d_forward(p, &v[0], y, &mut arg)
            })?;
            let arg: Vec<f32> = arg.into_iter().map(f32::from_bits).collect();
            return Ok((DevBuf::Wgpu(y), DevBuf::Wgpu(self.upload(&arg)?)));
        }
        let (y, i) = (self.output("y", len)?, self.output("i", len)?);
        let params = Self::pool_params(p, false);
        self.dispatch(
            "max_pool",
            &params,
            [&x.buf, &self.no_b, &y.buf, &i.buf],
            groups_1d(len),
        )?;
        Ok((DevBuf::Wgpu(y), DevBuf::Wgpu(i)))
    }

    fn max_pool_backward(&self, p: &Pool2d, gy: &DevBuf, arg: &DevBuf) -> Res<DevBuf> {
        let gy = wb(gy)?;
        let arg = wb(arg)?;
        crate::accel::pool_lens(p, "max_pool", None, Some(gy.len), Some(arg.len))?;
        let len = p.n * p.c * p.h * p.w;
        if self.too_long_here(pool_loops(p).1) {
            let arg = arg.to_u32_vec()?;
            if arg.iter().any(|&i| i as usize >= p.h * p.w) {
                return Err(KernelError::Invalid(
                    "max_pool_backward: an argmax outside the input plane".into(),
                ));
            }
            return self
                .on_cpu(&[gy], len, |v, gx| {
                    crate::cpu::pool::max_pool2d_backward(p, &v[0], &arg, gx)
                })
                .map(DevBuf::Wgpu);
        }
        let params = Self::pool_params(p, false);
        let y = self.output("y", len)?;
        self.dispatch(
            "max_pool_backward",
            &params,
            [&gy.buf, &self.no_b, &y.buf, &arg.buf],
            groups_1d(len),
        )?;
        Ok(DevBuf::Wgpu(y))
    }

    fn avg_pool(&self, p: &Pool2d, cip: bool, x: &DevBuf) -> Res<DevBuf> {
        let x = wb(x)?;
        crate::accel::pool_lens(p, "avg_pool", Some(x.len), None, None)?;
        let len = p.n * p.c * p.out_h() * p.out_w();
        if self.too_long_here(pool_loops(p).0) {
            return self
                .on_cpu(&[x], len, |v, y| {
                    crate::cpu::pool::avg_pool2d_forward(p, cip, &v[0], y)
                })
                .map(DevBuf::Wgpu);
        }
        let params = Self::pool_params(p, cip);
        self.run_dev("avg_pool", &params, x, None, len, groups_1d(len))
            .map(DevBuf::Wgpu)
    }

    fn avg_pool_backward(&self, p: &Pool2d, cip: bool, gy: &DevBuf) -> Res<DevBuf> {
        let gy = wb(gy)?;
        crate::accel::pool_lens(p, "avg_pool", None, Some(gy.len), None)?;
        let len = p.n * p.c * p.h * p.w;
        if self.too_long_here(pool_loops(p).1) {
            return self
                .on_cpu(&[gy], len, |v, gx| {
                    crate::cpu::pool::avg_pool2d_backward(p, cip, &v[0], gx)
                })
                .map(DevBuf::Wgpu);
        }
        let params = Self::pool_params(p, cip);
        self.run_dev("avg_pool_backward", &params, gy, None, len, groups_1d(len))
            .map(DevBuf::Wgpu)
    }

    fn adaptive_avg_pool(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        x: &DevBuf,
    ) -> Res<DevBuf> {
        let x = wb(x)?;
        crate::accel::adaptive_lens([planes, h, w, oh, ow], Some(x.len), None)?;
        let len = planes * oh * ow;
        if self.too_long_here((h.div_ceil(oh.max(1)) + 1) * (w.div_ceil(ow.max(1)) + 3) + 1) {
            return self
                .on_cpu(&[x], len, |v, y| {
                    crate::cpu::pool::adaptive_avg_pool2d_forward(planes, 1, h, w, oh, ow, &v[0], y)
                })
                .map(DevBuf::Wgpu);
        }
        let params = [planes, h, w, oh, ow].map(|v| v as u32);
        self.run_dev("adaptive_avg_pool", &params, x, None, len, groups_1d(len))
            .map(DevBuf::Wgpu)
    }

    fn adaptive_avg_pool_backward(
        &self,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        gy: &DevBuf,
    ) -> Res<DevBuf> {
        let gy = wb(gy)?;
        crate::accel::adaptive_lens([planes, h, w, oh, ow], None, Some(gy.len))?;
        let len = planes * h * w;
        if self.too_long_here(oh + (oh.div_ceil(h.max(1)) + 1) * (ow + 2) + 1) {
            return self
                .on_cpu(&[gy], len, |v, gx| {
                    crate::cpu::pool::adaptive_avg_pool2d_backward(
                        planes, 1, h, w, oh, ow, &v[0], gx,
                    )
                })
                .map(DevBuf::Wgpu);
        }
        let params = [planes, h, w, oh, ow].map(|v| v as u32);
        let name = "adaptive_avg_pool_backward";
        self.run_dev(name, &params, gy, None, len, groups_1d(len))
            .map(DevBuf::Wgpu)
    }

    fn batch_norm_train(
        &self,
        n: usize,
        c: usize,
        hw: usize,
        x: &DevBuf,
        gamma: &DevBuf,
        beta: &DevBuf,
        eps: f32,
    ) -> Res<(DevBuf, DevBuf, DevBuf)> {
        let (x, gamma, beta) = (wb(x)?, wb(gamma)?, wb(beta)?);
        let total = n * c * hw;
        crate::accel::batch_norm_lens(
            [n, c, hw],
            x.len,
            None,
            &[("gamma", gamma.len), ("beta", beta.len)],
        )?;
        let (parts, len) = self.lane_parts(n * hw);
        let params = [n as u32, c as u32, hw as u32, eps.to_bits(), len as u32];
        let groups = (c as u32, parts as u32);
        let mut stats = self.run_dev("bn_stats", &params, x, None, parts * 2 * c, groups)?;
        if parts > 1 {
            let groups = (c.div_ceil(64) as u32, 1);
            stats = self.run_dev("bn_stats_merge", &params, &stats, None, 2 * c, groups)?;
        }
        // B = [mean, invstd, gamma, beta].
        let chans = self.concat(&[&stats, gamma, beta])?;
        let params = [total as u32, c as u32, hw as u32];
        let y = self.run_dev(
            "bn_apply",
            &params,
            x,
            Some(&chans),
            total,
            groups_1d(total),
        )?;
        Ok((
            DevBuf::Wgpu(y),
            DevBuf::Wgpu(self.part(&stats, 0, c)?),
            DevBuf::Wgpu(self.part(&stats, c, c)?),
        ))
    }

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
    ) -> Res<(DevBuf, DevBuf, DevBuf)> {
        let (x, gy, gamma) = (wb(x)?, wb(gy)?, wb(gamma)?);
        let (mean, invstd) = (wb(mean)?, wb(invstd)?);
        let total = n * c * hw;
        let per_channel = [
            ("gamma", gamma.len),
            ("mean", mean.len),
            ("1/std", invstd.len),
        ];
        crate::accel::batch_norm_lens([n, c, hw], x.len, Some(gy.len), &per_channel)?;
        let b = self.concat(&[gy, mean, invstd, gamma])?;
        let (parts, len) = self.lane_parts(n * hw);
        let params = [n, c, hw, len].map(|v| v as u32);
        let (name, groups) = ("bn_backward_sums", (c as u32, parts as u32));
        let sums = self.run_dev(name, &params, x, Some(&b), parts * 2 * c, groups)?;
        let sums = self.sum_parts(sums, 2 * c, parts)?;
        // B = [g, mean, invstd, gamma, sum_g, sum_gxhat]: `b` already holds the first four.
        let b = self.concat(&[&b, &sums])?;
        let params = [total as u32, c as u32, hw as u32, (n * hw) as u32];
        let name = "bn_backward_input";
        let gx = self.run_dev(name, &params, x, Some(&b), total, groups_1d(total))?;
        Ok((
            DevBuf::Wgpu(gx),
            DevBuf::Wgpu(self.part(&sums, c, c)?),
            DevBuf::Wgpu(self.part(&sums, 0, c)?),
        ))
    }

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
    ) -> Res<(DevBuf, DevBuf)> {
        let (mean, invstd) = (wb(mean)?, wb(invstd)?);
        let (rm, rv) = (wb(running_mean)?, wb(running_var)?);
        let c = mean.len;
        check_running_lens(c, invstd.len, rm.len, rv.len)?;
        let a = self.concat(&[mean, invstd])?;
        let b = self.concat(&[rm, rv])?;
        let count = u32::try_from(count)
            .map_err(|_| KernelError::Invalid(format!("batch_norm: {count} values per channel")))?;
        let params = [c as u32, count, momentum.to_bits(), eps.to_bits()];
        let y = self.run_dev("bn_running", &params, &a, Some(&b), 2 * c, groups_1d(c))?;
        Ok((
            DevBuf::Wgpu(self.part(&y, 0, c)?),
            DevBuf::Wgpu(self.part(&y, c, c)?),
        ))
    }

    fn log_softmax(&self, rows: usize, cols: usize, x: &DevBuf) -> Res<DevBuf> {
        let x = wb(x)?;
        crate::accel::log_softmax_lens(rows, cols, x.len, None)?;
        let params = [rows as u32, cols as u32];
        let (name, groups) = per_row(["log_softmax", "log_softmax_lanes"], rows, cols);
        self.run_dev(name, &params, x, None, rows * cols, groups)
            .map(DevBuf::Wgpu)
    }

    fn log_softmax_backward(
        &self,
        rows: usize,
        cols: usize,
        y: &DevBuf,
        gy: &DevBuf,
    ) -> Res<DevBuf> {
        let y = wb(y)?;
        let gy = wb(gy)?;
        crate::accel::log_softmax_lens(rows, cols, y.len, Some(gy.len))?;
        let params = [rows as u32, cols as u32];
        let kernels = ["log_softmax_backward", "log_softmax_backward_lanes"];
        let (name, groups) = per_row(kernels, rows, cols);
        self.run_dev(name, &params, y, Some(gy), rows * cols, groups)
            .map(DevBuf::Wgpu)
    }

    fn nll(&self, rows: usize, cols: usize, logp: &DevBuf, targets: &[u32]) -> Res<f32> {
        let logp = wb(logp)?;
        crate::accel::check_targets(rows, cols, logp.len, targets)?;
        // Each of the kernel's 64 lanes loops over a 64th of the rows.
        if self.too_long_here(rows.div_ceil(64) + 1) {
            let logp = logp.to_vec()?;
            return Ok(crate::cpu::softmax::nll_loss_forward(
                rows, cols, &logp, targets,
            ));
        }
        let t: Vec<f32> = targets.iter().map(|&t| t as f32).collect();
        let t = self.upload_small(&t)?;
        let params = [rows as u32, cols as u32];
        Ok(self
            .run_dev("nll", &params, logp, Some(&t), 1, (1, 1))?
            .to_vec()?[0])
    }

    fn nll_backward(&self, rows: usize, cols: usize, targets: &[u32], g: f32) -> Res<DevBuf> {
        crate::accel::check_targets(rows, cols, rows * cols, targets)?;
        let t: Vec<f32> = targets.iter().map(|&t| t as f32).collect();
        let t = self.upload_small(&t)?;
        let params = [rows as u32, cols as u32, g.to_bits()];
        let len = rows * cols;
        self.run_dev("nll_backward", &params, &t, None, len, groups_1d(len))
            .map(DevBuf::Wgpu)
    }

    fn weighted_sum(&self, xs: &[DevBuf], w: &[f32]) -> Res<DevBuf> {
        let xs = &wbs(xs)?;
        let n = same_lengths("weighted sum", xs.iter().map(|x| x.len), w.len())?;
        let cat = self.concat(xs)?;
        let w = self.upload(w)?;
        let params = [n as u32, xs.len() as u32];
        self.run_dev("weighted_sum", &params, &cat, Some(&w), n, groups_1d(n))
            .map(DevBuf::Wgpu)
    }

    fn weighted_sum_backward_weight(&self, xs: &[DevBuf], gy: &DevBuf) -> Res<Vec<f32>> {
        let gy = wb(gy)?;
        let xs = &wbs(xs)?;
        let n = same_lengths("weighted sum", xs.iter().map(|x| x.len), xs.len())?;
        check_len("weighted sum output gradient", gy.len, n)?;
        let cat = self.concat(xs)?;
        self.mixing_grads(&cat, gy, n, xs.len())
    }

    fn sgd(
        &self,
        w: &DevBuf,
        g: &DevBuf,
        v: Option<&DevBuf>,
        lr: f32,
        mu: f32,
        wd: f32,
        nesterov: bool,
    ) -> Res<(DevBuf, DevBuf)> {
        let w = wb(w)?;
        let g = wb(g)?;
        let v = v.map(wb).transpose()?;
        let n = w.len;
        check_len("sgd gradient", g.len, n)?;
        let first = v.is_none();
        let a = match v {
            Some(v) => {
                check_len("sgd momentum buffer", v.len, n)?;
                self.concat(&[w, v])?
            }
            // The buffer starts as the step's direction (zeros read, then replaced).
            None => self.concat(&[w, &self.output_zeroed("momentum", n)?])?,
        };
        let params = [
            n as u32,
            lr.to_bits(),
            mu.to_bits(),
            wd.to_bits(),
            nesterov as u32,
            first as u32,
        ];
        let y = self.run_dev("sgd", &params, &a, Some(g), 2 * n, groups_1d(n))?;
        Ok((
            DevBuf::Wgpu(self.part(&y, 0, n)?),
            DevBuf::Wgpu(self.part(&y, n, n)?),
        ))
    }

    fn adam(
        &self,
        w: &DevBuf,
        g: &DevBuf,
        m: &DevBuf,
        v: &DevBuf,
        lr: f32,
        (b1, b2, eps): (f32, f32, f32),
        wd: f32,
        decoupled: bool,
        t: i32,
    ) -> Res<(DevBuf, DevBuf, DevBuf)> {
        let w = wb(w)?;
        let g = wb(g)?;
        let m = wb(m)?;
        let v = wb(v)?;
        let n = w.len;
        crate::accel::step_lens(
            "adam",
            n,
            g.len,
            &[("first moment", m.len), ("second moment", v.len)],
        )?;
        let a = self.concat(&[w, m, v])?;
        let params = [
            n as u32,
            lr.to_bits(),
            b1.to_bits(),
            b2.to_bits(),
            eps.to_bits(),
            wd.to_bits(),
            decoupled as u32,
            (1.0 - b1.powi(t)).to_bits(),
            (1.0 - b2.powi(t)).to_bits(),
        ];
        let y = self.run_dev("adam", &params, &a, Some(g), 3 * n, groups_1d(n))?;
        Ok((
            DevBuf::Wgpu(self.part(&y, 0, n)?),
            DevBuf::Wgpu(self.part(&y, n, n)?),
            DevBuf::Wgpu(self.part(&y, 2 * n, n)?),
        ))
    }
}

impl Gpu {
    /// One `axis_block` dispatch between `x` (`[outer, len, inner]`) and the block at
    /// `at` of `y` (`[outer, total, inner]`), in direction `dir` (see the kernel).
    #[allow(clippy::too_many_arguments)]
    fn axis_block(
        &self,
        outer: usize,
        len: usize,
        inner: usize,
        total: usize,
        at: usize,
        dir: u32,
        x: &Buf,
        y: &Buf,
    ) -> Res<()> {
        let n = outer * len * inner;
        if n == 0 {
            return Ok(());
        }
        let params = [
            outer as u32,
            len as u32,
            inner as u32,
            total as u32,
            at as u32,
            dir,
        ];
        self.dispatch(
            "axis_block",
            &params,
            [&x.buf, &self.no_b, &y.buf, &self.no_i],
            groups_1d(n),
        )
    }
}

/// One `matmul` (a dispatch per 65,535 slices): `nb` products of `m x k` by `k x n` matrices (either read
/// transposed), the z-th pair starting `sa` and `sb` floats into A and B and its product
/// `sc` floats into C, or with `acc` the sum of the products in one C.
struct Mm {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    nb: usize,
    sa: usize,
    sb: usize,
    sc: usize,
    acc: bool,
}

impl Gpu {
    /// Runs `mm` from `a` and `b` into `y` (which must hold its output). A k longer
    /// than [`MM_K_PART`] is split into parts, each its own product (llvmpipe stops a
    /// shader after 65,535 loop iterations in all; on a GPU the parts add invocations).
    /// With `acc`, or with parts, the products go to slices of a scratch buffer, k-part
    /// major (slice `part * nb + pair`), and `sum_parts` adds up what belongs together:
    /// every slice with `acc`, each pair's parts without.
    fn mm(&self, mm: &Mm, a: &Buf, b: &Buf, y: &Buf) -> Res<()> {
        let blocks = mm.m.div_ceil(8) * mm.n.div_ceil(8);
        if blocks == 0 {
            return Ok(());
        }
        if mm.nb == 0 {
            // A sum over no products: zeros (a reused output holds old values).
            return self
                .stream
                .record("clear", |enc| enc.clear_buffer(&y.buf, 0, None));
        }
        let len = mm.m * mm.n;
        let kp = mm.k.div_ceil(MM_K_PART).max(1);
        let slices = mm.nb * kp;
        let summed = slices > 1 && (mm.acc || kp > 1);
        // Slices summed per output (sum_parts' loop), and floats per slice group.
        let (sums, group) = if mm.acc {
            (slices, len)
        } else {
            (kp, mm.nb * len)
        };
        if summed && sums > LOOPS_PER_INVOCATION {
            return Err(KernelError::Invalid(format!(
                "matmul: {} products of k = {} summed are past the wgpu loop limit",
                mm.nb, mm.k
            )));
        }
        if kp > 1 && !mm.acc && mm.nb > 1 && mm.sc != len {
            return Err(KernelError::Invalid(format!(
                "matmul: a batch of {} products over k = {} into outputs {} floats apart",
                mm.nb, mm.k, mm.sc
            )));
        }
        let parts = match summed {
            true => Some(self.output("parts", slices * len)?),
            false => None,
        };
        let sc = if summed { len } else { mm.sc };
        let kc = if kp > 1 { MM_K_PART } else { mm.k };
        let mut params = [
            mm.m,
            mm.n,
            mm.k,
            mm.ta as usize,
            mm.tb as usize,
            mm.sa,
            mm.sb,
            sc,
            mm.nb,
            kc,
            0,
        ]
        .map(|v| v as u32);
        let (gx, gy) = groups_1d(blocks);
        let out = parts.as_ref().unwrap_or(y);
        // The grid's z holds 65,535 slices: more take a dispatch each such run (P10: the
        // run's first slice).
        for z0 in (0..slices).step_by(MAX_GROUPS) {
            params[10] = z0 as u32;
            let run = (slices - z0).min(MAX_GROUPS) as u32;
            let bufs = [&a.buf, &b.buf, &out.buf, &self.no_i];
            self.dispatch3("matmul", &params, bufs, (gx, gy, run))?;
        }
        if let Some(parts) = parts {
            self.add_parts(&parts, group, sums, y)?;
        }
        Ok(())
    }

    /// The `k` mixing-weight gradients `dot(g, x_j)` of candidates `cat` (`k` of `n`
    /// floats, back to back), read back.
    fn mixing_grads(&self, cat: &Buf, gy: &Buf, n: usize, k: usize) -> Res<Vec<f32>> {
        let (parts, len) = self.lane_parts(n);
        let params = [n, len].map(|v| v as u32);
        let (name, groups) = ("weighted_sum_backward_weight", (k as u32, parts as u32));
        let out = self.run_dev(name, &params, cat, Some(gy), parts * k, groups)?;
        self.sum_parts(out, k, parts)?.to_vec()
    }

    /// How a lane kernel splits `count` values: (parts, values per part). Parts are as
    /// long as the adapter takes them, and long enough that there are at most 16,384
    /// (so sum_parts' loop and bn_stats_merge's two loops over them stay short).
    fn lane_parts(&self, count: usize) -> (usize, usize) {
        let set = LANE_PART_FOR_TESTS.load(std::sync::atomic::Ordering::Relaxed);
        let own = if self.cpu_driver {
            LANE_PART
        } else {
            GPU_LANE_PART
        };
        let want = if set > 0 { set } else { own };
        let len = want.max(count.div_ceil(16_384)).max(1);
        (count.div_ceil(len).max(1), len)
    }

    /// The sum of `parts` consecutive slices of `len` floats of `buf` (`buf` itself when
    /// there is one).
    fn sum_parts(&self, buf: Buf, len: usize, parts: usize) -> Res<Buf> {
        if parts <= 1 {
            return Ok(buf);
        }
        let y = self.output("y", len)?;
        self.add_parts(&buf, len, parts, &y)?;
        Ok(y)
    }

    /// [`Gpu::sum_parts`] into `y`.
    fn add_parts(&self, buf: &Buf, len: usize, parts: usize, y: &Buf) -> Res<()> {
        let params = [len as u32, parts as u32];
        let bufs = [&buf.buf, &self.no_b, &y.buf, &self.no_i];
        self.dispatch("sum_parts", &params, bufs, groups_1d(len))
    }

    /// Whether convolution `p` runs as im2col and a matmul: ungrouped (grouped and
    /// depthwise ones keep their direct kernels, which do little work per output), with
    /// its grids within the 65535-workgroup limit per dimension, and col2im's loop over
    /// the taps within what this driver allows.
    fn by_gemm(&self, p: &Conv2d) -> bool {
        let lim = MAX_GROUPS;
        self.gemm_fits(p)
            && !self.too_long_here(p.kh * (p.kw + 2) + 1)
            && p.groups == 1
            && p.cin * p.kh * p.kw <= lim
            && p.n <= lim
            && p.cin <= lim
            && (p.out_h() * p.out_w()).div_ceil(64) <= lim
            && (p.h * p.w).div_ceil(64) <= lim
    }

    /// Whether the scratch buffers of convolution `p` as im2col and a matmul fit a
    /// binding: the im2col matrix (and its gradient), and the k-parts the matmuls sum
    /// (the weight gradient's over every image). A convolution past it runs the direct
    /// kernels, which need no scratch the size of the batch's taps (before, it was a
    /// device error for a batch the output and input of the layer fit).
    fn gemm_fits(&self, p: &Conv2d) -> bool {
        let (kk, plane) = (p.cin * p.kh * p.kw, p.out_h() * p.out_w());
        let parts = |k: usize| k.div_ceil(MM_K_PART).max(1);
        let floats = [
            p.n * kk * plane,
            // The forward's parts (k = kk) and the weight gradient's (k = plane, every
            // image's summed).
            p.n * parts(kk) * p.cout * plane,
            p.n * parts(plane) * p.cout * kk,
        ];
        floats
            .iter()
            .all(|&f| (f as u64).saturating_mul(4) <= self.binding_limit)
    }

    /// Upper bounds on the loop iterations of one invocation of the direct convolution
    /// kernels, counting a loop's entry and exit tests as iterations too: the forward's
    /// (over a group's input channels and the taps) and the input gradient's (over the
    /// taps and a group's output channels).
    fn direct_loops(p: &Conv2d) -> (usize, usize) {
        let fwd = p.cin_g() * (p.kh * (p.kw + 2) + 2) + 1;
        let bwd = p.kh * (p.kw * (p.cout / p.groups + 2) + 2) + 1;
        (fwd, bwd)
    }

    /// Whether a kernel whose invocations loop `loops` times would pass the loop count
    /// this adapter's driver allows: llvmpipe ends a shader after 65,535 iterations of
    /// all its loops together and leaves its outputs unwritten, so on a CPU driver a
    /// kernel with more runs on the CPU instead (its operands read back, its result
    /// uploaded; on that driver the device is the same CPU). GPUs have no such count.
    fn too_long_here(&self, loops: usize) -> bool {
        self.cpu_driver && loops > LOOPS_PER_INVOCATION
    }

    /// Runs `f` on the CPU over `inputs` read back, and uploads the `len` floats it
    /// writes: a kernel that would loop past what this driver allows
    /// ([`Gpu::too_long_here`]).
    fn on_cpu(
        &self,
        inputs: &[&Buf],
        len: usize,
        f: impl FnOnce(&[Vec<f32>], &mut [f32]),
    ) -> Res<Buf> {
        let values = inputs.iter().map(|b| b.to_vec()).collect::<Res<Vec<_>>>()?;
        let mut y = vec![0.0; len];
        f(&values, &mut y);
        self.upload(&y)
    }

    /// Whether the convolution's im2col matrix is its input (a 1x1 kernel, stride 1, no
    /// padding).
    fn pointwise(p: &Conv2d) -> bool {
        p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0
    }

    /// The im2col matrix of `x` for ungrouped convolution `p`: `[n, cin * kh * kw, oh *
    /// ow]` (`x` itself for a pointwise one).
    fn im2col(&self, p: &Conv2d, x: &Buf) -> Res<Buf> {
        if Self::pointwise(p) {
            return Ok(x.clone());
        }
        let (kk, plane) = (p.cin * p.kh * p.kw, p.out_h() * p.out_w());
        let col = self.output("col", p.n * kk * plane)?;
        let groups = (plane.div_ceil(64) as u32, kk as u32, p.n as u32);
        self.conv_pass("im2col", p, x, &col, groups)?;
        Ok(col)
    }

    /// One dispatch of im2col or col2im from `x` into `y` over a 3-D grid.
    fn conv_pass(
        &self,
        entry: &str,
        p: &Conv2d,
        x: &Buf,
        y: &Buf,
        groups: (u32, u32, u32),
    ) -> Res<()> {
        let params = Self::conv_params(p);
        let bufs = [&x.buf, &self.no_b, &y.buf, &self.no_i];
        self.dispatch3(entry, &params, bufs, groups)
    }

    /// Ungrouped convolution as im2col and one batched matmul: image b's output `[cout,
    /// oh * ow]` is the weights `[cout, cin * kh * kw]` times its im2col matrix.
    fn conv_gemm(&self, p: &Conv2d, x: &Buf, w: &Buf) -> Res<Buf> {
        let (kk, plane) = (p.cin * p.kh * p.kw, p.out_h() * p.out_w());
        let col = self.im2col(p, x)?;
        let y = self.output("y", p.out_len())?;
        let mm = Mm {
            m: p.cout,
            n: plane,
            k: kk,
            ta: false,
            tb: false,
            nb: p.n,
            sa: 0,
            sb: kk * plane,
            sc: p.cout * plane,
            acc: false,
        };
        self.mm(&mm, w, &col, &y)?;
        Ok(y)
    }

    /// Its input gradient: each image's im2col gradient (the weights transposed times
    /// its output gradient), then col2im.
    fn conv_gemm_backward_input(&self, p: &Conv2d, gy: &Buf, w: &Buf) -> Res<Buf> {
        let (kk, plane) = (p.cin * p.kh * p.kw, p.out_h() * p.out_w());
        let gcol = self.output("gcol", p.n * kk * plane)?;
        let mm = Mm {
            m: kk,
            n: plane,
            k: p.cout,
            ta: true,
            tb: false,
            nb: p.n,
            sa: 0,
            sb: p.cout * plane,
            sc: kk * plane,
            acc: false,
        };
        self.mm(&mm, w, gy, &gcol)?;
        if Self::pointwise(p) {
            return Ok(gcol);
        }
        let gx = self.output("gx", p.n * p.cin * p.h * p.w)?;
        let groups = ((p.h * p.w).div_ceil(64) as u32, p.cin as u32, p.n as u32);
        self.conv_pass("col2im", p, &gcol, &gx, groups)?;
        Ok(gx)
    }

    /// Its weight gradient: the sum over images of the output gradient `[cout, oh * ow]`
    /// times the transposed im2col matrix.
    fn conv_gemm_backward_weight(&self, p: &Conv2d, x: &Buf, gy: &Buf) -> Res<Buf> {
        let (kk, plane) = (p.cin * p.kh * p.kw, p.out_h() * p.out_w());
        let col = self.im2col(p, x)?;
        let gw = self.output("gw", p.weight_len())?;
        let mm = Mm {
            m: p.cout,
            n: kk,
            k: plane,
            ta: false,
            tb: true,
            nb: p.n,
            sa: p.cout * plane,
            sb: kk * plane,
            sc: 0,
            acc: true,
        };
        self.mm(&mm, gy, &col, &gw)?;
        Ok(gw)
    }
}

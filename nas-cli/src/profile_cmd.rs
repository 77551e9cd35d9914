//! `nas profile`: a supernet weight step of a space, kernel by kernel, with fused and
//! with unfused mixed ops, as a table and a Chrome trace. The steps, and their forward
//! pass, backward pass and update, are spans; the trace holds them ([`crate::spans`])
//! beside the kernels they ran.

use crate::space_args::SpaceArgs;
use crate::spans;
use anyhow::{anyhow, bail, Result};
use clap::Args;
use nas_core::optim::Optimizer;
use nas_core::profile::{self, Event, Row};
use nas_core::space::builtin::InputSpec;
use nas_core::space::Supernet;
use nas_core::train::{sgd_for, TrainConfig};
use nas_core::{Rng, Tensor};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Device to profile on: cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Images per profiled step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Input channels of the random input.
    #[arg(long, default_value_t = 3)]
    pub in_channels: usize,
    /// Height and width of the random input (square images).
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Profiled steps per mode (after one warm-up step), 1 to 1000.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Where to write the Chrome trace (default profile-<space>.trace.json).
    #[arg(long)]
    pub trace: Option<PathBuf>,
}

/// Each row's share of the peaks of where it ran: the device's for `kind:` kernels, the
/// CPU's for the rest.
fn print_table(rows: &[Row], steps: usize, cpu: (f64, f64), device: Option<(f64, f64)>) {
    println!(
        "{:<26} {:>6} {:>10} {:>9} {:>9} {:>8} {:>7} {:>7}",
        "kernel", "calls", "total ms", "ms/step", "GFLOP/s", "GB/s", "%flops", "%bw"
    );
    for r in rows {
        let peak = match device {
            Some(d) if r.name.contains(':') => d,
            _ => cpu,
        };
        // A rate over less than 10 µs in all says nothing (a device op timed as it was
        // recorded, not as it ran, read 1,500% of lavapipe's bandwidth): left out.
        let rates = if r.total_ms < 0.01 {
            ["-".to_string(), "-".into(), "-".into(), "-".into()]
        } else {
            [
                format!("{:.1}", r.gflops()),
                format!("{:.1}", r.gbs()),
                format!("{:.1}%", 100.0 * r.gflops() / peak.0),
                format!("{:.1}%", 100.0 * r.gbs() / peak.1),
            ]
        };
        println!(
            "{:<26} {:>6} {:>10.2} {:>9.2} {:>9} {:>8} {:>7} {:>7}",
            r.name,
            r.calls,
            r.total_ms,
            r.total_ms / steps as f64,
            rates[0],
            rates[1],
            rates[2],
            rates[3],
        );
    }
}

/// The most steps `nas profile` records per mode.
pub const MAX_STEPS: usize = 1000;

pub fn run(a: ProfileArgs) -> Result<()> {
    let dev = crate::device::select(&a.device)?;
    crate::at_least_one(&[
        ("--batch", a.batch),
        ("--steps", a.steps),
        ("--size", a.size),
        ("--in-channels", a.in_channels),
    ])?;
    // Every kernel call of every step is kept for the table and the trace, so memory
    // grows with the steps (before, `--steps 100000000` grew until the machine ran out).
    if a.steps > MAX_STEPS {
        bail!(
            "--steps {}: at most {MAX_STEPS} (each step's kernel calls are kept for the \
             trace)",
            a.steps
        );
    }
    if let Some(t) = &a.trace {
        crate::check_output(
            "--trace",
            t,
            &[("--space-file", a.space.space_file.as_deref())],
        )?;
    }
    // The batch alone, before any network is built for it: past the cap a space file's
    // network is held to, it is an error naming the flags, not an allocation that fails.
    let cap = nas_core::space::file::MAX_BYTES;
    let bytes = [a.batch, a.in_channels, a.size, a.size, 4]
        .iter()
        .try_fold(1u64, |p, &v| p.checked_mul(v as u64))
        .unwrap_or(u64::MAX);
    if bytes > cap {
        bail!(
            "--batch {} of --in-channels {} x --size {} x {} takes {:.1} GiB as input alone, \
             over the cap of {} GiB",
            a.batch,
            a.in_channels,
            a.size,
            a.size,
            bytes as f64 / (1u64 << 30) as f64,
            cap >> 30
        );
    }
    let input = InputSpec {
        channels: a.in_channels,
        height: a.size,
        width: a.size,
        classes: 10,
    };
    let space = a.space.resolve_for_batch(input, a.batch)?;
    let peak = nas_core::device::cpu_backend()
        .peaks()
        .map_err(|e| anyhow!("measuring the CPU's peaks: {e}"))?;
    let peak = (peak.gflops, peak.gbs);
    println!(
        "{} supernet weight step, batch {}, {}x{}x{}, {}; CPU peaks measured here: \
         SGEMM {:.0} GFLOP/s, copy {:.1} GB/s",
        space.name(),
        a.batch,
        a.in_channels,
        a.size,
        a.size,
        crate::count(rayon::current_num_threads(), "thread"),
        peak.0,
        peak.1
    );
    let backend = dev
        .backend()
        .map_err(|e| anyhow!("--device {}: {e}", a.device))?;
    let device = backend.map(|dev| match dev.peaks() {
        Ok(p) => {
            println!(
                "{} peaks ({}): {:.0} GFLOP/s, {:.1} GB/s. `{}:` rows are shares of these; \
                 each call waits for its kernels, so its time is theirs and the host-device copies \
                 it makes (a step outside the profile does not wait)",
                dev.describe(),
                p.how,
                p.gflops,
                p.gbs,
                dev.kind()
            );
            (p.gflops, p.gbs)
        }
        Err(e) => {
            // A profile without the shares beats no profile.
            println!(
                "{} peaks unavailable ({e}); `{}:` rows show no shares",
                dev.describe(),
                dev.kind()
            );
            (f64::NAN, f64::NAN)
        }
    });
    let mut rng = Rng::new(0);
    let x = Tensor::randn(&[a.batch, a.in_channels, a.size, a.size], 1.0, &mut rng);
    let y: Vec<u32> = (0..a.batch).map(|_| rng.below(10) as u32).collect();
    let mut all: Vec<Event> = vec![];
    let mut span_events = vec![];
    let mut offset = 0.0;
    let mut per_step = vec![];
    for fused in [true, false] {
        let mode = if fused { "fused" } else { "unfused" };
        let sn = Supernet::build(space.as_ref(), fused, 0).map_err(|e| anyhow!(e))?;
        dev.place(sn.net.as_ref())
            .map_err(|e| anyhow!("--device {}: {e}", a.device))?;
        let mut opt = sgd_for(sn.net.as_ref(), &TrainConfig::default());
        let mut step = || {
            // A fresh host batch each step, as a loader gives it (so its upload counts).
            let x = Tensor::from_vec(x.to_vec(), x.shape());
            opt.zero_grad();
            let loss =
                tracing::debug_span!("forward").in_scope(|| sn.net.forward(&x).cross_entropy(&y));
            tracing::debug_span!("backward").in_scope(|| loss.backward());
            tracing::debug_span!("update").in_scope(|| opt.step(0.01));
        };
        step(); // warm-up: buffers, caches
        let moved_before = nas_core::device::transfers();
        spans::start(profile::start());
        for i in 0..a.steps {
            tracing::info_span!("step", mode, n = i + 1).in_scope(&mut step);
        }
        let events = profile::stop();
        let recorded = spans::stop();
        let moved = nas_core::device::transfers() - moved_before;
        let steps: Vec<&spans::SpanRecord> = recorded.iter().filter(|s| s.name == "step").collect();
        if steps.len() != a.steps {
            bail!(
                "{} of {} steps were recorded (is the span recorder installed?)",
                steps.len(),
                a.steps
            );
        }
        let total_us: f64 = steps.iter().map(|s| s.dur_us).sum();
        per_step.push((mode, total_us / 1e3 / a.steps as f64));
        println!(
            "\n{mode} mixed ops: {:.2} ms per step",
            total_us / 1e3 / a.steps as f64
        );
        print_table(&profile::summary(&events), a.steps, peak, device);
        if device.is_some() {
            let per = |v: u64| v as f64 / a.steps as f64;
            println!(
                "host-device copies per step: {:.2} MB in {:.0} calls up, {:.2} MB in {:.0} \
                 calls down",
                per(moved.up_bytes) / 1e6,
                per(moved.up_calls),
                per(moved.down_bytes) / 1e6,
                per(moved.down_calls)
            );
        }
        let end = steps
            .iter()
            .map(|s| s.start_us + s.dur_us)
            .fold(0.0, f64::max);
        all.extend(events.into_iter().map(|mut e| {
            e.start_us += offset;
            e
        }));
        span_events.extend(spans::chrome_events(&recorded, offset));
        offset += end + 1000.0;
    }
    if let [(_, f), (_, u)] = per_step[..] {
        println!(
            "\nfused against unfused: {f:.2} ms against {u:.2} ms per step ({:.2}x)",
            u / f
        );
    }
    let path = a
        .trace
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("profile-{}.trace.json", space.name())));
    let trace = profile::chrome_trace(&all, span_events);
    nas_core::experiment::write_output(&path, &serde_json::to_vec(&trace)?)
        .map_err(|e| anyhow!(e))?;
    println!(
        "trace: {} (open it in Perfetto or chrome://tracing)",
        path.display()
    );
    Ok(())
}

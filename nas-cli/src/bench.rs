//! `nas bench`: prints GEMM, convolution and training-step timings beside PyTorch's.
//!
//! PyTorch's figures are measured in the same run by `scripts/torch_bench.py` where
//! PyTorch is installed (SGEMM, the seed-net step, the DARTS supernet step); every other
//! figure in that column is a recorded one, marked `(rec.)`, and the output says where
//! the recorded figures come from.

use anyhow::Result;
use clap::Args;
use nas_core::device::Device;
use nas_core::optim::Optimizer;
use nas_core::space::builtin::seed::SeedSpace;
use nas_core::space::{fixed, Architecture, Supernet};
use nas_core::timing::median_ms;
use nas_core::train::{sgd_for, TrainConfig};
use nas_core::{ConvOpts, Rng, Tensor};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Seconds to spend measuring each row (after warm-up; above 0, at most 3600).
    #[arg(long, default_value_t = 1.0, value_parser = parse_seconds)]
    pub seconds: f64,
    /// Also time a DARTS supernet weight step (C=16, 5 cells, 8 ops, batch 32, 3x32x32);
    /// several seconds per step.
    #[arg(long)]
    pub darts: bool,
    /// Run only the groups named (comma-separated): gemm, conv, seed, mixed, darts-iter.
    #[arg(long, value_delimiter = ',', value_parser = ["gemm", "conv", "seed", "mixed", "darts-iter"])]
    pub only: Vec<String>,
    /// Backend: cpu, wgpu or cuda[:N]. On a device, GEMM is the device's matmul (operands
    /// copied over, the result back) and the training steps run with the network's
    /// parameters in device memory, each batch uploaded once. The PyTorch column holds
    /// CPU figures, so it is left empty for a device.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Do not run PyTorch beside (show only the recorded PyTorch figures).
    #[arg(long)]
    pub no_torch: bool,
}

/// Where the recorded PyTorch figures come from.
const RECORDED: &str = "(rec.): a recorded figure, not measured in this run: PyTorch 2.15 (MKL, \
oneDNN), 2 threads, on the 2-core machine this project is benchmarked on, as the README records \
them (scripts/torch_bench.py cpu measures the SGEMM, seed-net and DARTS-step rows; the conv and \
DARTS-iteration rows were measured once by hand). Install PyTorch to measure them in this run.";

/// PyTorch's figures measured now by `scripts/torch_bench.py` (row name to figure), or
/// `None` where PyTorch is not installed or the script fails.
fn torch_now(threads: usize, seconds: f64, darts: bool) -> Option<Vec<(String, String)>> {
    let script = std::path::Path::new("scripts/torch_bench.py");
    if !script.exists() {
        return None;
    }
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script)
        .args(["cpu", "--seconds", &seconds.to_string()])
        .args(["--threads", &threads.to_string()]);
    if !darts {
        cmd.arg("--no-darts");
    }
    let out = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figs = vec![];
    for line in text.lines() {
        let (_, rest) = line.split_once(": ")?;
        for (row, unit) in [
            ("sgemm 1024^3", "GFLOP/s"),
            ("seed net train step b64 3x32x32", "ms"),
            ("DARTS supernet weight step C16 5 cells b32", "ms"),
        ] {
            if let Some(v) = rest.strip_prefix(row) {
                let v: f64 = v.trim().trim_end_matches(unit).trim().parse().ok()?;
                figs.push((row.to_string(), format!("{v:.1} {unit}")));
            }
        }
    }
    Some(figs)
}

impl BenchArgs {
    fn wants(&self, group: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|g| g == group)
    }
}

pub fn run(a: BenchArgs) -> Result<()> {
    let device = crate::device::select(&a.device)?;
    let dev = device
        .backend()
        .map_err(|e| anyhow::anyhow!("--device {}: {e}", a.device))?;
    let place = |m: &dyn nas_core::nn::Module| {
        device
            .place(m)
            .map_err(|e| anyhow::anyhow!("--device {}: {e}", a.device))
    };
    let threads = rayon::current_num_threads();
    let measured = match dev {
        None if !a.no_torch => torch_now(threads, a.seconds, a.darts),
        _ => None,
    };
    match (dev, &measured) {
        (None, Some(_)) => println!(
            "nas bench, {} (PyTorch measured in this run with as many threads where a \
             figure is not marked (rec.))\n",
            crate::count(threads, "thread")
        ),
        (None, None) => println!(
            "nas bench, {} (PyTorch not installed here: its column holds recorded \
             figures)\n",
            crate::count(threads, "thread")
        ),
        (Some(d), _) => println!(
            "nas bench on {}, {} (times include each device call's \
             host-device copies; no PyTorch figures for a device here)\n",
            d.describe(),
            crate::count(threads, "CPU thread")
        ),
    }
    // The PyTorch column's CPU figures apply only to a CPU run: the figure measured now
    // for the row, else the recorded one.
    let torch = |row: &str, recorded: &str| -> String {
        if dev.is_some() || recorded.is_empty() {
            return String::new();
        }
        match measured
            .as_ref()
            .and_then(|m| m.iter().find(|(r, _)| row.starts_with(r.as_str())))
        {
            Some((_, fig)) => fig.clone(),
            None => format!("{recorded} (rec.)"),
        }
    };
    println!("{:<44} {:>12} {:>20}", "benchmark", "nas", "PyTorch");
    let mut rng = Rng::new(0);
    for n in [512usize, 1024, 2048]
        .into_iter()
        .filter(|_| a.wants("gemm"))
    {
        let a_ = Tensor::randn(&[n, n], 1.0, &mut rng).to_vec();
        let b_ = Tensor::randn(&[n, n], 1.0, &mut rng).to_vec();
        let mut c = vec![0.0f32; n * n];
        let mut failed = None;
        let ms = median_ms(a.seconds, || {
            let r = match dev {
                None => nas_core::device::cpu_gemm(n, n, n, &a_, &b_, &mut c),
                Some(d) => d.gemm(n, n, n, &a_, &b_, &mut c),
            };
            if let Err(e) = r {
                failed.get_or_insert(e);
            }
        });
        if let Some(e) = failed {
            anyhow::bail!("sgemm {n}^3 on {}: {e}", a.device);
        }
        let gflops = 2.0 * (n as f64).powi(3) / (ms * 1e6);
        let fig = torch(
            &format!("sgemm {n}^3"),
            if n == 1024 { "115-124 GFLOP/s" } else { "" },
        );
        println!(
            "{:<44} {:>7.1} GFLOP/s {:>20}",
            format!("sgemm {n}^3"),
            gflops,
            fig
        );
    }
    // The last row is depthwise (a DARTS separable convolution's first step), with no
    // recorded PyTorch figure.
    for (cin, cout, hw, k, groups, fig) in [
        (16, 16, 32, 3, 1, "11.9 ms"),
        (16, 16, 32, 5, 1, "24.5 ms"),
        (64, 64, 16, 3, 1, "29.3 ms"),
        (16, 16, 32, 3, 16, ""),
    ]
    .into_iter()
    .filter(|_| a.wants("conv"))
    {
        let x = Tensor::parameter(
            Tensor::randn(&[64, cin, hw, hw], 1.0, &mut rng).to_vec(),
            &[64, cin, hw, hw],
        );
        let w = Tensor::parameter(
            Tensor::randn(&[cout, cin / groups, k, k], 0.1, &mut rng).to_vec(),
            &[cout, cin / groups, k, k],
        );
        let b = Tensor::parameter(vec![0.0; cout], &[cout]);
        for t in [&x, &w, &b] {
            device
                .place_tensor(t)
                .map_err(|e| anyhow::anyhow!("--device {}: {e}", a.device))?;
        }
        let o = ConvOpts {
            padding: k / 2,
            groups,
            ..Default::default()
        };
        let mut failed = None;
        let ms = median_ms(a.seconds, || {
            x.zero_grad();
            w.zero_grad();
            b.zero_grad();
            x.conv2d(&w, Some(&b), o).sum().backward();
            // Nothing is read back: wait for the device's kernels, or only asking for
            // them would be timed.
            if let Err(e) = device.finish() {
                failed.get_or_insert(e);
            }
        });
        if let Some(e) = failed {
            anyhow::bail!("conv2d on {}: {e}", a.device);
        }
        let name = match groups {
            1 => format!("conv2d fwd+bwd b64 C{cin}->{cout} {hw}x{hw} k{k}"),
            _ => format!("depthwise conv2d fwd+bwd b64 C{cin} {hw}x{hw} k{k}"),
        };
        println!("{:<44} {:>9.2} ms {:>20}", name, ms, torch(&name, fig));
    }
    let space = SeedSpace {
        in_channels: 3,
        classes: 10,
    };
    let arch: Architecture =
        serde_json::from_str(r#"{"conv1": "conv3x3", "conv2": "conv5x5", "skip": [1]}"#)?;
    let cfg = TrainConfig::default();
    if a.wants("seed") {
        let model = fixed(&space, &arch, 0)?;
        place(model.as_ref())?;
        let mut opt = sgd_for(model.as_ref(), &cfg);
        let x = Tensor::randn(&[64, 3, 32, 32], 1.0, &mut rng);
        let y: Vec<u32> = (0..64).map(|_| rng.below(10) as u32).collect();
        let ms = median_ms(a.seconds, || {
            // On a device, a fresh host batch each step, as a loader gives it (so its
            // upload counts); the CPU reads the same batch, as PyTorch's figure does.
            let fresh = dev.map(|_| Tensor::from_vec(x.to_vec(), x.shape()));
            let loss = model
                .forward(fresh.as_ref().unwrap_or(&x))
                .cross_entropy(&y);
            opt.zero_grad();
            loss.backward();
            opt.step(0.01);
        });
        let name = "seed net train step b64 3x32x32";
        println!(
            "{:<44} {:>9.2} ms {:>20}",
            name,
            ms,
            torch(name, "14.5-18 ms")
        );
    }
    for fused in [false, true].into_iter().filter(|_| a.wants("mixed")) {
        // The supernet's weight step alone: where the fused mixed op replaces two
        // convolutions (3x3 and 5x5) by one.
        let s = Supernet::build(&space, fused, 1).map_err(anyhow::Error::msg)?;
        place(s.net.as_ref())?;
        let mut opt = sgd_for(s.net.as_ref(), &cfg);
        let x = Tensor::randn(&[64, 3, 32, 32], 1.0, &mut rng);
        let y: Vec<u32> = (0..64).map(|_| rng.below(10) as u32).collect();
        let ms = median_ms(a.seconds, || {
            opt.zero_grad();
            s.net.forward(&x).cross_entropy(&y).backward();
            opt.step(0.025);
        });
        let kind = if fused { "fused" } else { "unfused" };
        println!(
            "{:<44} {:>9.2} ms {:>20}",
            format!("seed supernet weight step b64 ({kind})"),
            ms,
            ""
        );
    }
    for fused in [false, true].into_iter().filter(|_| a.wants("darts-iter")) {
        let ms = darts_iteration(&space, fused, &device, a.seconds, &mut rng)?;
        let kind = if fused { "fused" } else { "unfused" };
        let name = format!("seed DARTS 1st-order iteration b64 ({kind})");
        println!(
            "{:<44} {:>9.2} ms {:>20}",
            name,
            ms,
            torch(&name, "41-52 ms")
        );
    }
    if a.darts {
        let mut space = nas_core::space::builtin::darts::DartsSpace::new(3, 10);
        space.layers = 5;
        let s = Supernet::build(&space, false, 0).map_err(anyhow::Error::msg)?;
        place(s.net.as_ref())?;
        let mut opt = sgd_for(s.net.as_ref(), &cfg);
        let x = Tensor::randn(&[32, 3, 32, 32], 1.0, &mut rng);
        let y: Vec<u32> = (0..32).map(|_| rng.below(10) as u32).collect();
        let ms = median_ms(a.seconds, || {
            opt.zero_grad();
            s.net.forward(&x).cross_entropy(&y).backward();
            opt.step(0.025);
        });
        let name = "DARTS supernet weight step C16 5 cells b32";
        println!(
            "{:<44} {:>9.0} ms {:>20}",
            name,
            ms,
            torch(name, "6000-6200 ms")
        );
    }
    if dev.is_none() {
        println!("\n{RECORDED}");
    }
    Ok(())
}

/// One first-order DARTS iteration on the seed-net supernet: an architecture step (loss
/// gradient w.r.t. the mixing weights on a validation batch, through the softmax, Adam on
/// the logits) then a weight step (SGD on a training batch).
fn darts_iteration(
    space: &SeedSpace,
    fused: bool,
    device: &Device,
    secs: f64,
    rng: &mut Rng,
) -> Result<f64> {
    let s = Supernet::build(space, fused, 1).map_err(anyhow::Error::msg)?;
    device.place(s.net.as_ref()).map_err(anyhow::Error::msg)?;
    let cfg = TrainConfig::default();
    let mut wopt = sgd_for(s.net.as_ref(), &cfg);
    let labels: Vec<String> = s.alphas.keys().cloned().collect();
    let logits: Vec<Tensor> = labels
        .iter()
        .map(|l| Tensor::parameter(vec![0.0; s.alphas[l].numel()], &[s.alphas[l].numel()]))
        .collect();
    let mut aopt = nas_core::optim::Adam::new(logits.clone(), 1e-3, false).with_betas(0.5, 0.999);
    let xt = Tensor::randn(&[64, 3, 32, 32], 1.0, rng);
    let xv = Tensor::randn(&[64, 3, 32, 32], 1.0, rng);
    let y: Vec<u32> = (0..64).map(|_| rng.below(10) as u32).collect();
    let set = |s: &Supernet| {
        for (l, t) in labels.iter().zip(&logits) {
            let w = t.softmax().to_vec();
            s.set_weights(l, &w).unwrap();
        }
    };
    Ok(median_ms(secs, || {
        // Architecture step.
        set(&s);
        s.zero_weight_grads();
        s.backward_mixing(&s.net.forward(&xv).cross_entropy(&y));
        aopt.zero_grad();
        for (l, t) in labels.iter().zip(&logits) {
            // Chain the mixing-weight gradient through the softmax on the host side.
            let p = t.softmax().to_vec();
            let g = s.weight_grad(l).unwrap();
            let dot: f32 = p.iter().zip(&g).map(|(a, b)| a * b).sum();
            let gl: Vec<f32> = p.iter().zip(&g).map(|(pi, gi)| pi * (gi - dot)).collect();
            t.zero_grad();
            let probe = t.mul(&Tensor::from_vec(gl, t.shape())).sum();
            probe.backward();
        }
        aopt.step(3e-4);
        // Weight step.
        set(&s);
        wopt.zero_grad();
        s.net.forward(&xt).cross_entropy(&y).backward();
        wopt.step(0.025);
    }))
}

/// `--seconds`: a time above 0 and at most an hour.
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 3600.0 => Ok(x),
        _ => Err("expected seconds above 0 and at most 3600 (such as 1 or 0.5)".into()),
    }
}

//! Cost model: parameters and multiply-adds of a network, and a per-op latency table
//! measured on this machine so an architecture's latency is predicted without running
//! it (as ProxylessNAS and FBNet do).

use super::{Architecture, Space, Supernet};
use crate::nn::{num_parameters, Module};
use crate::ops::count_macs;
use crate::rng::Rng;
use crate::tensor::{no_grad, with_grad, Tensor};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// What a network costs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub params: usize,
    /// Multiply-adds of one image's forward pass (convolutions, linear layers, matmuls).
    pub macs: u64,
    /// Floats one image's forward pass makes: the output of every op, which is what a
    /// training step keeps for its backward pass (inference, freeing as it goes, needs
    /// less). DPP-Net's memory budget counts these.
    #[serde(default)]
    pub activations: u64,
}

/// Parameters, multiply-adds and activations of `net` for one `[c, h, w]` input.
pub fn cost(net: &dyn Module, input: [usize; 3]) -> Cost {
    net.set_training(false);
    let x = Tensor::zeros(&[1, input[0], input[1], input[2]]);
    // One pass, recorded (the record is autodiff's, so gradients on for it): its
    // multiply-adds, and every value an op made, by its shape.
    let (graph, macs) = with_grad(|| count_macs(|| crate::trace::trace(net, &x)));
    let activations = made_values(graph);
    net.set_training(true);
    Cost {
        params: num_parameters(net),
        macs,
        activations,
    }
}

/// Floats a traced pass made: the output of every op, by its shape (0 for no trace).
fn made_values(graph: Result<crate::trace::Graph, String>) -> u64 {
    graph
        .map(|g| {
            g.values
                .iter()
                .filter(|v| matches!(v.def, crate::trace::Def::Op(..)))
                .map(|v| v.shape.iter().product::<usize>() as u64)
                .sum()
        })
        .unwrap_or(0)
}

/// Measured eval-mode forward latency of `net` on a batch (fastest of `reps`), in ms.
pub fn measure_latency(net: &dyn Module, input: [usize; 3], batch: usize, reps: usize) -> f64 {
    net.set_training(false);
    let x = Tensor::randn(
        &[batch, input[0], input[1], input[2]],
        1.0,
        &mut Rng::new(0),
    );
    let ms = no_grad(|| crate::timing::fastest_ms(reps, || drop(net.forward(&x))));
    net.set_training(true);
    ms
}

pub use nas_types::OpCost;

/// (label -> candidate -> value), summed over the cells that share a label.
type PerCandidate<T> = BTreeMap<String, BTreeMap<String, T>>;

/// What a supernet forward pass is probing, if anything.
enum Probe {
    /// Timing each candidate, fastest of `reps`.
    Latency(usize, PerCandidate<f64>),
    /// Counting each candidate's cost.
    Cost(PerCandidate<OpCost>),
}

thread_local! {
    /// While measuring a table: filled by `LayerChoice` from its input.
    static PROBE: RefCell<Option<Probe>> = const { RefCell::new(None) };
}

/// Called by a mixed `LayerChoice` on its input: times or counts every candidate when a
/// table is being measured. Shared labels (one decision for many cells) add up.
pub(crate) fn profile_candidates(label: &str, ops: &[(String, Box<dyn Module>)], x: &Tensor) {
    // What is armed, read before the candidates run (they may pass other layer choices).
    let reps = PROBE.with(|p| match &*p.borrow() {
        Some(Probe::Latency(reps, _)) => Some(*reps),
        _ => None,
    });
    let costing = PROBE.with(|p| matches!(&*p.borrow(), Some(Probe::Cost(_))));
    if let Some(reps) = reps {
        let times: Vec<(String, f64)> = ops
            .iter()
            .map(|(n, op)| {
                let ms = no_grad(|| crate::timing::fastest_ms(reps, || drop(op.forward(x))));
                (n.clone(), ms)
            })
            .collect();
        PROBE.with(|p| {
            if let Some(Probe::Latency(_, table)) = &mut *p.borrow_mut() {
                add_row(table, label, times);
            }
        });
    } else if costing {
        let images = x.shape().first().copied().unwrap_or(1).max(1) as f64;
        let costs: Vec<(String, OpCost)> = ops
            .iter()
            .map(|(n, op)| (n.clone(), op_cost(op.as_ref(), x, images)))
            .collect();
        PROBE.with(|p| {
            if let Some(Probe::Cost(table)) = &mut *p.borrow_mut() {
                add_row(table, label, costs);
            }
        });
    }
}

/// Adds each candidate's value to `label`'s row of `table`.
fn add_row<T: Default + std::ops::AddAssign>(
    table: &mut PerCandidate<T>,
    label: &str,
    values: Vec<(String, T)>,
) {
    let row = table.entry(label.to_string()).or_default();
    for (n, v) in values {
        *row.entry(n).or_default() += v;
    }
}

/// One op's cost on `x`, per image of its batch.
fn op_cost(op: &dyn Module, x: &Tensor, images: f64) -> OpCost {
    let (graph, macs) = with_grad(|| count_macs(|| crate::trace::trace(op, x)));
    let made = made_values(graph);
    let params = num_parameters(op) as f64;
    // An op that makes nothing (an identity, `none`'s constant zeros) reads nothing
    // either: it costs nothing, as SNAS's reference counts `Zero` and `Identity`.
    let memory = if made == 0 && params == 0.0 {
        0.0
    } else {
        (x.numel() as f64 + made as f64) / images + params
    };
    OpCost {
        params,
        macs: macs as f64 / images,
        memory,
    }
}

/// Runs one forward pass of `space`'s supernet on a batch of one `input` image while
/// `probe` is armed, and returns what the layer choices filled in.
fn probe_supernet(
    space: &dyn Space,
    input: [usize; 3],
    batch: usize,
    probe: Probe,
) -> Result<Probe, String> {
    let sn = Supernet::build(space, false, 0)
        .map_err(|e| format!("a per-op table needs a supernet: {e}"))?;
    sn.net.set_training(false);
    let x = Tensor::randn(
        &[batch, input[0], input[1], input[2]],
        1.0,
        &mut Rng::new(0),
    );
    /// Disarms the probe however the pass ends (a panic caught above included).
    struct Disarm;
    impl Drop for Disarm {
        fn drop(&mut self) {
            PROBE.with(|p| p.borrow_mut().take());
        }
    }
    PROBE.with(|p| *p.borrow_mut() = Some(probe));
    let _disarm = Disarm;
    no_grad(|| drop(sn.net.forward(&x)));
    sn.net.set_training(true);
    Ok(PROBE
        .with(|p| p.borrow_mut().take())
        .expect("the probe was armed"))
}

/// Parameters, multiply-adds and memory access of every candidate of every layer
/// choice of `space`, each on its real input inside the supernet (one image).
pub fn op_costs(space: &dyn Space, input: [usize; 3]) -> Result<PerCandidate<OpCost>, String> {
    match probe_supernet(space, input, 1, Probe::Cost(BTreeMap::new()))? {
        Probe::Cost(table) => Ok(table),
        Probe::Latency(..) => unreachable!("armed for costs"),
    }
}

/// Latency of every candidate of every layer choice, plus the rest of the network.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LatencyTable {
    pub batch: usize,
    pub input: [usize; 3],
    /// label -> candidate -> milliseconds (summed over every place the label is used).
    pub ops: BTreeMap<String, BTreeMap<String, f64>>,
    /// Everything outside layer choices, in milliseconds.
    pub base_ms: f64,
}

impl LatencyTable {
    /// Measures the table on this machine: each candidate timed on its real input inside
    /// the supernet, and the base from one measured fixed network.
    pub fn measure(
        space: &dyn Space,
        input: [usize; 3],
        batch: usize,
        reps: usize,
    ) -> Result<LatencyTable, String> {
        let ops = match probe_supernet(space, input, batch, Probe::Latency(reps, BTreeMap::new()))?
        {
            Probe::Latency(_, table) => table,
            Probe::Cost(_) => unreachable!("armed for latencies"),
        };
        let choices = super::describe(space);
        let reference = super::arch::random(&choices, &mut Rng::new(0));
        let net = super::fixed(space, &reference, 0).map_err(|e| e.to_string())?;
        let mut table = LatencyTable {
            batch,
            input,
            ops,
            base_ms: 0.0,
        };
        let measured = measure_latency(net.as_ref(), input, batch, reps);
        table.base_ms = (measured - table.predict(&reference)).max(0.0);
        Ok(table)
    }

    /// Predicted latency of an architecture, in milliseconds.
    pub fn predict(&self, arch: &Architecture) -> f64 {
        let ops: f64 = arch
            .iter()
            .filter_map(|(label, v)| {
                let row = self.ops.get(label)?;
                row.get(v.as_str()?)
            })
            .sum();
        self.base_ms + ops
    }
}

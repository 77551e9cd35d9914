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
    let activations = graph
        .map(|g| {
            g.values
                .iter()
                .filter(|v| matches!(v.def, crate::trace::Def::Op(..)))
                .map(|v| v.shape.iter().product::<usize>() as u64)
                .sum()
        })
        .unwrap_or(0);
    net.set_training(true);
    Cost {
        params: num_parameters(net),
        macs,
        activations,
    }
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

thread_local! {
    /// While measuring a table: (label -> candidate -> ms), filled by `LayerChoice`.
    static PROFILE: RefCell<Option<(usize, BTreeMap<String, BTreeMap<String, f64>>)>> =
        const { RefCell::new(None) };
}

/// Called by a mixed `LayerChoice` on its input: times every candidate when a latency
/// table is being measured. Shared labels (one decision for many cells) add up.
pub(crate) fn profile_candidates(label: &str, ops: &[(String, Box<dyn Module>)], x: &Tensor) {
    let reps = PROFILE.with(|p| p.borrow().as_ref().map(|(r, _)| *r));
    let Some(reps) = reps else { return };
    let times: Vec<(String, f64)> = ops
        .iter()
        .map(|(n, op)| {
            (
                n.clone(),
                no_grad(|| crate::timing::fastest_ms(reps, || drop(op.forward(x)))),
            )
        })
        .collect();
    PROFILE.with(|p| {
        let mut p = p.borrow_mut();
        let table = &mut p.as_mut().unwrap().1;
        let row = table.entry(label.to_string()).or_default();
        for (n, t) in times {
            *row.entry(n).or_insert(0.0) += t;
        }
    });
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
        let sn = Supernet::build(space, false, 0)
            .map_err(|e| format!("latency table needs a supernet: {e}"))?;
        sn.net.set_training(false);
        let x = Tensor::randn(
            &[batch, input[0], input[1], input[2]],
            1.0,
            &mut Rng::new(0),
        );
        PROFILE.with(|p| *p.borrow_mut() = Some((reps, BTreeMap::new())));
        no_grad(|| drop(sn.net.forward(&x)));
        let ops = PROFILE.with(|p| p.borrow_mut().take().unwrap().1);
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

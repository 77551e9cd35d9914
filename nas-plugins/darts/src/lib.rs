//! DARTS (Liu, Simonyan and Yang, 2019): every choice becomes a softmax over its
//! candidates' logits; the network weights train on training batches, the logits on
//! validation batches.
//!
//! - `order: 1` (default): the architecture gradient is taken at the current weights.
//! - `order: 2`: at the weights after one virtual step of the weight optimiser, as the
//!   reference code takes it: `w' = w - xi * (mu * v + dLtrain/dw + wd * w)` (momentum
//!   buffer `v`, weight decay `wd`), with `xi` the learning rate of the next weight step
//!   (it follows the cosine schedule), and the paper's chain-rule correction
//!   `- xi * d2Ltrain/(da dw) . dLval/dw'`, where the Hessian-vector product is the
//!   central difference of `dLtrain/da` at `w +- eps * dLval/dw'`,
//!   `eps = 0.01 / |dLval/dw'|`.
//!
//! A cell node's incoming edges (an input choice whose candidates carry op choices of
//! their own, as in the `darts` space) are not relaxed: every edge weighs 1 while
//! searching, so a node is the plain sum of its mixed edges, as in the paper.
//!
//! Export: the strongest candidate of every choice; for edges the paper's rule: each
//! edge keeps its strongest op other than `none`, each node the two edges whose kept op
//! weighs most ([`OneShotInfo::derive`]).
//!
//! Config: `order` (1 or 2), `xi` (a fixed virtual step size instead of the current
//! learning rate), `arch_lr`, `arch_weight_decay`.

use nas_strategies::oneshot::{
    ArchParams, EpochStrategy, OneShotInfo, OneShotSetup, Split, SupernetHost, Warmup, WeightOp,
    ARCH_FIELDS,
};
use nas_strategies::{config_field, export_one_shot, json, Architecture, Value};

pub struct Darts {
    info: OneShotInfo,
    warmup: Warmup,
    order: u32,
    xi: Option<f32>,
    arch: ArchParams,
}

/// The loss gradient with respect to the logits behind `p = softmax(alpha)`, second
/// order: the validation gradient at the virtually stepped weights, corrected by the
/// finite-difference Hessian-vector product. `xi` is the virtual step's learning rate
/// (`None`: the host's current one). Uses the current training and validation batches;
/// the weights are left as they were. Returns the gradient and the validation loss at
/// `w'`.
pub fn second_order_grad(
    host: &mut dyn SupernetHost,
    p: &[f32],
    xi: Option<f32>,
) -> Result<(Vec<f32>, f32), String> {
    let n = p.len();
    let xi = match xi {
        Some(x) => x,
        None => host.lr()?,
    };
    let mut scratch = vec![0.0; n];
    host.weights(WeightOp::Save { slot: 0 })?;
    // w' = w - xi * (mu * v + dLtrain/dw + wd * w): the optimiser's step, not taken.
    host.mix_grad(p, Split::Train, &mut scratch, true)?;
    host.weights(WeightOp::VirtualStep { lr: xi })?;
    // dLval/dp at w', keeping dLval/dw' as the direction.
    let mut g_val = vec![0.0; n];
    let val = host.mix_grad(p, Split::Val, &mut g_val, true)?;
    let eps = 0.01 / val.weight_grad_norm.max(1e-12);
    let mut g_plus = vec![0.0; n];
    let mut g_minus = vec![0.0; n];
    for (sign, out) in [(1.0f32, &mut g_plus), (-1.0, &mut g_minus)] {
        host.weights(WeightOp::Restore { slot: 0 })?;
        host.weights(WeightOp::AddDirection { scale: sign * eps })?;
        host.mix_grad(p, Split::Train, out, false)?;
    }
    host.weights(WeightOp::Restore { slot: 0 })?;
    let g: Vec<f32> = (0..n)
        .map(|i| g_val[i] - xi * (g_plus[i] - g_minus[i]) / (2.0 * eps))
        .collect();
    Ok((g, val.loss))
}

impl EpochStrategy for Darts {
    fn create(setup: &OneShotSetup) -> Result<Self, String> {
        let mut fields = vec!["order", "xi"];
        fields.extend_from_slice(ARCH_FIELDS);
        nas_strategies::check_config_fields(&setup.config, "darts", &fields)?;
        let order: u32 = config_field(&setup.config, "order", 1)?;
        if order != 1 && order != 2 {
            return Err(format!(
                "config field `order`: {order} is not valid (1 or 2)"
            ));
        }
        let xi: Option<f32> = config_field(&setup.config, "xi", None)?;
        if let Some(xi) = xi.filter(|x| !(*x >= 0.0 && x.is_finite())) {
            return Err(format!(
                "config field `xi`: {xi} is not valid (must be >= 0)"
            ));
        }
        Ok(Darts {
            warmup: Warmup::from_config(setup)?,
            info: setup.info.clone(),
            order,
            xi,
            arch: ArchParams::new(&setup.info, &setup.config)?,
        })
    }

    fn step(
        &mut self,
        host: &mut dyn SupernetHost,
        _epoch: usize,
        _step: usize,
    ) -> Result<Vec<(&'static str, f32)>, String> {
        host.next_batch(Split::Train)?;
        host.next_batch(Split::Val)?;
        let p = self.arch.probs(&self.info);
        let (g_p, val_loss) = if self.order == 2 {
            second_order_grad(host, &p, self.xi)?
        } else {
            let mut g = vec![0.0; p.len()];
            let r = host.mix_grad(&p, Split::Val, &mut g, false)?;
            (g, r.loss)
        };
        let g_alpha = self.info.softmax_backward(&p, &g_p, 1.0);
        self.arch.step(&g_alpha)?;
        let p = self.arch.probs(&self.info);
        let train_loss = host.train_step(&p, None)?;
        Ok(vec![("train_loss", train_loss), ("val_loss", val_loss)])
    }

    fn warmup(&self) -> Warmup {
        self.warmup
    }

    fn current(&self, info: &OneShotInfo) -> Architecture {
        self.arch.derive(info)
    }

    fn save(&self) -> Result<Value, String> {
        Ok(json!({"arch": self.arch.save()?}))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        self.arch
            .load(state.get("arch").cloned().unwrap_or(Value::Null))
    }
}

export_one_shot!(Darts, "darts", "0.1.0");

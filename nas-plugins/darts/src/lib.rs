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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_up_trains_uniform_paths_before_the_search() {
        nas_strategies::testing::check_warmup::<Darts>(nas_strategies::json!({"arch_lr": 0.05}));
    }
    use nas_strategies::oneshot::OneShotStrategy;
    use nas_strategies::testing::{fake_setup, picked, FakeSupernet};

    fn fake(epochs: usize) -> FakeSupernet {
        let mut f = FakeSupernet::new(2, 3, epochs, 100);
        // op0 favours c2, op1 favours c0, the input choice favours inputs 0 and 2.
        f.slope = vec![1.0, 0.5, -1.0, -1.0, 0.5, 1.0, -1.0, 1.0, -0.5];
        f
    }

    fn setup(f: &FakeSupernet, config: Value, resume: Option<Value>) -> OneShotSetup {
        fake_setup(f, config, 0, resume)
    }

    #[test]
    fn both_orders_follow_the_gradient_to_the_best_candidates() {
        for order in [1, 2] {
            let mut f = fake(1);
            let cfg = json!({"order": order, "arch_lr": 0.05});
            let mut d = <Darts as OneShotStrategy>::new(&setup(&f, cfg, None)).unwrap();
            let arch = d.run(&mut f, None).unwrap();
            assert_eq!(
                (picked(&arch, 0), picked(&arch, 1)),
                (2, 0),
                "order {order}"
            );
            assert_eq!(arch["in"], json!([0, 2]));
            assert_eq!(f.steps, 100);
        }
    }

    #[test]
    fn the_virtual_step_follows_the_learning_rate() {
        use nas_strategies::oneshot::WeightOp;
        let mut f = fake(1);
        let mut d = <Darts as OneShotStrategy>::new(&setup(&f, json!({"order": 2}), None)).unwrap();
        d.run(&mut f, None).unwrap();
        // The fake's rate falls as 0.1 / (1 + steps): each step's virtual step must use
        // the rate of the weight step that follows it.
        let xis: Vec<f32> = f
            .weight_ops
            .iter()
            .filter_map(|op| match op {
                WeightOp::VirtualStep { lr } => Some(*lr),
                _ => None,
            })
            .collect();
        assert_eq!(xis.len(), 100);
        for (k, xi) in xis.iter().enumerate() {
            assert_eq!(*xi, 0.1 / (1 + k) as f32, "step {k}");
        }
        // A fixed `xi` overrides the schedule.
        let mut f = fake(1);
        let cfg = json!({"order": 2, "xi": 0.5});
        let mut d = <Darts as OneShotStrategy>::new(&setup(&f, cfg, None)).unwrap();
        d.run(&mut f, None).unwrap();
        assert!(f
            .weight_ops
            .iter()
            .all(|op| !matches!(op, WeightOp::VirtualStep { lr } if *lr != 0.5)));
    }

    #[test]
    fn resuming_from_a_checkpoint_ends_where_an_uninterrupted_run_does() {
        for order in [1, 2] {
            nas_strategies::testing::check_resume::<Darts>(
                json!({"arch_lr": 0.01, "order": order}),
                || fake(2),
            );
        }
    }

    #[test]
    fn bad_config_names_the_field() {
        let f = fake(1);
        for (cfg, want) in [
            (json!({"order": 3}), "`order`"),
            (json!({"xi": -1.0}), "`xi`"),
            (json!({"arch_lr": 0.0}), "`arch_lr`"),
            (json!({"speed": 1}), "`speed`"),
        ] {
            let e = <Darts as OneShotStrategy>::new(&setup(&f, cfg, None))
                .err()
                .unwrap();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn a_node_sums_its_edges_and_the_export_ranks_them_by_their_ops() {
        nas_strategies::testing::check_cell_relaxation::<Darts>(json!({"arch_lr": 0.05}), 100);
    }
}

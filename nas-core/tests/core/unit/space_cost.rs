//! The unit tests of `nas_core::space::cost` (`nas-core/src/space/cost.rs`).

use nas_core::rng::Rng;
use nas_core::space::cost::*;
use nas_core::tensor::no_grad;

use nas_core::ops::ConvOpts;
use nas_core::space::builtin::{nb201, InputSpec};
use nas_core::space::{arch, describe, fixed};

/// Activations are the floats every op of one image's pass makes: a 3x3 convolution
/// (1 -> 2 channels, padded) on 5x5 makes 2x5x5 with its bias, its ReLU as many
/// again, and a 2x2 pooling of stride 2 2x2x2. Counting the input, the parameters or
/// a batch of more than one image would miss these figures; so would a count taken
/// inside `no_grad` (nothing recorded: 0).
#[test]
fn activations_count_every_ops_output_for_one_image() {
    use nas_core::nn::{Conv2d, MaxPool2d, ReLU, Sequential};
    let mut rng = Rng::new(0);
    let opts = ConvOpts {
        padding: 1,
        ..Default::default()
    };
    let net = Sequential::new(vec![
        Box::new(Conv2d::new(1, 2, 3, opts, &mut rng)),
        Box::new(ReLU),
        Box::new(MaxPool2d {
            k: 2,
            stride: 2,
            padding: 0,
        }),
    ]);
    let c = cost(&net, [1, 5, 5]);
    assert_eq!(c.activations, 50 + 50 + 8);
    assert_eq!(no_grad(|| cost(&net, [1, 5, 5])).activations, 108);
    assert_eq!(c.params, 2 * 9 + 2);
}

/// Counting an architecture's multiply-adds builds its network, runs it once in eval
/// mode and drops it; doing that again and again (a table search does it for every
/// trial) must not grow this thread's buffer pool. It used to grow by the network's
/// parameters and its batch norms' per-channel scales every time.
#[test]
fn costing_networks_again_and_again_keeps_the_buffer_pool_flat() {
    let input = InputSpec {
        channels: 3,
        height: 16,
        width: 16,
        classes: 10,
    };
    let space = nb201(4, 1, input);
    let choices = describe(space.as_ref());
    let mut rng = Rng::new(3);
    let archs: Vec<_> = (0..4).map(|_| arch::random(&choices, &mut rng)).collect();
    let mut once = 0;
    for round in 0..10 {
        for (i, a) in archs.iter().enumerate() {
            let net = fixed(space.as_ref(), a, i as u64).unwrap();
            cost(net.as_ref(), [3, 16, 16]);
        }
        let held = nas_core::buffer::pooled_floats();
        if round == 0 {
            once = held;
        } else {
            assert_eq!(held, once, "round {round}: the pool grew");
        }
    }
    assert!(once > 0);
}

/// Each layer choice's candidates are costed on their real input inside the supernet,
/// for one image: the seed network's `conv1` (3 -> 6 channels at 32x32, with bias)
/// and `conv2` (6 -> 16 at 16x16, after a pooling) against a hand count. Memory
/// access is the input read, the output made and the parameters. A table taken on the
/// wrong input (the network's, for conv2), on a batch, or without the bias misses them.
#[test]
fn op_costs_count_each_candidate_on_its_input() {
    use nas_core::space::builtin::seed::SeedSpace;
    let space = SeedSpace {
        in_channels: 3,
        classes: 10,
    };
    let t = op_costs(&space, [3, 32, 32]).unwrap();
    assert_eq!(t.len(), 2, "{t:?}"); // conv1, conv2; the skip is an input choice
    for (label, cin, cout, side) in [("conv1", 3usize, 6usize, 32usize), ("conv2", 6, 16, 16)] {
        for (name, k) in [("conv3x3", 3usize), ("conv5x5", 5)] {
            let c = t[label][name];
            let params = (cout * cin * k * k + cout) as f64;
            let hw = (side * side) as f64;
            assert_eq!(c.params, params, "{label} {name}");
            assert_eq!(c.macs, (cout * cin * k * k) as f64 * hw, "{label} {name}");
            assert_eq!(
                c.memory,
                (cin + cout) as f64 * hw + params,
                "{label} {name}"
            );
        }
    }
}

/// In the `darts` cells an op that computes nothing from its input costs nothing, as
/// SNAS's reference counts `Zero` and `Identity`: `none` everywhere and the normal
/// cell's `skip_connect`; the reduction cell's `skip_connect` (a factorized reduce)
/// and the convolutions do cost. Before, `none` was charged the read of its input.
#[test]
fn ops_that_compute_nothing_cost_nothing() {
    use nas_core::space::builtin::darts::DartsSpace;
    let space = DartsSpace {
        c: 4,
        layers: 3,
        ..DartsSpace::new(3, 10)
    };
    let t = op_costs(&space, [3, 8, 8]).unwrap();
    let normal = &t["normal/op_2_0"];
    let reduce = &t["reduce/op_2_0"];
    assert_eq!(normal["none"], OpCost::default());
    assert_eq!(reduce["none"], OpCost::default());
    assert_eq!(normal["skip_connect"], OpCost::default());
    assert!(
        reduce["skip_connect"].params > 0.0,
        "{:?}",
        reduce["skip_connect"]
    );
    for c in [&normal["sep_conv_3x3"], &reduce["sep_conv_3x3"]] {
        assert!(
            c.params > 0.0 && c.macs > 0.0 && c.memory > c.params,
            "{c:?}"
        );
    }
    // Pooling makes values from its input: memory access, no parameters.
    let pool = normal["max_pool_3x3"];
    assert!(pool.params == 0.0 && pool.memory > 0.0, "{pool:?}");
}

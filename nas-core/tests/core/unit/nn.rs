//! The unit tests of `nas_core::nn` (`nas-core/src/nn.rs`).

use nas_core::nn::*;
use nas_core::rng::Rng;
use nas_core::tensor::{no_grad, Tensor};

#[test]
fn factorized_reduce_halves_any_size_rounding_up() {
    let mut rng = Rng::new(0);
    let fr = FactorizedReduce::new(3, 4, false, &mut rng);
    for (side, want) in [(1, 1), (2, 1), (3, 2), (8, 4), (15, 8), (30, 15)] {
        let x = Tensor::uniform(&[2, 3, side, side], -1.0, 1.0, &mut rng);
        assert_eq!(fr.forward(&x).shape(), &[2, 4, want, want], "side {side}");
    }
}

#[test]
fn factorized_reduce_reads_the_shifted_pixels() {
    // 1x1 convolutions of weight 1 pass pixels through: the first half of the output
    // holds the even pixels, the second the odd ones, and zero past an odd edge.
    let mut rng = Rng::new(0);
    let fr = FactorizedReduce::new(1, 2, false, &mut rng);
    fr.conv1.weight.data_mut().fill(1.0);
    fr.conv2.weight.data_mut().fill(1.0);
    fr.set_training(false);
    let x = Tensor::from_vec((1..=9).map(|v| v as f32).collect(), &[1, 1, 3, 3]);
    let y = no_grad(|| fr.forward(&x)).to_vec();
    // Eval-mode batch norm with fresh statistics scales by 1/sqrt(1 + eps).
    let s = 1.0 / (1.0f32 + 1e-5).sqrt();
    let want = [1.0, 3.0, 7.0, 9.0, 5.0, 0.0, 0.0, 0.0].map(|v| v * s);
    for (a, b) in y.iter().zip(want) {
        assert!((a - b).abs() < 1e-5, "{y:?} vs {want:?}");
    }
}

//! The unit tests of `nas_core::trace` (`nas-core/src/trace.rs`).

use nas_core::nn::Module;
use nas_core::tensor::Tensor;
use nas_core::trace::*;

use nas_core::nn::{BatchNorm2d, Conv2d, ReLU, Sequential};
use nas_core::ops::ConvOpts;
use nas_core::rng::Rng;

#[test]
fn a_conv_bn_relu_records_its_ops_state_and_constants() {
    let mut rng = Rng::new(0);
    let o = ConvOpts {
        padding: 1,
        stride: 2,
        ..Default::default()
    };
    let net = Sequential::new(vec![
        Box::new(Conv2d::new(2, 3, 3, o, &mut rng)),
        Box::new(BatchNorm2d::with_affine(3, false)),
        Box::new(ReLU),
    ]);
    net.set_training(false);
    let x = Tensor::uniform(&[2, 2, 5, 5], -1.0, 1.0, &mut rng);
    let g = trace(&net, &x).unwrap();
    let ops: Vec<Prim> = g
        .values
        .iter()
        .filter_map(|v| match &v.def {
            Def::Op(p, _) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let conv = Window {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    // Eval-mode batch norm without affine parameters is `x * scale + shift`.
    assert_eq!(ops, [Prim::Conv2d(conv), Prim::Mul, Prim::Add, Prim::Relu]);
    let states: Vec<&str> = g
        .values
        .iter()
        .filter_map(|v| match &v.def {
            Def::State(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(states, ["0.weight", "0.bias"]);
    assert_eq!(g.values[g.input].def, Def::Input);
    assert_eq!(g.values[g.output].shape, [2, 3, 3, 3]);
    // The recorded output is the forward's.
    let want = nas_core::tensor::no_grad(|| net.forward(&x)).to_vec();
    assert_eq!(g.values[g.output].tensor.to_vec(), want);
    // Every op reads earlier values only.
    for (i, v) in g.values.iter().enumerate() {
        if let Def::Op(_, ins) = &v.def {
            assert!(ins.iter().all(|&j| j < i), "value {i} reads {ins:?}");
        }
    }
}

#[test]
fn add_scalar_keeps_its_scalar() {
    struct Shift;
    impl Module for Shift {
        fn forward(&self, x: &Tensor) -> Tensor {
            x.add_scalar(-6.0).relu()
        }
        fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, nas_core::nn::Kind)) {}
    }
    let g = trace(&Shift, &Tensor::zeros(&[1, 4])).unwrap();
    assert!(g
        .values
        .iter()
        .any(|v| matches!(v.def, Def::Op(Prim::AddScalar(s), _) if s == -6.0)));
}

#[test]
fn tracing_inside_no_grad_is_an_error() {
    let r = nas_core::tensor::no_grad(|| trace(&ReLU, &Tensor::zeros(&[1, 1])).err());
    assert!(r.unwrap().contains("no_grad"));
}

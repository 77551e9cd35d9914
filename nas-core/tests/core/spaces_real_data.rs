//! Every built-in space, as fixed networks of random architectures and as a supernet,
//! trains on a batch of the bundled Fashion-MNIST: a few SGD steps lower the loss.

use nas_core::data::load_dir;
use nas_core::nn::{parameters, Module};
use nas_core::optim::{Optimizer, Sgd};
use nas_core::space::builtin::{self, darts::DartsSpace, InputSpec, NAMES};
use nas_core::space::{arch, describe, fixed, Space, Supernet};
use nas_core::{Rng, Tensor};
use std::path::Path;

/// Loss before and after `steps` SGD steps on one batch.
fn fit(net: &dyn Module, x: &Tensor, y: &[u32], steps: usize) -> (f32, f32) {
    let ps = parameters(net).into_iter().map(|(_, t)| t).collect();
    let mut opt = Sgd::new(ps, 0.9, false, 0.0);
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..steps {
        let loss = net.forward(x).cross_entropy(y);
        last = loss.item();
        first.get_or_insert(last);
        assert!(last.is_finite());
        opt.zero_grad();
        loss.backward();
        opt.step(0.02);
    }
    (first.unwrap(), last)
}

fn small(name: &str, input: InputSpec) -> Box<dyn Space> {
    match name {
        "nb201" => builtin::nb201(8, 1, input),
        "darts" => {
            let mut d = DartsSpace::new(input.channels, input.classes);
            d.c = 8;
            d.layers = 5;
            Box::new(d)
        }
        "chain" => Box::new(builtin::chain::ChainSpace {
            depths: vec![2, 3],
            filters: vec![8, 16],
            ..builtin::chain::ChainSpace::new(input.channels, input.classes)
        }),
        n => builtin::by_name(n, input).unwrap(),
    }
}

/// Two random architectures of the space `name` as fixed networks, and its supernet, each
/// lower the loss on a batch of 32 images in 8 steps.
fn trains_on_the_bundled_data(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fashion-mnist");
    let mut data = load_dir(&root).unwrap().test.take(32);
    let (m, s) = data.channel_stats();
    data.normalise(&m, &s);
    let x = Tensor::from_vec(data.images.clone(), &[32, 1, 28, 28]);
    let y = data.labels.clone();
    let input = InputSpec {
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
    };
    let index = NAMES
        .iter()
        .position(|n| *n == name)
        .expect("a built-in space");
    let mut rng = Rng::new(index as u64);
    let space = small(name, input);
    let choices = describe(space.as_ref());
    for _ in 0..2 {
        let a = arch::random(&choices, &mut rng);
        let net = fixed(space.as_ref(), &a, rng.next_u64()).unwrap();
        let (l0, l1) = fit(net.as_ref(), &x, &y, 8);
        assert!(l1 < l0, "{name} {a:?}: loss {l0} -> {l1}");
    }
    let sn = Supernet::build(space.as_ref(), false, 1).unwrap();
    let (l0, l1) = fit(sn.net.as_ref(), &x, &y, 8);
    assert!(l1 < l0, "{name} supernet: loss {l0} -> {l1}");
}

/// One test per built-in space (so the harness runs them side by side), and a check that
/// the list is every built-in space.
macro_rules! every_space {
    ($($space:ident = $name:literal),*) => {
        mod every_space_trains_on_the_bundled_data {
            $(
                #[test]
                fn $space() {
                    super::trains_on_the_bundled_data($name);
                }
            )*
            #[test]
            fn the_list_is_every_builtin_space() {
                assert_eq!(&[$($name),*], super::NAMES);
            }
        }
    };
}
every_space!(
    seed_net = "seed-net",
    nb201 = "nb201",
    darts = "darts",
    chain = "chain",
    mobilenet = "mobilenet"
);

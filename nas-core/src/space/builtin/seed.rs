//! `seed-net`: the seed network of the NNI tutorial this project starts from, with its
//! three choices: conv1 and conv2 kernel size (3 or 5) and the skip input.

use crate::nn::{join, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Kind, Linear, Module};
use crate::ops::ConvOpts;
use crate::rng::Rng;
use crate::space::{Builder, InputChoice, LayerChoice, Reduce, Space};
use crate::tensor::Tensor;

/// The smallest image side the seed network takes: its two 2x2 max-pools need a 2x2
/// input each.
pub const MIN_SIZE: usize = 4;

/// The seed network's space for inputs of `in_channels` and `classes` outputs, on images
/// of at least [`MIN_SIZE`] pixels a side.
pub struct SeedSpace {
    pub in_channels: usize,
    pub classes: usize,
}

pub struct SeedNet {
    pub conv1: LayerChoice,
    pub conv2: LayerChoice,
    pub conv3: Conv2d,
    pub skip: InputChoice,
    pub bn: BatchNorm2d,
    pub gap: AdaptiveAvgPool2d,
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
}

use crate::space::Make;

fn conv_candidates(cin: usize, cout: usize) -> Vec<(String, Make<'static>)> {
    [3usize, 5]
        .into_iter()
        .map(|k| {
            let make: Make = Box::new(move |rng: &mut Rng| {
                let o = ConvOpts {
                    padding: k / 2,
                    ..Default::default()
                };
                Box::new(Conv2d::new(cin, cout, k, o, rng)) as Box<dyn Module>
            });
            (format!("conv{k}x{k}"), make)
        })
        .collect()
}

impl Space for SeedSpace {
    fn name(&self) -> &str {
        "seed-net"
    }
    fn build(&self, b: &mut Builder) -> Box<dyn Module> {
        let conv1 = b.layer_choice("conv1", conv_candidates(self.in_channels, 6));
        let conv2 = b.layer_choice("conv2", conv_candidates(6, 16));
        let rng = &mut b.rng;
        let conv3 = Conv2d::new(16, 16, 1, ConvOpts::default(), rng);
        // Candidates of `skip`: [x1, x1 + x0].
        let skip = b.input_choice("skip", 2, 1, Reduce::Sum);
        let rng = &mut b.rng;
        Box::new(SeedNet {
            conv1,
            conv2,
            conv3,
            skip,
            bn: BatchNorm2d::new(16),
            gap: AdaptiveAvgPool2d { out: (4, 4) },
            fc1: Linear::new(256, 120, rng),
            fc2: Linear::new(120, 84, rng),
            fc3: Linear::new(84, self.classes, rng),
        })
    }
}

impl Module for SeedNet {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.conv1.forward(x).relu().max_pool2d(2, 2, 0);
        let x0 = self.conv2.forward(&x).relu();
        let x1 = self.conv3.forward(&x0).relu();
        let x1 = self.skip.forward(&[x1.clone(), x1.add(&x0)]);
        let x = self.bn.forward(&x1).max_pool2d(2, 2, 0);
        let x = self.gap.forward(&x).flatten(1);
        crate::space::tap_point(crate::space::FEATURES, &x);
        let x = self.fc1.forward(&x).relu();
        let x = self.fc2.forward(&x).relu();
        self.fc3.forward(&x)
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.conv1.visit(&join(p, "conv1"), f);
        self.conv2.visit(&join(p, "conv2"), f);
        self.conv3.visit(&join(p, "conv3"), f);
        self.bn.visit(&join(p, "bn"), f);
        self.fc1.visit(&join(p, "fc1"), f);
        self.fc2.visit(&join(p, "fc2"), f);
        self.fc3.visit(&join(p, "fc3"), f);
    }
    fn set_training(&self, t: bool) {
        self.conv1.set_training(t);
        self.conv2.set_training(t);
        self.bn.set_training(t);
    }
}

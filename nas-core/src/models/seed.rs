//! The seed network of the NNI tutorial this project starts from, with its three choices
//! fixed by a `SeedArch`.

use crate::nn::{join, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Kind, Linear, Module};
use crate::ops::ConvOpts;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// The choices of the seed network: kernel sizes of conv1 and conv2 (3 or 5) and whether
/// the skip adds `x0` to `x1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedArch {
    pub conv1_kernel: usize,
    pub conv2_kernel: usize,
    pub skip: bool,
}

impl Default for SeedArch {
    /// The architecture the core issue trains: conv1 3x3, conv2 5x5, skip = x1 + x0.
    fn default() -> Self {
        SeedArch {
            conv1_kernel: 3,
            conv2_kernel: 5,
            skip: true,
        }
    }
}

pub struct SeedNet {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
    pub bn: BatchNorm2d,
    pub gap: AdaptiveAvgPool2d,
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
    pub arch: SeedArch,
}

impl SeedNet {
    pub fn new(in_channels: usize, classes: usize, arch: SeedArch, rng: &mut Rng) -> SeedNet {
        let same = |k: usize| ConvOpts {
            padding: k / 2,
            ..Default::default()
        };
        SeedNet {
            conv1: Conv2d::new(
                in_channels,
                6,
                arch.conv1_kernel,
                same(arch.conv1_kernel),
                rng,
            ),
            conv2: Conv2d::new(6, 16, arch.conv2_kernel, same(arch.conv2_kernel), rng),
            conv3: Conv2d::new(16, 16, 1, ConvOpts::default(), rng),
            bn: BatchNorm2d::new(16),
            gap: AdaptiveAvgPool2d { out: (4, 4) },
            fc1: Linear::new(256, 120, rng),
            fc2: Linear::new(120, 84, rng),
            fc3: Linear::new(84, classes, rng),
            arch,
        }
    }
}

impl Module for SeedNet {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.conv1.forward(x).relu().max_pool2d(2, 2, 0);
        let x0 = self.conv2.forward(&x).relu();
        let mut x1 = self.conv3.forward(&x0).relu();
        if self.arch.skip {
            x1 = x1.add(&x0);
        }
        let x = self.bn.forward(&x1).max_pool2d(2, 2, 0);
        let x = self.gap.forward(&x).flatten(1);
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
        self.bn.set_training(t);
    }
}

//! `mobilenet`: a layer-wise space of MobileNetV2 blocks in the style of ProxylessNAS
//! and FBNet, small enough to train on 32x32 images on a CPU.
//!
//! A stem (3x3 conv, BN, ReLU6; stride 2, or 1 for inputs of 32 pixels or less) feeds a
//! fixed sequence of stages; each layer of a stage is a `LayerChoice` labelled
//! `stage{s}/layer{l}` among inverted-residual blocks `mb_k{3,5,7}_e{3,6}` (kernel size
//! and expansion ratio) and, on layers that keep the shape (every layer but the first of
//! a stage), `skip`. A head (1x1 conv, BN, ReLU6), global average pooling and a linear
//! classifier end the network. All candidates of a layer have the same output shape, so
//! the space has a supernet.

use crate::nn::{
    join, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Identity, Kind, Linear, Module, Sequential,
};
use crate::ops::ConvOpts;
use crate::rng::Rng;
use crate::space::{Builder, LayerChoice, Space};
use crate::tensor::Tensor;

/// The block candidates of every layer: (name, kernel size, expansion ratio).
pub const BLOCKS: [(&str, usize, usize); 6] = [
    ("mb_k3_e3", 3, 3),
    ("mb_k3_e6", 3, 6),
    ("mb_k5_e3", 5, 3),
    ("mb_k5_e6", 5, 6),
    ("mb_k7_e3", 7, 3),
    ("mb_k7_e6", 7, 6),
];

/// A stage: output channels, stride of its first layer, number of layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub channels: usize,
    pub stride: usize,
    pub layers: usize,
}

#[derive(Clone, Debug)]
pub struct MobileNetSpace {
    pub in_channels: usize,
    pub classes: usize,
    pub stem_channels: usize,
    pub stem_stride: usize,
    pub stages: Vec<Stage>,
    pub head_channels: usize,
}

impl MobileNetSpace {
    /// Stem of 16 channels, stages of (16, 24, 32, 64) channels with strides (1, 2, 2, 2)
    /// and (2, 3, 3, 2) layers, head of 128 channels.
    pub fn new(in_channels: usize, classes: usize, input_size: usize) -> MobileNetSpace {
        let stage = |channels, stride, layers| Stage {
            channels,
            stride,
            layers,
        };
        MobileNetSpace {
            in_channels,
            classes,
            stem_channels: 16,
            stem_stride: if input_size <= 32 { 1 } else { 2 },
            stages: vec![
                stage(16, 1, 2),
                stage(24, 2, 3),
                stage(32, 2, 3),
                stage(64, 2, 2),
            ],
            head_channels: 128,
        }
    }
}

/// min(max(x, 0), 6), composed as relu(x) - relu(x - 6).
pub struct ReLU6;
impl Module for ReLU6 {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.relu().sub(&x.add_scalar(-6.0).relu())
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, &Tensor, Kind)) {}
}

fn conv_bn(cin: usize, cout: usize, k: usize, o: ConvOpts, rng: &mut Rng) -> Vec<Box<dyn Module>> {
    vec![
        Box::new(Conv2d::no_bias(cin, cout, k, o, rng)),
        Box::new(BatchNorm2d::new(cout)),
    ]
}

/// The inverted-residual block of MobileNetV2: 1x1 expansion (BN, ReLU6), k x k
/// depthwise convolution (BN, ReLU6), 1x1 projection (BN), plus the input when the
/// block keeps the shape.
pub struct MBConv {
    pub op: Sequential,
    pub residual: bool,
}

impl MBConv {
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        expand: usize,
        stride: usize,
        rng: &mut Rng,
    ) -> MBConv {
        let hidden = cin * expand;
        let mut layers = conv_bn(cin, hidden, 1, ConvOpts::default(), rng);
        layers.push(Box::new(ReLU6));
        let dw = ConvOpts {
            stride,
            padding: k / 2,
            groups: hidden,
            ..Default::default()
        };
        layers.extend(conv_bn(hidden, hidden, k, dw, rng));
        layers.push(Box::new(ReLU6));
        layers.extend(conv_bn(hidden, cout, 1, ConvOpts::default(), rng));
        MBConv {
            op: Sequential::new(layers),
            residual: stride == 1 && cin == cout,
        }
    }
}

impl Module for MBConv {
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = self.op.forward(x);
        if self.residual {
            y.add(x)
        } else {
            y
        }
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.op.visit(&join(p, "op"), f)
    }
    fn set_training(&self, t: bool) {
        self.op.set_training(t)
    }
}

pub struct MobileNet {
    pub stem: Sequential,
    pub layers: Vec<LayerChoice>,
    pub head: Sequential,
    pub gap: AdaptiveAvgPool2d,
    pub classifier: Linear,
}

impl Module for MobileNet {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = self.stem.forward(x);
        for l in &self.layers {
            y = l.forward(&y);
        }
        let y = self.head.forward(&y);
        let y = self.gap.forward(&y).flatten(1);
        crate::space::tap_point(crate::space::FEATURES, &y);
        self.classifier.forward(&y)
    }
    fn visit(&self, p: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.stem.visit(&join(p, "stem"), f);
        for l in &self.layers {
            l.visit(&join(p, &l.label.replace('/', ".")), f);
        }
        self.head.visit(&join(p, "head"), f);
        self.classifier.visit(&join(p, "classifier"), f);
    }
    fn set_training(&self, t: bool) {
        self.stem.set_training(t);
        self.layers.iter().for_each(|l| l.set_training(t));
        self.head.set_training(t);
    }
}

type Make = crate::space::Make<'static>;

impl Space for MobileNetSpace {
    fn name(&self) -> &str {
        "mobilenet"
    }

    fn build(&self, b: &mut Builder) -> Box<dyn Module> {
        let stem_opts = ConvOpts {
            stride: self.stem_stride,
            padding: 1,
            ..Default::default()
        };
        let mut stem = conv_bn(
            self.in_channels,
            self.stem_channels,
            3,
            stem_opts,
            &mut b.rng,
        );
        stem.push(Box::new(ReLU6));
        let mut cin = self.stem_channels;
        let mut layers = vec![];
        for (s, stage) in self.stages.iter().enumerate() {
            for l in 0..stage.layers {
                let stride = if l == 0 { stage.stride } else { 1 };
                let cout = stage.channels;
                let mut candidates: Vec<(String, Make)> = BLOCKS
                    .iter()
                    .map(|&(name, k, e)| {
                        let make: Make = Box::new(move |rng: &mut Rng| {
                            Box::new(MBConv::new(cin, cout, k, e, stride, rng)) as Box<dyn Module>
                        });
                        (name.to_string(), make)
                    })
                    .collect();
                if l > 0 && stride == 1 && cin == cout {
                    let make: Make = Box::new(|_: &mut Rng| Box::new(Identity) as Box<dyn Module>);
                    candidates.push(("skip".to_string(), make));
                }
                layers.push(b.layer_choice(&format!("stage{s}/layer{l}"), candidates));
                cin = cout;
            }
        }
        let mut head = conv_bn(cin, self.head_channels, 1, ConvOpts::default(), &mut b.rng);
        head.push(Box::new(ReLU6));
        Box::new(MobileNet {
            stem: Sequential::new(stem),
            layers,
            head: Sequential::new(head),
            gap: AdaptiveAvgPool2d { out: (1, 1) },
            classifier: Linear::new(self.head_channels, self.classes, &mut b.rng),
        })
    }
}

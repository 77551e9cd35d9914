//! `--onnx` and `--onnx-sample` (`nas train`, `retrain`, `export`): a network written as
//! an ONNX model, and a batch of images with its outputs for them, to check the model
//! against in another runtime (`scripts/onnx_check.py`).

use anyhow::{anyhow, Result};
use clap::Args;
use nas_core::data::Dataset;
use nas_core::nn::Module;
use nas_core::{no_grad, Tensor};
use std::path::PathBuf;

/// Images in a sample.
const SAMPLE_IMAGES: usize = 8;

#[derive(Args, Debug, Clone, Default)]
pub struct OnnxArgs {
    /// Also write the network as an ONNX model (opset 13, eval mode, batch norm folded
    /// into the convolutions, symbolic batch size; the README says how to load it).
    #[arg(long, value_name = "PATH")]
    pub onnx: Option<PathBuf>,
    /// With --onnx: also save a few images and the network's outputs for them
    /// (safetensors: `input`, `output`), for scripts/onnx_check.py to compare with
    /// onnxruntime.
    #[arg(long, value_name = "PATH", requires = "onnx")]
    pub onnx_sample: Option<PathBuf>,
}

impl OnnxArgs {
    /// Checks, before any work, that every output these options and `others` (a flag
    /// and its path each) name can be written, and that no two name one file; an error
    /// names the flag. Before, a directory, a missing or read-only place was found after
    /// the training whose result it was to keep.
    ///
    /// An output that is one of the command's `inputs` (a flag and its path each), or a
    /// run's own record (its journal, config, space, state), is refused too: before, the
    /// command wrote over it and exited 0, and the run or the input was lost.
    pub fn check_outputs(
        &self,
        others: &[(&str, Option<&PathBuf>)],
        inputs: &[(&str, Option<&std::path::Path>)],
    ) -> Result<()> {
        let mut all: Vec<(&str, &PathBuf)> = others
            .iter()
            .filter_map(|(f, p)| p.map(|p| (*f, p)))
            .collect();
        all.extend(self.onnx.as_ref().map(|p| ("--onnx", p)));
        all.extend(self.onnx_sample.as_ref().map(|p| ("--onnx-sample", p)));
        for (i, (flag, p)) in all.iter().enumerate() {
            if let Some((other, _)) = all[..i].iter().find(|(_, q)| q == p) {
                return Err(anyhow!(
                    "{flag} {}: {other} names the same file; name another",
                    p.display()
                ));
            }
            crate::check_output(flag, p, inputs)?;
        }
        Ok(())
    }

    /// These options as command-line arguments (to hand on to `nas train`).
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![];
        for (flag, p) in [("--onnx", &self.onnx), ("--onnx-sample", &self.onnx_sample)] {
            if let Some(p) = p {
                v.extend([flag.to_string(), p.display().to_string()]);
            }
        }
        v
    }

    /// Writes `net` (for `images`' shape, which are normalised with `mean` and `std`) and
    /// its sample (the first of `images`), as asked; `about` goes to the model's metadata.
    pub fn write(
        &self,
        net: &dyn Module,
        images: &Dataset,
        (mean, std): (&[f32], &[f32]),
        about: &[(&str, String)],
    ) -> Result<()> {
        let Some(path) = &self.onnx else {
            return Ok(());
        };
        let list = |v: &[f32]| serde_json::to_string(v).unwrap_or_default();
        let mut meta: Vec<(&str, String)> = about.to_vec();
        meta.extend([
            (
                "input",
                format!(
                    "[N, {}, {}, {}] images, pixels scaled to [0, 1], then each channel c \
                     normalised: (x - input_mean[c]) / input_std[c]",
                    images.c, images.h, images.w
                ),
            ),
            ("input_mean", list(mean)),
            ("input_std", list(std)),
            (
                "output",
                format!("[N, {}] class scores (logits)", images.classes),
            ),
        ]);
        let image = [images.c, images.h, images.w];
        let model = nas_onnx::export(net, image, &meta)
            .map_err(|e| anyhow!("--onnx {}: {e}", path.display()))?;
        nas_onnx::write(path, &model).map_err(|e| anyhow!("--onnx {}: {e}", path.display()))?;
        let nodes = model.graph.as_ref().map_or(0, |g| g.node.len());
        println!(
            "wrote {} (ONNX opset {}, {nodes} nodes, input [N, {}, {}, {}])",
            path.display(),
            nas_onnx::OPSET,
            images.c,
            images.h,
            images.w
        );
        if let Some(sample) = &self.onnx_sample {
            let n = SAMPLE_IMAGES.min(images.n);
            let x = Tensor::from_vec(
                images.images[..n * images.image_len()].to_vec(),
                &[n, images.c, images.h, images.w],
            );
            net.set_training(false);
            let y = no_grad(|| net.forward(&x));
            nas_onnx::write_sample(sample, &x, &y)
                .map_err(|e| anyhow!("--onnx-sample {}: {e}", sample.display()))?;
            println!(
                "wrote {} ({n} images and the network's outputs; `python \
                 scripts/onnx_check.py {} {}` compares onnxruntime's)",
                sample.display(),
                path.display(),
                sample.display()
            );
        }
        Ok(())
    }
}

//! Weights on disk as safetensors: save a module's named tensors, load them back with
//! every name and shape checked.

use crate::nn::{state, Module};
use crate::tensor::{no_grad, Tensor};
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

/// Writes named tensors to a safetensors file.
pub fn save_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| {
            let b: Vec<u8> = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.clone(), b, t.shape().to_vec())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, b, s)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .with_context(|| format!("{}: building tensors", path.display()))?;
    let out = safetensors::serialize(views, &None)
        .with_context(|| format!("{}: serialising", path.display()))?;
    // Write then rename, so a crash never leaves a half-written weights file (a missing
    // directory is made there).
    crate::experiment::write_output(path, &out).map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}

/// Reads every F32 tensor of a safetensors file, by name.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: reading", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!(
                "{}: tensor `{name}` has dtype {:?}, expected F32",
                path.display(),
                view.dtype()
            );
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, Tensor::from_vec(data, view.shape()));
    }
    Ok(out)
}

/// Saves a module's parameters and buffers.
pub fn save_module(path: &Path, m: &dyn Module) -> Result<()> {
    save_tensors(path, &state(m))
}

/// Loads a module's parameters and buffers; every tensor the module holds must be in the
/// file with the same shape.
pub fn load_module(path: &Path, m: &dyn Module) -> Result<()> {
    let file = load_tensors(path)?;
    for (name, t) in state(m) {
        let Some(src) = file.get(&name) else {
            bail!("{}: missing tensor `{name}`", path.display());
        };
        if src.shape() != t.shape() {
            bail!(
                "{}: tensor `{name}` has shape {:?}, the network expects {:?}",
                path.display(),
                src.shape(),
                t.shape()
            );
        }
        no_grad(|| t.data_mut().copy_from_slice(&src.data()));
    }
    Ok(())
}

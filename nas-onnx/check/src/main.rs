//! `nas-onnx-check MODEL.onnx SAMPLE.safetensors`: runs the model in tract on the sample's
//! `input` and prints tract's output as JSON (`{"shape": [...], "data": [...]}`), for a
//! test to compare with what nas computed (the sample's `output`).

use tract_onnx::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: nas-onnx-check MODEL.onnx SAMPLE.safetensors");
        std::process::exit(2);
    }
    if let Err(e) = run(&args[1], &args[2]) {
        eprintln!("nas-onnx-check: {e:?}");
        std::process::exit(1);
    }
}

fn run(model: &str, sample: &str) -> TractResult<()> {
    let bytes = std::fs::read(sample)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let t = st.tensor("input")?;
    let shape = t.shape().to_vec();
    let data: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // The model's own input fact (its batch symbolic), made concrete by the sample.
    let plan = tract_onnx::onnx()
        .model_for_path(model)?
        .with_input_fact(0, f32::fact(&shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let input = tract_ndarray::ArrayD::from_shape_vec(shape, data)?;
    let out = plan.run(tvec!(Tensor::from(input).into()))?;
    let y = out[0].to_plain_array_view::<f32>()?;
    let json = serde_json::json!({
        "shape": y.shape(),
        "data": y.iter().copied().collect::<Vec<f32>>(),
    });
    println!("{json}");
    Ok(())
}

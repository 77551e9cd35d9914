//! With the wgpu device active, a training step of the seed network (its convolutions
//! and linear layers on the GPU, the rest on the CPU) gives the loss and every gradient
//! the CPU gives, within 1e-4 relative. Own test binary: the device switch is global.
//! Skips, saying so, without a Vulkan adapter unless NAS_REQUIRE_WGPU is set (CI).

use nas_core::nn::parameters;
use nas_core::space::builtin::seed::SeedSpace;
use nas_core::space::{arch, describe, fixed};
use nas_core::{Rng, Tensor};

fn step(net: &dyn nas_core::nn::Module, x: &Tensor, y: &[u32]) -> (f32, Vec<Vec<f32>>) {
    for (_, p) in parameters(net) {
        p.zero_grad();
    }
    let loss = net.forward(x).cross_entropy(y);
    loss.backward();
    let grads = parameters(net)
        .into_iter()
        .map(|(_, p)| p.grad().unwrap())
        .collect();
    (loss.item(), grads)
}

#[test]
fn a_seed_net_step_on_wgpu_matches_the_cpu() {
    if let Err(e) = nas_kernels::accel::activate_wgpu() {
        assert!(std::env::var_os("NAS_REQUIRE_WGPU").is_none(), "{e}");
        println!("skipped: {e}");
        return;
    }
    nas_kernels::accel::deactivate();
    let space = SeedSpace {
        in_channels: 3,
        classes: 10,
    };
    let mut rng = Rng::new(1);
    for trial in 0..3 {
        let a = arch::random(&describe(&space), &mut rng);
        let net = fixed(&space, &a, trial).unwrap();
        let x = Tensor::randn(&[8, 3, 32, 32], 1.0, &mut rng);
        let y: Vec<u32> = (0..8).map(|_| rng.below(10) as u32).collect();
        let (cpu_loss, cpu) = step(net.as_ref(), &x, &y);
        nas_kernels::accel::activate_wgpu().unwrap();
        let (gpu_loss, gpu) = step(net.as_ref(), &x, &y);
        nas_kernels::accel::deactivate();
        assert!(
            (cpu_loss - gpu_loss).abs() < 1e-4 * cpu_loss.abs(),
            "{cpu_loss} vs {gpu_loss}"
        );
        for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
            let scale = c.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let err = c.iter().zip(g).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-4 * scale,
                "{a:?}: parameter {i}: error {err} of {scale}"
            );
        }
    }
}

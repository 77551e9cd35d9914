//! The CPU backend behind the same two boundaries as the devices (`accel::cpu()`), held to
//! the suites the wgpu and CUDA backends pass: the wiring of each primitive to its CPU
//! kernel (argument order, shapes), the shared argument checks (errors where the devices
//! give them), and the cases with references of their own (exact sums, f64 sums).

#[macro_use]
mod common;

fn with_device(f: impl FnOnce(&dyn nas_kernels::accel::Accel)) {
    f(nas_kernels::accel::cpu().0);
}

suite_tests!();

fn with_resident(f: impl FnOnce(&dyn nas_kernels::accel::Resident)) {
    f(nas_kernels::accel::cpu().1);
}

resident_tests!();

/// A buffer of another backend is an error naming both, not a crash.
#[test]
fn a_device_buffer_is_refused() {
    let (_, cpu) = nas_kernels::accel::cpu();
    let Ok(g) = nas_kernels::accel::wgpu() else {
        nas_kernels::report_skip("no wgpu adapter to make a device buffer on");
        return;
    };
    let dev = nas_kernels::accel::Resident::upload(g, &[1.0, 2.0]).unwrap();
    let host = cpu.upload(&[1.0, 2.0]).unwrap();
    let e = cpu
        .binary(nas_kernels::accel::Binary::Add, &host, &dev)
        .err()
        .expect("a wgpu buffer given to the CPU backend");
    assert!(e.to_string().contains("wgpu"), "{e}");
    let e = nas_kernels::accel::Resident::binary(g, nas_kernels::accel::Binary::Add, &dev, &host)
        .err()
        .expect("a host buffer given to wgpu");
    assert!(e.to_string().contains("cpu"), "{e}");
}

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

/// Shapes at the edges give results or errors, never a panic: a sum to a shape of more
/// dimensions than the gradient's (leading 1s), empty tensors, an adaptive pooling of an
/// empty plane; and SGD without momentum gives the buffer back as it was (as the
/// devices do).
#[test]
fn edge_shapes_and_plain_sgd() {
    use nas_kernels::accel::{Binary, DevBuf};
    let (_, r) = nas_kernels::accel::cpu();
    let v = |b: DevBuf| b.to_vec().unwrap();
    let g = r.upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    assert_eq!(
        v(r.reduce_to(&g, &[2, 3], &[1, 1, 3]).unwrap()),
        [5.0, 7.0, 9.0]
    );
    assert_eq!(
        v(r.reduce_to(&g, &[2, 3], &[1, 2, 1]).unwrap()),
        [6.0, 15.0]
    );
    let empty = r.upload(&[]).unwrap();
    assert!(v(r.permute(&[0, 2], &[1, 0], &empty).unwrap()).is_empty());
    let two = r.upload(&[1.0, 2.0]).unwrap();
    let sum = r.binary_broadcast(Binary::Add, &empty, &[0, 2], &two, &[1, 2]);
    assert!(v(sum.unwrap()).is_empty());
    assert_eq!(
        v(r.reduce_to(&empty, &[0, 2], &[1, 2]).unwrap()),
        [0.0, 0.0]
    );
    assert!(r.adaptive_avg_pool(1, 0, 3, 1, 1, &empty).is_err());
    let (w, g, m) = (
        r.upload(&[1.0, -1.0]).unwrap(),
        two.clone(),
        r.upload(&[7.0, 8.0]).unwrap(),
    );
    let (w2, m2) = r.sgd(&w, &g, Some(&m), 0.5, 0.0, 0.0, false).unwrap();
    assert_eq!(v(w2), [0.5, -2.0]);
    assert_eq!(v(m2), [7.0, 8.0]);
}

/// Host memory the pool cannot get is a failure a host reports as an error (the
/// registry tells it from a bug), not an abort: before, `vec![0.0; len]` aborted the
/// process ("memory allocation of ... bytes failed") on `nas profile --size 100000`.
#[test]
fn a_buffer_past_host_memory_is_a_failure() {
    use nas_kernels::cpu::buffer;
    let p = std::panic::catch_unwind(|| buffer::take(1 << 60)).expect_err("2^62 bytes");
    let msg = nas_kernels::failure::failure(&*p).expect("a failure, not a bug");
    assert!(
        msg.contains("out of host memory") && msg.contains("GiB"),
        "{msg}"
    );
    // A buffer that fits is zeros, and the pool still works after the failure.
    let v = buffer::take(1 << 20);
    assert!(v.len() == 1 << 20 && v.iter().all(|&x| x == 0.0));
    buffer::give(v);
    assert_eq!(buffer::take(1 << 20).len(), 1 << 20);
    // Any other panic is not one.
    let p = std::panic::catch_unwind(|| panic!("{}", String::from("a bug"))).unwrap_err();
    assert!(nas_kernels::failure::failure(&*p).is_none());
}

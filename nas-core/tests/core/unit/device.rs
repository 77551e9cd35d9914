//! The unit tests of `nas_core::device` (`nas-core/src/device.rs`).

use nas_core::device::*;

#[test]
fn device_names_parse_and_print_back() {
    for s in ["cpu", "wgpu", "cuda:0", "cuda:3"] {
        assert_eq!(s.parse::<Device>().unwrap().to_string(), s);
    }
    assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
    for bad in ["gpu", "cuda:x", "cuda:", "CPU"] {
        assert!(bad.parse::<Device>().is_err(), "{bad}");
    }
}

#[test]
fn cpu_gemm_matches_a_naive_product_and_checks_lengths() {
    let (m, n, k) = (3, 5, 4);
    let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 * 0.25).collect();
    let mut c = vec![0.0; m * n];
    cpu_gemm(m, n, k, &a, &b, &mut c).unwrap();
    for i in 0..m {
        for j in 0..n {
            let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            assert!((c[i * n + j] - want).abs() < 1e-4);
        }
    }
    assert!(cpu_gemm(m, n, k, &a, &b, &mut c[1..]).is_err());
}

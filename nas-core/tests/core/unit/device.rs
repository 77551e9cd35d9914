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

/// Kernel errors are typed by kind, and only a device that is not there may be skipped
/// by a test: a bad geometry, a failed call or kernels that do not build are failures.
#[test]
fn kernel_errors_say_their_kind_and_only_absence_is_skippable() {
    use nas_kernels::cpu::conv::Conv2d;
    let bad = Conv2d {
        n: 1,
        cin: 4,
        h: 5,
        w: 5,
        cout: 6,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        ph: 1,
        pw: 1,
        dh: 1,
        dw: 1,
        groups: 3,
    };
    match bad.validate() {
        Err(KernelError::Invalid(m)) => assert!(m.contains("groups=3"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(Conv2d { groups: 2, ..bad }.validate().is_ok());
    let e = nas_kernels::accel::check_targets(2, 3, 6, &[0, 3]).unwrap_err();
    assert!(matches!(e, KernelError::Invalid(_)), "{e:?}");
    assert_eq!(e.to_string(), "nll: target 3 out of range for 3 classes");
    let e = KernelError::device("wgpu poll", "device lost");
    assert_eq!(e.to_string(), "wgpu poll: device lost");
    assert_eq!(String::from(e.clone()), "wgpu poll: device lost");
    assert!(skippable(&KernelError::Unavailable("no adapter".into())));
    for e in [
        e,
        KernelError::Compile("WGSL".into()),
        KernelError::Invalid("shape".into()),
    ] {
        assert!(!skippable(&e), "{e:?}");
    }
    // Where a device cannot open, it says why by kind: this machine's adapter is there,
    // or unavailable (never a failure of ours).
    for d in [Device::Wgpu, Device::Cuda(0)] {
        if let Err(e) = d.select() {
            assert!(skippable(&e), "{d}: {e:?}");
        }
    }
}

/// An op runs on the one device its operands live on (the host's are uploaded there);
/// operands on two devices are an error naming both.
#[test]
fn operands_share_one_device_or_it_is_an_error_naming_both() {
    assert_eq!(one_place([None, None]), Ok(None));
    let wgpu = Some(Place::Wgpu);
    assert_eq!(one_place([None, wgpu, None, wgpu]), Ok(wgpu));
    assert_eq!(one_place([Some(Place::Cuda)]), Ok(Some(Place::Cuda)));
    let e = one_place([wgpu, None, Some(Place::Cuda)]).unwrap_err();
    assert_eq!(e, "operands on two devices (wgpu and cuda)");
}

/// With both devices at hand (a GPU machine with a Vulkan driver), an op on a wgpu and
/// a CUDA tensor panics naming the op and both devices, and moving one across makes it
/// run; elsewhere it says it skipped.
#[test]
fn an_op_on_tensors_of_two_devices_panics_and_moving_one_fixes_it() {
    for d in [Device::Wgpu, Device::Cuda(0)] {
        if let Err(e) = d.select() {
            assert!(skippable(&e), "{d}: {e}");
            nas_core::device::report_skip(&format!("needs wgpu and cuda; {d}: {e}"));
            return;
        }
    }
    let a = nas_core::tensor::Tensor::from_vec(vec![1.0, 2.0], &[2]);
    let b = nas_core::tensor::Tensor::from_vec(vec![3.0, 4.0], &[2]);
    Device::Wgpu.place_tensor(&a).unwrap();
    Device::Cuda(0).place_tensor(&b).unwrap();
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.add(&b)))
        .err()
        .expect("an error");
    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("wgpu") && msg.contains("cuda"), "{msg}");
    Device::Wgpu.place_tensor(&b).unwrap();
    assert_eq!(a.add(&b).to_vec(), vec![4.0, 6.0]);
    assert_eq!(b.place(), Some(Place::Wgpu));
}

/// A tensor larger than the wgpu adapter allows in one buffer (zeros made on the device,
/// beside a device tensor: 2 GiB on lavapipe) is a device failure the host can tell from
/// a bug (`failure`), naming the limit; the device still works after it (`usable`), and
/// the next op runs. Before, wgpu's handler for unwatched errors panicked with "wgpu
/// error: Validation Error", which a search could only end on. Adapters that take
/// buffers past 4 GiB (NVIDIA's) skip it rather than try one that large.
#[test]
fn a_buffer_past_the_adapters_limit_is_a_device_failure() {
    if !wgpu_or_skip() {
        return;
    }
    let limit = nas_kernels::accel::wgpu().unwrap().buffer_limit();
    if limit > 4 << 30 {
        nas_core::device::report_skip(&format!("this adapter takes buffers of {limit} bytes"));
        return;
    }
    let a = nas_core::tensor::Tensor::from_vec(vec![1.0, 2.0], &[2]);
    Device::Wgpu.place_tensor(&a).unwrap();
    let floats = limit as usize / 4 + 1;
    let big = || nas_core::tensor::Tensor::zeros_beside(&[floats], &a);
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(big))
        .err()
        .expect("a buffer past the adapter's limit");
    let msg = failure(&*e).expect("a device failure, not a bug");
    assert!(
        msg.contains("past this adapter's limit") && msg.contains("per buffer"),
        "{msg}"
    );
    usable().unwrap();
    assert_eq!(a.add(&a).to_vec(), vec![2.0, 4.0]);
}

/// A max pooling run on the CPU whose output a wgpu op reads gets its gradient: the
/// rule runs where the forward left its argmax (the output gradient, made on the
/// device, is read back). With the CPU's gradient rules behind the backend interface it
/// first picked the device of the output gradient, which refused the CPU's argmax.
#[test]
fn a_host_max_pool_feeding_a_device_op_gets_its_gradient() {
    if !wgpu_or_skip() {
        return;
    }
    use nas_core::tensor::Tensor;
    let values: Vec<f32> = (0..16).map(|v| ((v * 7) % 16) as f32).collect();
    let grad = |device: bool| {
        let x = Tensor::parameter(values.clone(), &[1, 1, 4, 4]);
        let w = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
        if device {
            Device::Wgpu.place_tensor(&w).unwrap();
        }
        x.max_pool2d(2, 2, 0).mul(&w).sum().backward();
        x.grad().unwrap()
    };
    let want = grad(false);
    assert_eq!(want.iter().sum::<f32>(), 10.0, "{want:?}");
    assert_eq!(grad(true), want);
}

/// Opens wgpu, or says why the test skips (an adapter missing where `NAS_REQUIRE_WGPU`
/// is unset; any other error fails the test).
fn wgpu_or_skip() -> bool {
    match Device::Wgpu.select() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                skippable(&e) && std::env::var_os("NAS_REQUIRE_WGPU").is_none(),
                "wgpu: {e}"
            );
            nas_core::device::report_skip(&format!("no wgpu: {e}"));
            false
        }
    }
}

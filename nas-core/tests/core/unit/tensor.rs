//! The unit tests of `nas_core::tensor` (`nas-core/src/tensor.rs`): a host tensor keeps
//! its values in the CPU backend's buffer, which its ops read and make their results in.

use nas_core::buffer::{clear, pooled_floats};
use nas_core::Tensor;

#[test]
fn a_reshape_shares_its_values_until_either_is_written() {
    let a = Tensor::from_vec((0..6).map(|v| v as f32).collect(), &[2, 3]);
    let b = a.reshape(&[3, 2]);
    b.data_mut()[0] = 9.0;
    assert_eq!(
        a.to_vec(),
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        "a write to the reshape"
    );
    assert_eq!(b.to_vec()[0], 9.0);
    a.data_mut()[5] = -1.0;
    assert_eq!(b.to_vec()[5], 5.0, "a write to the original");
    assert_eq!(a.to_vec()[5], -1.0);
}

#[test]
fn a_host_ops_result_comes_from_the_pool_and_goes_back_to_it() {
    // The pool is per thread, and each test runs on a thread of its own.
    clear();
    let n = 50_021;
    let x = Tensor::from_vec(vec![-1.0; n], &[n]);
    let y = x.relu();
    assert_eq!(pooled_floats(), 0);
    assert!(y.to_vec().iter().all(|&v| v == 0.0));
    drop(y);
    assert_eq!(
        pooled_floats(),
        n,
        "the result's buffer goes back when dropped"
    );
    let z = x.exp();
    assert_eq!(
        pooled_floats(),
        0,
        "the next result of that length reuses it"
    );
    assert!((z.to_vec()[n - 1] - (-1.0f32).exp()).abs() < 1e-6);
    // A value a second holder shares (a reshape's) goes back only with the last one.
    let r = z.reshape(&[1, n]);
    drop(z);
    assert_eq!(pooled_floats(), 0);
    drop(r);
    assert_eq!(pooled_floats(), n);
}

//! Row-major single-precision matrix multiply on top of the `gemm-f32` crate's
//! micro-kernels (the `gemm` crate's f32 path, without its f16, f64 and complex kernels,
//! which only cost build time).

use gemm_common::Parallelism;

/// `c[m,n] = (accumulate ? c : 0) + op(a)[m,k] * op(b)[k,n]`, all row-major.
/// `a` is `[m,k]` (or `[k,m]` when `a_trans`), `b` is `[k,n]` (or `[n,k]` when `b_trans`).
/// `parallel` lets the multiply split across the rayon pool; pass false when the caller
/// already runs one multiply per thread.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_trans: bool,
    b: &[f32],
    b_trans: bool,
    c: &mut [f32],
    accumulate: bool,
    parallel: bool,
) {
    assert!(
        a.len() >= m * k,
        "sgemm: a has {} elements, needs {}",
        a.len(),
        m * k
    );
    assert!(
        b.len() >= k * n,
        "sgemm: b has {} elements, needs {}",
        b.len(),
        k * n
    );
    assert!(
        c.len() >= m * n,
        "sgemm: c has {} elements, needs {}",
        c.len(),
        m * n
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = if a_trans {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (b_rs, b_cs) = if b_trans {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let threads = rayon::current_num_threads();
    let par = if parallel && threads > 1 && m * n * k >= 1 << 18 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // The micro-kernels prefer a column-major destination; ours is row-major, so (as the
    // `gemm` crate's front end does) compute the transpose, C^T = op(b)^T op(a)^T, by
    // swapping the operands and every row stride with its column stride.
    let (dst_cs, dst_rs) = (1isize, n as isize);
    let (m, n, dst_cs, dst_rs, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs) = if dst_cs < dst_rs {
        (
            n,
            m,
            dst_rs,
            dst_cs,
            b.as_ptr(),
            b_rs,
            b_cs,
            a.as_ptr(),
            a_rs,
            a_cs,
        )
    } else {
        (
            m,
            n,
            dst_cs,
            dst_rs,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
        )
    };
    // SAFETY: the asserts above guarantee every index the strides reach is inside the
    // slices, and `c` is borrowed mutably so it aliases neither input.
    unsafe {
        gemm_f32::gemm::f32::get_gemm_fn()(
            m,
            n,
            k,
            c.as_mut_ptr(),
            dst_cs,
            dst_rs,
            accumulate,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Batched `sgemm` over `batch` consecutive matrices of each operand.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_batched(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_trans: bool,
    b: &[f32],
    b_trans: bool,
    c: &mut [f32],
    accumulate: bool,
) {
    use rayon::prelude::*;
    if batch == 1 {
        return sgemm(m, n, k, a, a_trans, b, b_trans, c, accumulate, true);
    }
    c[..batch * m * n]
        .par_chunks_mut(m * n)
        .enumerate()
        .for_each(|(i, ci)| {
            sgemm(
                m,
                n,
                k,
                &a[i * m * k..(i + 1) * m * k],
                a_trans,
                &b[i * k * n..(i + 1) * k * n],
                b_trans,
                ci,
                accumulate,
                false,
            )
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], at: bool, b: &[f32], bt: bool) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if at { a[p * m + i] } else { a[i * k + p] };
                    let bv = if bt { b[j * k + p] } else { b[p * n + j] };
                    s += av as f64 * bv as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn matches_naive_for_all_transposes_and_odd_sizes() {
        let mut seed = 1u32;
        let mut r = || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 33, 65), (64, 70, 129)] {
            let a: Vec<f32> = (0..m * k).map(|_| r()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| r()).collect();
            for at in [false, true] {
                for bt in [false, true] {
                    let want = naive(m, n, k, &a, at, &b, bt);
                    let mut c = vec![1.0f32; m * n];
                    sgemm(m, n, k, &a, at, &b, bt, &mut c, true, true);
                    for (x, w) in c.iter().zip(&want) {
                        assert!((x - (w + 1.0)).abs() < 1e-4, "{m}x{n}x{k} {at} {bt}");
                    }
                    sgemm(m, n, k, &a, at, &b, bt, &mut c, false, false);
                    for (x, w) in c.iter().zip(&want) {
                        assert!((x - w).abs() < 1e-4);
                    }
                }
            }
        }
    }
}

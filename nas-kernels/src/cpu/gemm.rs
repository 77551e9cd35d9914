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
    let (a_rs, a_cs) = if a_trans { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if b_trans { (1, k) } else { (n, 1) };
    let threads = rayon::current_num_threads();
    let par = if parallel && threads > 1 && m * n * k >= 1 << 18 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let v = Views {
        a: (a_rs, a_cs),
        b: (b_rs, b_cs),
        c: (n, 1),
    };
    // SAFETY: the lengths were checked above against these dense layouts.
    unsafe { gemm_raw(m, n, k, a, b, c, v, accumulate, par) }
}

/// Row and column strides of the three operands of `sgemm_strided`.
#[derive(Clone, Copy, Debug)]
pub struct Views {
    pub a: (usize, usize),
    pub b: (usize, usize),
    pub c: (usize, usize),
}

/// `c (+)= a * b` on strided views, on the calling thread: element `(i, j)` of the
/// `[m,k]` matrix `a` is `a[i * a.0 + j * a.1]`, and likewise for the `[k,n]` `b` and
/// the `[m,n]` `c`. Every element the views reach must lie inside its slice, and the
/// elements of `c` must be distinct (its rows, or its columns, do not overlap); both are
/// checked. Convolutions use it to multiply shifted windows of a padded image in place.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_strided(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    v: Views,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, (rs, cs): (usize, usize)| {
        (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs
    };
    assert!(
        k == 0 || (last(m, k, v.a) < a.len() && last(k, n, v.b) < b.len()),
        "sgemm_strided: a view reaches past its operand"
    );
    assert!(
        last(m, n, v.c) < c.len(),
        "sgemm_strided: c's view reaches past it"
    );
    let (rs, cs) = v.c;
    assert!(
        (cs >= 1 && rs >= n * cs)
            || (rs >= 1 && cs >= m * rs)
            || (m == 1 && cs >= 1)
            || (n == 1 && rs >= 1),
        "sgemm_strided: c's view {rs}x{cs} overlaps itself"
    );
    // SAFETY: every element reached is inside its slice and c's elements are distinct.
    unsafe { gemm_raw(m, n, k, a, b, c, v, accumulate, Parallelism::None) }
}

/// The micro-kernels' entry point, which prefers a column-major destination: a row-major
/// one is handled as the transposed product.
///
/// # Safety
/// The views must stay inside the slices and `c`'s elements must be distinct.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    v: Views,
    accumulate: bool,
    par: Parallelism,
) {
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    c[i * v.c.0 + j * v.c.1] = 0.0;
                }
            }
        }
        return;
    }
    let s = |x: usize| x as isize;
    let ((a_rs, a_cs), (b_rs, b_cs), (c_rs, c_cs)) = (v.a, v.b, v.c);
    let (m, n, dst_cs, dst_rs, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs) = if c_cs < c_rs {
        (
            n,
            m,
            c_rs,
            c_cs,
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
            c_cs,
            c_rs,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
        )
    };
    gemm_f32::gemm::f32::get_gemm_fn()(
        m,
        n,
        k,
        c.as_mut_ptr(),
        s(dst_cs),
        s(dst_rs),
        accumulate,
        lhs,
        s(lhs_cs),
        s(lhs_rs),
        rhs,
        s(rhs_cs),
        s(rhs_rs),
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    );
}

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
        for &(m, n, k) in &[(1, 1, 1), (2, 3, 0), (3, 5, 7), (17, 33, 65), (64, 70, 129)] {
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

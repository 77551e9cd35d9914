//! Movement kernels: permute, concat and slice along an axis, broadcast index walks.

use rayon::prelude::*;

/// Contiguous row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// `y = x.permute(perm)`: `y.shape[i] = x.shape[perm[i]]`.
pub fn permute(x: &[f32], shape: &[usize], perm: &[usize], y: &mut [f32]) {
    let xs = strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let src_strides: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
    let rank = out_shape.len();
    if rank == 0 {
        y[0] = x[0];
        return;
    }
    let inner = out_shape[rank - 1];
    let inner_stride = src_strides[rank - 1];
    let rows = y.len() / inner.max(1);
    let fill_row = |r: usize, row: &mut [f32]| {
        // Decompose the row index over the outer output dims.
        let mut rem = r;
        let mut base = 0;
        for d in (0..rank - 1).rev() {
            base += (rem % out_shape[d]) * src_strides[d];
            rem /= out_shape[d];
        }
        for (j, v) in row.iter_mut().enumerate() {
            *v = x[base + j * inner_stride];
        }
    };
    if y.len() >= super::PAR_MIN {
        y.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(r, row)| fill_row(r, row));
    } else {
        for (r, row) in y.chunks_mut(inner).enumerate() {
            fill_row(r, row);
        }
    }
    debug_assert_eq!(rows * inner, y.len());
}

/// Splits a shape around `axis` into (outer, axis length, inner).
pub fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Copies `src` (`[outer, src_len, inner]`) into `dst` (`[outer, dst_len, inner]`) at
/// offset `at` along the middle axis; `add` accumulates instead of overwriting.
#[allow(clippy::too_many_arguments)]
pub fn copy_axis_block(
    src: &[f32],
    outer: usize,
    src_len: usize,
    inner: usize,
    dst: &mut [f32],
    dst_len: usize,
    at: usize,
    add: bool,
) {
    let blk = src_len * inner;
    for o in 0..outer {
        let s = &src[o * blk..(o + 1) * blk];
        let d0 = (o * dst_len + at) * inner;
        let d = &mut dst[d0..d0 + blk];
        if add {
            d.iter_mut().zip(s).for_each(|(a, b)| *a += b);
        } else {
            d.copy_from_slice(s);
        }
    }
}

/// Reads `dst` (`[outer, len, inner]`) from `src` (`[outer, src_len, inner]`) starting at
/// `at` along the middle axis.
pub fn slice_axis(
    src: &[f32],
    outer: usize,
    src_len: usize,
    inner: usize,
    at: usize,
    len: usize,
    dst: &mut [f32],
) {
    let blk = len * inner;
    for o in 0..outer {
        let s0 = (o * src_len + at) * inner;
        dst[o * blk..(o + 1) * blk].copy_from_slice(&src[s0..s0 + blk]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_matches_index_formula() {
        let shape = [2, 3, 4];
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let perm = [2, 0, 1];
        let mut y = vec![0.0; 24];
        permute(&x, &shape, &perm, &mut y);
        for a in 0..4 {
            for b in 0..2 {
                for c in 0..3 {
                    assert_eq!(y[(a * 2 + b) * 3 + c], x[(b * 3 + c) * 4 + a]);
                }
            }
        }
    }

    #[test]
    fn concat_then_slice_round_trips() {
        let a: Vec<f32> = (0..12).map(|v| v as f32).collect(); // [2,3,2]
        let b: Vec<f32> = (100..108).map(|v| v as f32).collect(); // [2,2,2]
        let mut c = vec![0.0; 20]; // [2,5,2]
        copy_axis_block(&a, 2, 3, 2, &mut c, 5, 0, false);
        copy_axis_block(&b, 2, 2, 2, &mut c, 5, 3, false);
        let mut back = vec![0.0; 8];
        slice_axis(&c, 2, 5, 2, 3, 2, &mut back);
        assert_eq!(back, b);
        let mut back = vec![0.0; 12];
        slice_axis(&c, 2, 5, 2, 0, 3, &mut back);
        assert_eq!(back, a);
    }
}

//! Counter-based random bits: an entry's bits depend on its index and the seed only, so
//! every backend draws the same dropout mask without a generator's state, and the CPU's
//! is the reference the others are checked against bit for bit.

use crate::error::KernelError;
use rayon::prelude::*;

/// A 32-bit integer hash with low bias: two multiply and xor-shift rounds, each output
/// bit depending on every input bit.
#[inline]
pub fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The random bits of entry `i` under seed halves `s0` and `s1`.
#[inline]
pub fn bits(i: u32, s0: u32, s1: u32) -> u32 {
    mix(mix(mix(i) ^ s0) ^ s1)
}

/// One dropout draw: the seed's halves, the bits below which an entry is dropped, and
/// the value of a kept one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub s0: u32,
    pub s1: u32,
    pub below: u32,
    pub keep: f32,
}

impl Dropout {
    /// Drops each entry with probability `p` (0 < `p` <= 1: 1 drops all) and scales the
    /// rest by `1 / (1 - p)` (inverted dropout), with bits from `seed`.
    pub fn new(p: f32, seed: u64) -> Result<Dropout, KernelError> {
        if !(p > 0.0 && p <= 1.0) {
            return Err(KernelError::Invalid(format!(
                "dropout: probability {p} is not in (0, 1]"
            )));
        }
        // p of the 2^32 bit patterns; all of them but one at p = 1, whose kept value is 0.
        let below = (p as f64 * 4_294_967_296.0).round().min(u32::MAX as f64) as u32;
        let keep = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        Ok(Dropout {
            s0: seed as u32,
            s1: (seed >> 32) as u32,
            below,
            keep,
        })
    }

    /// Checks that a mask of `len` entries has an index for each (32 bits).
    pub fn check_len(len: usize) -> Result<(), KernelError> {
        if len > u32::MAX as usize {
            return Err(KernelError::Invalid(format!(
                "dropout: {len} values are past a mask's 32-bit indices"
            )));
        }
        Ok(())
    }

    /// Entry `i`'s mask value: 0 or the kept scale.
    #[inline]
    pub fn value(&self, i: u32) -> f32 {
        if bits(i, self.s0, self.s1) < self.below {
            0.0
        } else {
            self.keep
        }
    }
}

/// Writes the draw's mask values of entries `0..mask.len()`.
pub fn dropout_mask(d: &Dropout, mask: &mut [f32]) {
    const CHUNK: usize = 1 << 14;
    let fill = |(c, m): (usize, &mut [f32])| {
        let at = c * CHUNK;
        for (k, v) in m.iter_mut().enumerate() {
            *v = d.value((at + k) as u32);
        }
    };
    if mask.len() >= super::PAR_MIN {
        mask.par_chunks_mut(CHUNK).enumerate().for_each(fill);
    } else {
        mask.chunks_mut(CHUNK).enumerate().for_each(fill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_drops_about_p_and_scales_the_rest() {
        for p in [0.1f32, 0.5, 0.9] {
            let d = Dropout::new(p, 0x1234_5678_9abc_def0).unwrap();
            let mut m = vec![0.0; 200_000];
            dropout_mask(&d, &mut m);
            let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / m.len() as f64;
            assert!(
                (dropped - p as f64).abs() < 0.005,
                "p {p}: dropped {dropped}"
            );
            let keep = 1.0 / (1.0 - p);
            assert!(m.iter().all(|&v| v == 0.0 || v == keep), "p {p}");
        }
        let mut m = vec![1.0; 1000];
        dropout_mask(&Dropout::new(1.0, 3).unwrap(), &mut m);
        assert!(m.iter().all(|&v| v == 0.0));
        for p in [0.0, -0.5, 1.5, f32::NAN] {
            assert!(Dropout::new(p, 1).is_err(), "p {p}");
        }
    }

    /// Masks of two seeds agree where independent draws would (p^2 + (1-p)^2 of the
    /// entries), whether the seeds differ in one low bit or in the high half, and
    /// neighbouring entries of one mask are as independent.
    #[test]
    fn masks_of_other_seeds_and_neighbouring_entries_are_independent() {
        let p = 0.3f32;
        let want = (p * p + (1.0 - p) * (1.0 - p)) as f64;
        let n = 200_000;
        let mask = |seed: u64| {
            let mut m = vec![0.0; n];
            dropout_mask(&Dropout::new(p, seed).unwrap(), &mut m);
            m
        };
        let agree = |a: &[f32], b: &[f32]| {
            a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
        };
        let base = mask(42);
        for other in [43, 42 | (1 << 32), 42 ^ (1 << 63)] {
            let a = agree(&base, &mask(other));
            assert!(
                (a - want).abs() < 0.005,
                "seed {other}: {a} agree, want {want}"
            );
        }
        let a = agree(&base[..n - 1], &base[1..]);
        assert!(
            (a - want).abs() < 0.005,
            "neighbours: {a} agree, want {want}"
        );
    }
}

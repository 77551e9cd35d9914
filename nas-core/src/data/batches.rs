//! Mini-batch iteration over a `Dataset`: per-epoch shuffling, optional random-crop and
//! horizontal-flip augmentation, written into caller-owned buffers.

use super::Dataset;
use crate::rng::Rng;

/// Options for batching.
#[derive(Clone, Debug, Default)]
pub struct Augment {
    /// Random crop: pad each image with `random_crop_pad` zeros on every side and crop a
    /// random `h x w` window back out. 0 turns it off; CIFAR recipes use 4. Values larger
    /// than the image's larger side are treated as that side.
    pub random_crop_pad: usize,
    /// Mirror each image left-right with probability 1/2.
    pub hflip: bool,
}

impl Augment {
    /// Whether it changes nothing.
    pub fn is_off(&self) -> bool {
        self.random_crop_pad == 0 && !self.hflip
    }

    /// The training augmentation of images of shape `c x h x w`: CIFAR's recipe (a random
    /// crop after 4 pixels of zero padding, a random horizontal flip) for 3 x 32 x 32
    /// images, as the references of the one-shot searches and of DARTS-style retraining
    /// use it; none for other shapes (Fashion-MNIST's 1 x 28 x 28 included), where no
    /// recipe is given.
    pub fn standard_for(c: usize, h: usize, w: usize) -> Augment {
        if (c, h, w) == (3, 32, 32) {
            Augment {
                random_crop_pad: 4,
                hflip: true,
            }
        } else {
            Augment::default()
        }
    }
}

/// Iterates one epoch of mini-batches, shuffled with the given rng (or in order when
/// shuffle is false), filling caller-owned buffers so steady state allocates nothing.
/// The last partial batch is included unless `drop_last` is set.
///
/// [`Batches::endless`] instead makes a stream that never ends: full batches only, a new
/// shuffle whenever the current pass cannot fill one, and a [`BatchesState`] to resume it
/// exactly (a one-shot search's training and validation streams).
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
    drop_last: bool,
    augment: Augment,
    rng: Rng,
    /// Endless mode: the generator's state before the current pass's shuffle.
    pass_state: Option<[u64; 4]>,
}

/// Where an endless stream stands: the generator before its current pass's shuffle, and
/// the position in that pass. Restoring it gives the same batches from there on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchesState {
    pub pass_state: [u64; 4],
    pub pos: usize,
}

impl<'a> Batches<'a> {
    /// Prepares an epoch over `data`. Draws exactly one value from `rng` (it forks a private
    /// generator for the shuffle and augmentation), so successive epochs made from the same
    /// rng differ and a run is reproducible from its seed.
    ///
    /// Panics if `batch_size` is 0 or `data`'s buffers disagree with its shape fields.
    pub fn new(
        data: &'a Dataset,
        batch_size: usize,
        shuffle: bool,
        drop_last: bool,
        augment: Augment,
        rng: &mut Rng,
    ) -> Self {
        assert!(batch_size > 0, "Batches::new: batch_size must be positive");
        assert!(
            data.images.len() == data.n * data.image_len() && data.labels.len() == data.n,
            "Batches::new: dataset holds {} pixel values and {} labels for n={} of {}x{}x{}",
            data.images.len(),
            data.labels.len(),
            data.n,
            data.c,
            data.h,
            data.w
        );
        let mut rng = rng.fork();
        let mut order: Vec<usize> = (0..data.n).collect();
        if shuffle {
            rng.shuffle(&mut order);
        }
        Batches {
            data,
            order,
            pos: 0,
            batch_size,
            drop_last,
            augment,
            rng,
            pass_state: None,
        }
    }

    /// An endless stream of full shuffled batches drawn with a generator seeded by
    /// `seed` (no augmentation). Fails when `data` cannot fill one batch.
    pub fn endless(data: &'a Dataset, batch_size: usize, seed: u64) -> Result<Self, String> {
        if batch_size == 0 || data.n < batch_size {
            return Err(format!(
                "{} images cannot fill a batch of {batch_size}",
                data.n
            ));
        }
        let mut b = Batches::new(
            data,
            batch_size,
            false,
            true,
            Augment::default(),
            &mut Rng::new(0),
        );
        b.rng = Rng::new(seed);
        b.reshuffle();
        Ok(b)
    }

    /// Starts a new endless pass: remembers the generator, then shuffles all indices.
    fn reshuffle(&mut self) {
        self.pass_state = Some(self.rng.state());
        self.order.clear();
        self.order.extend(0..self.data.n);
        self.rng.shuffle(&mut self.order);
        self.pos = 0;
    }

    /// An endless stream's position (None for an epoch iterator).
    pub fn state(&self) -> Option<BatchesState> {
        self.pass_state.map(|pass_state| BatchesState {
            pass_state,
            pos: self.pos,
        })
    }

    /// Puts an endless stream back where `s` says (a position past the data is clamped).
    pub fn restore(&mut self, s: &BatchesState) {
        self.rng = Rng::from_state(s.pass_state);
        self.reshuffle();
        self.pos = s.pos.min(self.order.len());
    }

    /// Number of batches in the epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.order.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Writes the next batch's images (NCHW, `x` resized to `b*c*h*w`) and labels (`y`
    /// resized to `b`) into the buffers; returns the batch size `b`, or None at the end of
    /// the epoch. Buffers that have held a full batch are never reallocated.
    pub fn next_into(&mut self, x: &mut Vec<f32>, y: &mut Vec<u32>) -> Option<usize> {
        if self.pass_state.is_some() && self.pos + self.batch_size > self.order.len() {
            self.reshuffle();
        }
        let n = self.order.len();
        let b = self.batch_size.min(n - self.pos);
        if b == 0 || (self.drop_last && b < self.batch_size) {
            self.pos = n;
            return None;
        }
        let d = self.data;
        let il = d.image_len();
        x.resize(b * il, 0.0);
        y.clear();
        let idx = &self.order[self.pos..self.pos + b];
        for (dst, &i) in x.chunks_exact_mut(il.max(1)).zip(idx) {
            let src = &d.images[i * il..(i + 1) * il];
            if self.augment.is_off() {
                dst.copy_from_slice(src);
            } else {
                augment_into(src, dst, d.c, d.h, d.w, &self.augment, &mut self.rng);
            }
        }
        y.extend(idx.iter().map(|&i| d.labels[i]));
        self.pos += b;
        Some(b)
    }
}

/// One augmented view of a batch of `c x h x w` images `x` (NCHW), as self-supervised
/// training makes two of each batch (BossNAS, after BYOL): each image is cropped and
/// flipped as `aug` says, then its contrast is scaled by a factor drawn from
/// `1 ± jitter` about the image's mean and its brightness shifted by a value drawn from
/// `± jitter` (a grey-scale colour jitter; 0 turns it off). Everything is drawn from
/// `rng`, so a view is reproducible from the generator's state.
pub fn augment_view(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    aug: &Augment,
    jitter: f32,
    rng: &mut Rng,
) -> Vec<f32> {
    let il = (c * h * w).max(1);
    let mut out = vec![0.0; x.len()];
    for (src, dst) in x.chunks_exact(il).zip(out.chunks_exact_mut(il)) {
        augment_into(src, dst, c, h, w, aug, rng);
        if jitter > 0.0 {
            let contrast = 1.0 + jitter * (2.0 * rng.uniform() - 1.0);
            let brightness = jitter * (2.0 * rng.uniform() - 1.0);
            let mean = dst.iter().sum::<f32>() / il as f32;
            for v in dst.iter_mut() {
                *v = (*v - mean) * contrast + mean + brightness;
            }
        }
    }
    out
}

/// Writes an augmented copy of one CHW image `src` into `dst`: the window of the zero-padded
/// image at a random offset (if cropping), mirrored left-right half the time (if flipping).
fn augment_into(
    src: &[f32],
    dst: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    aug: &Augment,
    rng: &mut Rng,
) {
    let flip = aug.hflip && rng.bernoulli(0.5);
    let pad = aug.random_crop_pad.min(h.max(w));
    // Output pixel (i, j) comes from source pixel (i + dy, j + dx); outside the source is 0.
    let (dy, dx) = if pad > 0 {
        let span = 2 * pad + 1;
        (
            rng.below(span) as isize - pad as isize,
            rng.below(span) as isize - pad as isize,
        )
    } else {
        (0, 0)
    };
    let (hi, wi) = (h as isize, w as isize);
    // Columns j with 0 <= j + dx < w.
    let j_lo = (-dx).clamp(0, wi) as usize;
    let j_hi = (wi - dx).clamp(0, wi) as usize;
    for ch in 0..c {
        let plane_src = &src[ch * h * w..(ch + 1) * h * w];
        let plane_dst = &mut dst[ch * h * w..(ch + 1) * h * w];
        for (i, row) in plane_dst.chunks_exact_mut(w).enumerate() {
            let sy = i as isize + dy;
            if sy < 0 || sy >= hi || j_lo >= j_hi {
                row.fill(0.0);
                continue;
            }
            let src_row = &plane_src[sy as usize * w..(sy as usize + 1) * w];
            row[..j_lo].fill(0.0);
            row[j_hi..].fill(0.0);
            let s0 = (j_lo as isize + dx) as usize;
            row[j_lo..j_hi].copy_from_slice(&src_row[s0..s0 + (j_hi - j_lo)]);
            if flip {
                row.reverse();
            }
        }
    }
}
